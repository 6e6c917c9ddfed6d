"""The API's views: token -> the same permission checks as the pages -> selectors, the request
form, or a workflow verb -> JSON. A request the caller may not see is a 404, as on the pages."""

import re
from typing import Any

from django import forms
from django.http import QueryDict
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imports import roles, rules, selectors, workflow
from imports.api.errors import InvalidInput
from imports.api.schema import errors, serializer_of_form
from imports.api.serializers import (
    DECISIONS,
    ActionSerializer,
    DecisionSerializer,
    EventSerializer,
    RecheckSerializer,
    RequestSerializer,
    RequestSummarySerializer,
    TagSerializer,
    TargetSerializer,
    unknown_fields,
)
from imports.filters import RequestFilter
from imports.forms import ImportRequestForm, tag_formset
from imports.models import AwsTarget, ImportRequest
from imports.paging import keyset_page, searched_page
from imports.workflow import Action

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
HISTORY_PAGE_SIZE = 50
# The URL patterns take any text as an id (see ID_RE); the document says what is meant.
ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The id.")
# Ids in paths are matched here, not by the URL pattern, so that a malformed one is the API's
# JSON 404 rather than the site's HTML page.
ID_RE = re.compile(r"^[0-9]{1,12}$")
MSG_NOT_AN_OBJECT = "Send a JSON object with the request's fields."
MSG_EXPECTED = {bool: "Expected true or false.", int: "Expected a whole number.", str: "Expected a string."}
MSG_TAG_SHAPE = "Each tag is an object with a string key and a string value."
MSG_PAGE_SIZE = f"Expected a whole number from 1 to {MAX_PAGE_SIZE}."

VERBS = {
    Action.APPROVE: workflow.approve_request,
    Action.REJECT: workflow.reject_request,
    Action.REQUEST_CHANGES: workflow.request_changes,
}


def visible_request_or_404(request: Request, pk: str) -> ImportRequest:
    found = selectors.visible_request(request.user, int(pk)) if ID_RE.match(pk) else None
    if found is None:
        raise exceptions.NotFound
    return found


def refuse_unknown_parameters(request: Request, known: list[str]) -> None:
    """A misspelt filter is refused, not ignored: ignored, it would answer the whole list."""
    unknown = unknown_fields(dict(request.query_params), known)
    if unknown:
        raise InvalidInput(unknown)


def page_size(request: Request, default: int) -> int:
    text = request.query_params.get("page_size", "")
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InvalidInput({"page_size": [MSG_PAGE_SIZE]})
    return int(text)


def page_link(request: Request, **cursor: str | None) -> str | None:
    """The URL of another page of the same list: the same query, another cursor."""
    if not any(cursor.values()):
        return None
    query: QueryDict = request.query_params.copy()
    for name, value in cursor.items():
        query.pop(name, None)
        if value:
            query[name] = value
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def detail_response(request: Request, import_request: ImportRequest, status_code: int = 200) -> Response:
    actions = workflow.available_actions(request.user, import_request)
    # The page offers the checks apart from the buttons of available_actions, and so does this.
    if workflow.may_request_preflight(request.user, import_request):
        actions.append(Action.PREFLIGHT)
    body = RequestSerializer(import_request, context={"actions": actions, "request": request}).data
    return Response(body, status=status_code)


class TargetList(APIView):
    @extend_schema(
        operation_id="list_targets",
        summary="The targets requests can be filed for",
        responses={200: inline_serializer("TargetList", {"results": TargetSerializer(many=True)}), **errors()},
    )
    def get(self, request: Request) -> Response:
        targets = AwsTarget.objects.filter(is_active=True).order_by("name")
        return Response({"results": TargetSerializer(targets, many=True).data})


class TargetDetail(APIView):
    @extend_schema(
        operation_id="read_target",
        parameters=[ID],
        summary="One target",
        responses={200: TargetSerializer, **errors(404)},
    )
    def get(self, request: Request, pk: str) -> Response:
        target = selectors.visible_target(request.user, int(pk)) if ID_RE.match(pk) else None
        if target is None:
            raise exceptions.NotFound
        return Response(TargetSerializer(target).data)


REQUEST_PAGE = inline_serializer(
    "RequestPage",
    {
        "results": RequestSummarySerializer(many=True),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
    },
)
NEW_REQUEST = serializer_of_form(
    ImportRequestForm(),
    "NewRequest",
    tags=TagSerializer(many=True, required=False, help_text=f"At most {rules.MAX_USER_TAGS} tags of your own."),
)


