"""Thin views: permission check -> form -> workflow verb -> message + redirect.

Every view needs a logged-in user (LoginRequiredMiddleware). A request the user may not see
is a 404, the same as one that does not exist, so guessing ids tells nothing.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from imports import charts, exports, roles, rollout_views, selectors, workflow
from imports.filters import RequestFilter
from imports.forms import AuditExportForm, DecisionForm, ImportRequestForm, tag_formset
from imports.models import AdminEvent, AuditExport, ImportRequest
from imports.paging import keyset_page, searched_page
from imports.rules import Rollout
from imports.workflow import Action

PAGE_SIZE = 25
# The request page shows this many of the newest events, and pages the rest.
HISTORY_PAGE_SIZE = 50
MSG_SUBMITTED = "{reference} was submitted. An approver has been told."
MSG_RESUBMITTED = "{reference} was saved and goes back to the approvers."
MSG_REVISED = (
    "{reference} was revised and goes back to the approvers; once approved, the new version is imported "
    "(after the failed image is deleted)."
)
MSG_ACTION_DONE = {
    Action.APPROVE: "{reference} is approved; the import will start shortly.",
    Action.REJECT: "{reference} is rejected; the requester has been told.",
    Action.REQUEST_CHANGES: "{reference} went back to the requester for changes.",
    Action.CANCEL: "{reference} is cancelled.",
    Action.RETRY: "{reference} is approved again; the import will be retried shortly.",
    Action.PREFLIGHT: "The pre-flight checks of {reference} are running again; reload the page in a moment.",
}
MSG_APPROVAL_RECORDED = (
    "Your approval of {reference} is recorded: {missing} more approval{s} from other approvers needed before "
    "the import starts."
)
MSG_NOT_EDITABLE = "{reference} is {state}: it can no longer be edited."
MSG_CHECK_FORM = "Some fields need a change: see the messages next to them."

ACTION_SLUGS = {
    "approve": Action.APPROVE,
    "reject": Action.REJECT,
    "request-changes": Action.REQUEST_CHANGES,
    "cancel": Action.CANCEL,
    "retry": Action.RETRY,
    "recheck": Action.PREFLIGHT,
}
# While a request is in one of these, something is about to change without anyone acting.
LIVE_STATES = {ImportRequest.State.APPROVED, ImportRequest.State.SUBMITTING, ImportRequest.State.IMPORTING}


def _visible_or_404(request: HttpRequest, pk: int) -> ImportRequest:
    import_request = selectors.visible_request(request.user, pk)
    if import_request is None:
        raise Http404("No such request.")
    return import_request


@require_http_methods(["GET", "HEAD"])
def dashboard(request: HttpRequest) -> HttpResponse:
    desk = selectors.desk(request.user, size=10)
    counts = desk.my_counts
    return render(
        request,
        "imports/dashboard.html",
        {
            "my_counts": [
                (state, label, counts[state]) for state, label in ImportRequest.State.choices if state in counts
            ],
            "my_requests": desk.my_latest,
            "queue": desk.queue,
            "queue_size": desk.queue_size,
            "rollouts_open": desk.rollouts_open,
            "rollouts_open_total": sum(desk.rollouts_open.values()),
            "overdue": desk.overdue,
            "escalated": desk.escalated,
            "remind_after_hours": settings.PORTAL_REMIND_AFTER_HOURS,
            "charts": charts.dashboard_charts() if _reads_the_charts(request.user) else None,
            "charts_seconds": charts.CACHE_SECONDS,
        },
    )


def _reads_the_charts(user: Any) -> bool:
    return roles.has_role(user, roles.APPROVERS) or roles.has_role(user, roles.AUDITORS)


def _ensure_role(request: HttpRequest, role: str) -> None:
    # A superuser without the role may not act in it either: separation of duties.
    if not roles.has_role(request.user, role):
        raise PermissionDenied(workflow.MSG_NOT_ALLOWED)


@require_http_methods(["GET", "HEAD", "POST"])
def request_create(request: HttpRequest) -> HttpResponse:
    _ensure_role(request, roles.REQUESTERS)
    data = request.POST if request.method == "POST" else None
    form, tags = ImportRequestForm(data, amis=selectors.offered_amis()), tag_formset(data)
    if data is not None and all([form.is_valid(), tags.is_valid()]):
        try:
            created = workflow.submit_request(
                requester=request.user, fields={**form.request_fields(), "tags": tags.tags()}
            )
        except workflow.NameTaken as exc:
            form.add_error("image_name", exc.message)
        else:
            messages.success(request, MSG_SUBMITTED.format(reference=created.reference))
            for warning in created.warnings:
                messages.warning(request, warning)
            return redirect("request_detail", pk=created.pk)
    if data is not None:
        messages.error(request, MSG_CHECK_FORM)
    return render(
        request, "imports/request_form.html", {"form": form, "tags": tags}, status=200 if data is None else 400
    )


@require_http_methods(["GET", "HEAD", "POST"])
def request_edit(request: HttpRequest, pk: int) -> HttpResponse:
    import_request = _visible_or_404(request, pk)
    # A failed request is revised, any other editable one edited: one form, two workflow verbs.
    action = Action.REVISE if import_request.state == ImportRequest.State.FAILED else Action.EDIT
    if not workflow.may(request.user, action, import_request):
        raise PermissionDenied(workflow.MSG_NOT_ALLOWED)
    if import_request.state not in workflow.TRANSITIONS[action].sources:
        messages.error(
            request,
            MSG_NOT_EDITABLE.format(
                reference=import_request.reference, state=import_request.get_state_display().lower()
            ),
        )
        return redirect("request_detail", pk=pk)
    data = request.POST if request.method == "POST" else None
    form = ImportRequestForm(data, instance=import_request, amis=selectors.offered_amis())
    tags = tag_formset(data, tags=import_request.tags)
    version = DecisionForm(data or {"version": import_request.version})
    if data is not None and all([form.is_valid(), tags.is_valid(), version.is_valid()]):
        fields = form.request_fields() | {"tags": tags.tags()}
        verb = workflow.revise_request if action == Action.REVISE else workflow.edit_request
        try:
            verb(
                request_id=pk,
                actor=request.user,
                fields=fields,
                expected_version=version.cleaned_data["version"] or import_request.version,
            )
        except workflow.NameTaken as exc:
            form.add_error("image_name", exc.message)
        except workflow.WorkflowError as exc:
            messages.error(request, exc.message)
        else:
            done = MSG_REVISED if action == Action.REVISE else MSG_RESUBMITTED
            messages.success(request, done.format(reference=import_request.reference))
            return redirect("request_detail", pk=pk)
    elif data is not None:
        messages.error(request, MSG_CHECK_FORM)
    context = {
        "form": form,
        "tags": tags,
        "import_request": import_request,
        "version": import_request.version,
        "revising": action == Action.REVISE,
    }
    return render(request, "imports/request_form.html", context, status=200 if data is None else 400)


@require_http_methods(["GET", "HEAD"])
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    import_request = _visible_or_404(request, pk)
    return _render_detail(request, import_request, DecisionForm(initial={"version": import_request.version}))


def _render_detail(
    request: HttpRequest, import_request: ImportRequest, decision: DecisionForm, status: int = 200
) -> HttpResponse:
    approval = selectors.approval_status(import_request, request.user)
    actions = {action.value for action in workflow.available_actions(request.user, import_request)}
    if workflow.may_request_preflight(request.user, import_request):
        actions.add(Action.PREFLIGHT.value)
    checks_pending = import_request.state in workflow.TRANSITIONS[Action.PREFLIGHT].sources and not (
        import_request.preflight_is_current
    )
    history = selectors.history_page(import_request, before=request.GET.get("events_before"), size=HISTORY_PAGE_SIZE)
    context = {
        "import_request": import_request,
        "events": history.events,
        "history": history,
        "image_update": _image_update(import_request),
        "actions": actions,
        "decision": decision,
        "approval": approval,
        "parameters": import_request.aws_parameters(),
        "checks_pending": checks_pending,
        "live": checks_pending or import_request.state in LIVE_STATES,
        "waiting": _waiting(import_request),
        "earlier_failures": [
            {**earlier, "at": datetime.fromisoformat(earlier["at"])}
            for earlier in reversed(import_request.earlier_failures)
        ],
        "next_attempt_iso": import_request.next_attempt_at.isoformat() if import_request.next_attempt_at else "",
        "rollout": rollout_views.rollout_card(request.user, import_request),
        # While the rollout runs, the page reloads its rollout card in place.
        "rollout_live": import_request.rollout == Rollout.RUNNING,
    }
    return render(request, "imports/request_detail.html", context, status=status)


def _image_update(import_request: ImportRequest) -> dict[str, Any] | None:
    """What AWS said about updates for the image when it became available (Updates in
    DescribeWorkspaceImages), if it has one: read with the request (selectors.visible_request),
    so a rollout's many events never push it out of the page's reach."""
    if import_request.state != ImportRequest.State.AVAILABLE:
        return None
    image = import_request.available_image or {}
    return image if image.get("update_available") else None


def _waiting(import_request: ImportRequest) -> dict[str, Any] | None:
    """Why an import waits and until when, for the request page; None when it does not wait."""
    if import_request.state != ImportRequest.State.SUBMITTING or not import_request.waiting.get("reason"):
        return None
    waiting = dict(import_request.waiting)
    since = waiting.get("since")
    if since and waiting["reason"] == "transient":
        budget = timedelta(seconds=settings.PORTAL_RETRY_BUDGET_SECONDS)
        waiting["gives_up_at"] = datetime.fromisoformat(since) + budget
    waiting["next_attempt_at"] = import_request.next_attempt_at
    return waiting


VERBS: dict[Action, Callable[..., ImportRequest]] = {
    Action.APPROVE: workflow.approve_request,
    Action.REJECT: workflow.reject_request,
    Action.REQUEST_CHANGES: workflow.request_changes,
    Action.CANCEL: workflow.cancel_request,
    Action.RETRY: workflow.retry_import,
    Action.PREFLIGHT: workflow.request_preflight_checks,
}


@require_POST
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTION_SLUGS:
        raise Http404("No such action.")
    verb = ACTION_SLUGS[action]
    import_request = _visible_or_404(request, pk)
    decision = DecisionForm(request.POST)
    if not decision.is_valid():
        return _render_detail(request, import_request, decision, status=400)
    kwargs: dict[str, Any] = {"request_id": pk, "actor": request.user}
    if verb is not Action.PREFLIGHT:
        kwargs["comment"] = decision.cleaned_data["comment"]
    version = decision.cleaned_data["version"]
    if verb in (Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES):
        # A decision without the version it was made on could approve unseen changes.
        kwargs["expected_version"] = version or 0
    elif version:
        # The other buttons act on the version their page showed, as the API's do.
        kwargs["expected_version"] = version
    try:
        updated = VERBS[verb](**kwargs)
    except workflow.NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except workflow.WorkflowError as exc:
        messages.error(request, exc.message)
        import_request.refresh_from_db()
        fresh = DecisionForm({"version": import_request.version, "comment": decision.cleaned_data["comment"]})
        fresh.is_valid()
        return _render_detail(request, import_request, fresh, status=409)
    if verb is Action.APPROVE and updated.state == ImportRequest.State.SUBMITTED:
        missing = selectors.approval_status(updated, request.user).missing
        done = MSG_APPROVAL_RECORDED.format(reference=updated.reference, missing=missing, s="" if missing == 1 else "s")
    else:
        done = MSG_ACTION_DONE[verb].format(reference=updated.reference)
    messages.success(request, done)
    return redirect("request_detail", pk=pk)


@require_http_methods(["GET", "HEAD"])
def request_status(request: HttpRequest, pk: int) -> JsonResponse:
    """What the request page polls while something is under way, to reload when it changes."""
    import_request = selectors.request_status(request.user, pk)
    if import_request is None:
        raise Http404("No such request.")
    return JsonResponse(
        {
            "state": import_request.state,
            "state_label": import_request.get_state_display(),
            "version": import_request.version,
            "events": import_request.events.count(),
            # A wait for a turn at AWS's rate writes no event: the page follows its due time too.
            "next_attempt_at": import_request.next_attempt_at.isoformat() if import_request.next_attempt_at else None,
            # The Image Builder path's progress, which the page moves in place, without reloading.
            "progress": {
                "stage": import_request.import_stage,
                "label": import_request.stage_label,
                "message": import_request.import_stage_message,
                "percent": import_request.import_progress,
                "checked_at": (
                    import_request.progress_checked_at.isoformat() if import_request.progress_checked_at else None
                ),
            }
            if import_request.via_image_builder
            else None,
            "rollout": rollout_views.rollout_status(import_request),
        }
    )


@require_http_methods(["GET", "HEAD"])
def request_list(request: HttpRequest) -> HttpResponse:
    if not selectors.sees_all_requests(request.user):
        raise PermissionDenied
    filters = RequestFilter(request.GET, queryset=selectors.listed_requests(request.user))
    after, before = request.GET.get("after"), request.GET.get("before")
    if not filters.is_valid():
        page = keyset_page(ImportRequest.objects.none(), size=PAGE_SIZE)
    elif filters.form.cleaned_data.get("q"):
        page = searched_page(filters.qs, among=filters.queryset, size=PAGE_SIZE, after=after, before=before)
    else:
        page = keyset_page(filters.qs, size=PAGE_SIZE, after=after, before=before)
    context = {
        "filters": filters,
        "page": page,
        "query": _query_without_paging(request),
    }
    return render(request, "imports/request_list.html", context)


def _query_without_paging(request: HttpRequest) -> str:
    query = request.GET.copy()
    for name in ("after", "before", "page"):
        query.pop(name, None)
    return query.urlencode()


@require_http_methods(["GET", "HEAD"])
def approval_queue(request: HttpRequest) -> HttpResponse:
    _ensure_role(request, roles.APPROVERS)
    page = keyset_page(
        selectors.approval_queue(request.user),
        size=PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
        newest_first=False,
    )
    return render(request, "imports/approval_queue.html", {"page": page, "query": ""})


MSG_EXPORT_QUEUED = "Export #{pk} is queued: it is written in the background, and this page offers it when it is ready."
MSG_EXPORT_GONE = "That export is not ready, or it was deleted: ask for a new one."


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required("imports.view_requestevent", raise_exception=True)
def audit_export(request: HttpRequest) -> HttpResponse:
    """Ask for a CSV of the audit history (all of it, or filtered); a worker writes it, and this
    page lists the asker's exports with a download link once each is ready."""
    form = AuditExportForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        export = exports.request_export(
            user=request.user,
            date_from=form.cleaned_data["date_from"],
            date_to=form.cleaned_data["date_to"],
            target=form.cleaned_data["target"],
            request=form.cleaned_data["reference"],
        )
        messages.success(request, MSG_EXPORT_QUEUED.format(pk=export.pk))
        return redirect("audit_export")
    mine = AuditExport.objects.filter(requested_by=request.user).select_related("target")[:PAGE_SIZE]
    rows = [(export, exports.describe_filters(export)) for export in mine]
    context = {"form": form, "exports": rows, "retention_days": settings.PORTAL_EXPORT_RETENTION_DAYS}
    return render(request, "imports/audit_export.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "HEAD"])
@permission_required("imports.view_requestevent", raise_exception=True)
def audit_export_download(request: HttpRequest, pk: int) -> FileResponse:
    """A finished export, to the person who asked for it, or to an auditor."""
    export = AuditExport.objects.filter(pk=pk).first()
    may_read = export is not None and (
        export.requested_by_id == request.user.pk or roles.has_role(request.user, roles.AUDITORS)
    )
    path = exports.file_path(export) if may_read and export.state == AuditExport.State.DONE else None
    if path is None or not path.is_file():
        raise Http404(MSG_EXPORT_GONE)
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=f"byol-portal-audit-{pk}.csv", content_type="text/csv"
    )


MSG_BAD_PAGE = "That page of the admin history does not exist: start again from the newest changes."


@require_http_methods(["GET", "HEAD"])
@permission_required("imports.view_adminevent", raise_exception=True)
def admin_history(request: HttpRequest) -> HttpResponse:
    """Changes to targets, users, groups and memberships, newest first, paged by sequence number
    (a page deep in years of history costs what the first one does)."""
    events = AdminEvent.objects.order_by("-seq")
    before = request.GET.get("before", "")
    if before:
        if not before.isdigit() or len(before) > 18:
            return HttpResponseBadRequest(render(request, "400.html", {"message": MSG_BAD_PAGE}).content)
        events = events.filter(seq__lt=int(before))
    page = list(events[: PAGE_SIZE + 1])
    shown = page[:PAGE_SIZE]
    older_than = shown[-1].seq if len(page) > PAGE_SIZE else None
    return render(request, "imports/admin_history.html", {"events": shown, "older_than": older_than})