class RequestList(GenericAPIView):
    """The requests the caller may see (approvers and auditors: all; requesters: their own),
    newest first, filtered as the list page filters, paged by keyset cursors."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = RequestFilter

    def get_queryset(self) -> Any:
        return selectors.listed_requests(self.request.user)

    @extend_schema(
        operation_id="list_requests",
        summary="List requests",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.STR, description="The cursor of the next page (from `next`)."),
            OpenApiParameter("before", OpenApiTypes.STR, description="The cursor of the previous page."),
            OpenApiParameter("page_size", OpenApiTypes.INT, description=f"1 to {MAX_PAGE_SIZE}; {PAGE_SIZE} if unset."),
        ],
        responses={200: REQUEST_PAGE, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, [*RequestFilter.base_filters, "after", "before", "page_size"])
        size = page_size(request, PAGE_SIZE)
        listed = self.get_queryset()
        cursors = {"after": request.query_params.get("after"), "before": request.query_params.get("before")}
        if request.query_params.get("q", "").strip():
            page = searched_page(self.filter_queryset(listed), among=listed, size=size, **cursors)
        else:
            page = keyset_page(self.filter_queryset(listed), size=size, **cursors)
        return Response(
            {
                "results": RequestSummarySerializer(page.object_list, many=True, context={"request": request}).data,
                "next": page_link(request, after=page.next_cursor, before=None),
                "previous": page_link(request, before=page.previous_cursor, after=None),
            }
        )

    @extend_schema(
        operation_id="file_request",
        summary="File a request",
        description="Checked by the request form's own rules; each refused field has its messages in "
        "`error.fields`. The pre-flight checks run next, and the approvers are told.",
        request=NEW_REQUEST,
        responses={201: RequestSerializer, **errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        if not roles.has_role(request.user, roles.REQUESTERS):
            raise exceptions.PermissionDenied(workflow.MSG_NOT_ALLOWED)
        form, tags = request_form(request.data)
        if not all([form.is_valid(), tags.is_valid()]):
            raise InvalidInput(form_errors(form, tags))
        created = workflow.submit_request(requester=request.user, fields={**form.request_fields(), "tags": tags.tags()})
        response = detail_response(
            request, selectors.visible_request(request.user, created.pk), status.HTTP_201_CREATED
        )
        response["Location"] = response.data["url"]
        return response


def request_form(body: Any) -> tuple[ImportRequestForm, Any]:
    """The request form and its tags, bound to a JSON body as the page binds them to a POST."""
    if not isinstance(body, dict):
        raise InvalidInput({"non_field_errors": [MSG_NOT_AN_OBJECT]})
    form = ImportRequestForm(amis=selectors.offered_amis())
    problems = unknown_fields(body, [*form.fields, "tags"])
    data: dict[str, Any] = {}
    for name, value in body.items():
        if name not in form.fields or value is None:
            continue
        expected = json_type(form.fields[name])
        if type(value) is not expected:
            problems[name] = [MSG_EXPECTED[expected]]
        data[name] = value if expected is not int else str(value)
    tags = [] if body.get("tags") is None else body["tags"]
    if not isinstance(tags, list) or not all(_is_tag(tag) for tag in tags):
        problems["tags"] = [MSG_TAG_SHAPE]
    if problems:
        raise InvalidInput(problems)
    return ImportRequestForm(data, amis=form.amis), tag_formset(tag_data(tags))


def json_type(form_field: forms.Field) -> type:
    """The JSON type a form field takes: its value goes to the form as the page would post it."""
    if isinstance(form_field, forms.BooleanField):
        return bool
    if isinstance(form_field, forms.IntegerField | forms.ModelChoiceField):
        return int
    return str


def _is_tag(tag: Any) -> bool:
    return isinstance(tag, dict) and set(tag) == {"key", "value"} and all(isinstance(v, str) for v in tag.values())


def tag_data(tags: list[dict[str, str]]) -> dict[str, str]:
    """The tag rows as the page's formset posts them."""
    data = {"tags-TOTAL_FORMS": str(len(tags)), "tags-INITIAL_FORMS": "0"}
    for index, tag in enumerate(tags):
        data |= {f"tags-{index}-key": tag["key"], f"tags-{index}-value": tag["value"]}
    return data


def form_errors(form: ImportRequestForm, tags: Any) -> dict[str, list[str]]:
    found = {
        "non_field_errors" if name == "__all__" else name: [str(message) for message in messages]
        for name, messages in form.errors.items()
    }
    for index, tag_errors in enumerate(tags.errors):
        for name, messages in tag_errors.items():
            found[f"tags[{index}].{name}"] = [str(message) for message in messages]
    if tags.non_form_errors():
        found["tags"] = [str(message) for message in tags.non_form_errors()]
    return found


class RequestDetail(APIView):
    @extend_schema(
        operation_id="read_request",
        parameters=[ID],
        summary="One request",
        responses={200: RequestSerializer, **errors(404)},
    )
    def get(self, request: Request, pk: str) -> Response:
        return detail_response(request, visible_request_or_404(request, pk))


class RequestHistory(APIView):
    @extend_schema(
        operation_id="read_request_history",
        summary="A request's history",
        description="Its audit events, newest first, a page at a time.",
        parameters=[
            ID,
            OpenApiParameter("before", OpenApiTypes.INT, description="Events older than this seq (from `next`)."),
        ],
        responses={
            200: inline_serializer(
                "EventPage",
                {
                    "results": EventSerializer(many=True),
                    "total": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                },
            ),
            **errors(404),
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        import_request = visible_request_or_404(request, pk)
        refuse_unknown_parameters(request, ["before"])
        history = selectors.history_page(
            import_request, before=request.query_params.get("before"), size=HISTORY_PAGE_SIZE
        )
        older = str(history.older_than) if history.older_than is not None else None
        return Response(
            {
                "results": EventSerializer(history.events[::-1], many=True).data,
                "total": history.total,
                "next": page_link(request, before=older),
            }
        )


class RequestAction(APIView):
    """One of the request page's buttons, taken on the version the caller names: the body checked
    by `body`, the workflow verb (which checks who may, the state and the version, as it does for
    the page), the request's detail back; a refusal is the workflow's message in the error shape."""

    body: type[serializers.Serializer]

    def take(self, request: Request, import_request: ImportRequest, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def post(self, request: Request, pk: str) -> Response:
        import_request = visible_request_or_404(request, pk)
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        self.take(request, import_request, body.validated_data)
        return detail_response(request, selectors.visible_request(request.user, import_request.pk))


def action_schema(operation_id: str, summary: str, description: str, body: type) -> Any:
    """The document's entry for one RequestAction: its body, the request back, the workflow's refusals."""
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            parameters=[ID],
            summary=summary,
            description=description,
            request=body,
            responses={200: RequestSerializer, **errors(400, 403, 404, 409)},
        )
    )


@action_schema(
    "decide_request",
    "Decide a request (approvers)",
    "Approve, reject or send back for changes the version named by `expected_version`. "
    "A request changed since, or decided by someone else first, is a 409 and nothing changes. Under a "
    "target's quorum an approval is recorded until enough approvers approved the same version.",
    DecisionSerializer,
)
class RequestDecision(RequestAction):
    body = DecisionSerializer

    def take(self, request: Request, import_request: ImportRequest, fields: dict[str, Any]) -> None:
        VERBS[DECISIONS[fields["decision"]]](
            request_id=import_request.pk,
            actor=request.user,
            expected_version=fields["expected_version"],
            comment=fields["comment"],
        )


@action_schema(
    "cancel_request",
    "Cancel a request (its requester)",
    "Withdraw the version named by `expected_version`, while it is submitted, sent back for changes or "
    "approved but not yet sent to AWS. A request changed since, or in another state, is a 409 and nothing "
    "changes.",
    ActionSerializer,
)
class RequestCancel(RequestAction):
    body = ActionSerializer

    def take(self, request: Request, import_request: ImportRequest, fields: dict[str, Any]) -> None:
        workflow.cancel_request(request_id=import_request.pk, actor=request.user, **fields)


@action_schema(
    "retry_request",
    "Retry a failed import (approvers)",
    "Approve the failed version named by `expected_version` again, so that it is imported again, when what "
    "failed was not the request itself (AWS kept failing, the target was fixed). A failure only a new "
    "version can fix, a request changed since or not failed is a 409 and nothing changes.",
    ActionSerializer,
)
class RequestRetry(RequestAction):
    body = ActionSerializer

    def take(self, request: Request, import_request: ImportRequest, fields: dict[str, Any]) -> None:
        workflow.retry_import(request_id=import_request.pk, actor=request.user, **fields)


@action_schema(
    "recheck_request",
    "Run the pre-flight checks again (the requester and approvers)",
    "Queue the pre-flight checks of the version named by `expected_version` again, while the request waits "
    "for its decision or import; their results arrive later as a `preflight` event in its history. A request "
    "changed since, or in another state, is a 409 and nothing is queued.",
    RecheckSerializer,
)
class RequestRecheck(RequestAction):
    body = RecheckSerializer

    def take(self, request: Request, import_request: ImportRequest, fields: dict[str, Any]) -> None:
        workflow.request_preflight_checks(request_id=import_request.pk, actor=request.user, **fields)
