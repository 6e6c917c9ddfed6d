"""The REST API (/api/v1/): tokens, every endpoint, the same permissions, rules, messages and audit
events as the pages, the error shape, and the OpenAPI document it is checked against."""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import hypothesis
import openapi_spec_validator
import pytest
import schemathesis
import yaml
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from imports import paging, roles, rules, workflow
from imports.api import errors, tokens, views
from imports.api.models import ApiToken
from imports.api.serializers import DECISIONS, MSG_UNKNOWN_FIELD
from imports.forms import MSG_COMMENT_TOO_LONG, MSG_NAME_IN_USE
from imports.models import AwsTarget, EventAction, ImportRequest
from imports.tests.conftest import pass_preflight, request_fields

API = "/api/v1"


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    """The throttles count calls per user id in the process's cache, and a test database may
    give the next test's user the same id."""
    cache.clear()
    yield
    cache.clear()


def api_as(user: Any) -> APIClient:
    """A client that calls the API with a fresh token of `user`'s."""
    _, secret = tokens.make_token(user=user, name=f"test {ApiToken.objects.count()}", days=7)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def new_request_body(target: AwsTarget, **overrides: Any) -> dict[str, Any]:
    body = {
        "target": target.pk,
        "windows_version": "10",
        "ec2_image_id": "ami-0123456789abcdef0",
        "ingestion_process": "BYOL_REGULAR_WSP",
        "image_name": "win10-api-2026",
        "image_description": "Windows 10 22H2 filed through the API",
        "justification": "The service desk files its images from its own flow.",
        "tags": [{"key": "CostCenter", "value": "4711"}],
    }
    body.update(overrides)
    return body


# --- tokens ----------------------------------------------------------------------------------


def test_a_token_is_stored_only_as_its_digest(requester: Any) -> None:
    _, secret = tokens.make_token(user=requester, name="ServiceNow", days=30)

    assert secret.startswith("byol_")
    assert len(secret) == len("byol_") + 64
    row = ApiToken.objects.get(user=requester)
    assert row.digest == hashlib.sha512(secret.encode()).hexdigest()
    assert row.token_key == secret[:15]
    stored = [str(value) for value in ApiToken.objects.filter(pk=row.pk).values().get().values()]
    assert not any(secret in value for value in stored)
    assert row.expiry - timezone.now() > timedelta(days=29)


def test_a_call_without_a_token_or_with_a_wrong_one_is_refused(requester: Any) -> None:
    error = assert_error(APIClient().get(f"{API}/requests/"), 401, "not_authenticated")
    assert "fields" not in error

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer byol_" + "0" * 64)
    response = client.get(f"{API}/requests/")

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_signed_in_session_does_not_open_the_api(requester: Any, make_request: Callable[..., Any]) -> None:
    make_request()
    client = Client()
    client.force_login(requester)

    assert_error(client.get(f"{API}/requests/"), 401, "not_authenticated")


def test_a_revoked_token_stops_working(requester: Any) -> None:
    _, secret = tokens.make_token(user=requester, name="flow", days=7)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(f"{API}/targets/").status_code == 200
    page = Client()
    page.force_login(requester)

    response = page.post(reverse("api_token_revoke"), {"name": "flow"})

    assert response.status_code == 302
    assert not ApiToken.objects.filter(user=requester).exists()
    assert_error(api.get(f"{API}/targets/"), 401, "authentication_failed")


def test_an_expired_token_stops_working_and_is_deleted(requester: Any) -> None:
    token, secret = tokens.make_token(user=requester, name="old", days=7)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert_error(api.get(f"{API}/targets/"), 401, "authentication_failed")
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_token_of_a_deactivated_user_stops_working(requester: Any) -> None:
    api = api_as(requester)
    requester.is_active = False
    requester.save()

    assert_error(api.get(f"{API}/targets/"), 401, "authentication_failed")


def test_a_token_has_its_owners_roles_as_they_are_at_each_call(
    approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    api = api_as(approver)
    approver.groups.remove(Group.objects.get(name=roles.APPROVERS))

    response = api.post(f"{API}/requests/{request.pk}/decision/", {"decision": "approve", "expected_version": 1})

    # Without the role the request is not even visible to them any more.
    assert_error(response, 404, "not_found")
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED


def test_a_tokens_last_use_is_noted_at_most_once_a_minute(requester: Any) -> None:
    token, secret = tokens.make_token(user=requester, name="flow", days=7)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    api.get(f"{API}/targets/")
    first = ApiToken.objects.get(pk=token.pk).last_used
    api.get(f"{API}/targets/")
    second = ApiToken.objects.get(pk=token.pk).last_used
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    api.get(f"{API}/targets/")
    third = ApiToken.objects.get(pk=token.pk).last_used

    assert token.last_used is None
    assert first is not None
    assert second == first
    assert third > first


def test_the_tokens_page_shows_a_new_token_once_and_lists_only_its_owners(requester: Any, other_requester: Any) -> None:
    tokens.make_token(user=other_requester, name="oscar's flow", days=7)
    client = Client()
    client.force_login(requester)

    made = client.post(reverse("api_tokens"), {"name": "ServiceNow", "lifetime": "30"})
    listed = client.get(reverse("api_tokens"))

    assert made.status_code == 200
    secret = made.context["made"]
    assert secret.startswith("byol_")
    assert secret in made.content.decode()
    assert ApiToken.objects.get(user=requester).name == "ServiceNow"
    assert listed.status_code == 200
    page = listed.content.decode()
    assert "ServiceNow" in page
    assert secret[:15] in page
    assert secret not in page
    assert "oscar&#x27;s flow" not in page


def test_the_tokens_page_refuses_a_name_in_use_and_too_many_tokens(requester: Any) -> None:
    client = Client()
    client.force_login(requester)
    tokens.make_token(user=requester, name="flow", days=7)

    taken = client.post(reverse("api_tokens"), {"name": "flow", "lifetime": "7"})
    for n in range(tokens.MAX_TOKENS - 1):
        tokens.make_token(user=requester, name=f"flow {n}", days=7)
    too_many = client.post(reverse("api_tokens"), {"name": "one more", "lifetime": "7"})

    assert taken.status_code == 400
    assert taken.context["form"].errors["name"] == [tokens.MSG_NAME_USED]
    assert too_many.status_code == 400
    assert too_many.context["form"].non_field_errors() == [tokens.MSG_TOO_MANY]
    assert ApiToken.objects.filter(user=requester).count() == tokens.MAX_TOKENS


def test_nobody_revokes_someone_elses_token(requester: Any, other_requester: Any) -> None:
    tokens.make_token(user=other_requester, name="flow", days=7)
    client = Client()
    client.force_login(requester)

    response = client.post(reverse("api_token_revoke"), {"name": "flow"}, follow=True)

    assert tokens.MSG_NOTHING_REVOKED in response.content.decode()
    assert ApiToken.objects.filter(user=other_requester, name="flow").exists()


def test_the_tokens_page_needs_a_log_in_and_csrf(requester: Any) -> None:
    assert Client().get(reverse("api_tokens")).status_code == 302
    client = Client(enforce_csrf_checks=True)
    client.force_login(requester)

    assert client.post(reverse("api_tokens"), {"name": "flow", "lifetime": "7"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_the_admin_lists_tokens_without_their_secret(superuser: Any, requester: Any) -> None:
    _, secret = tokens.make_token(user=requester, name="ServiceNow", days=7)
    client = Client()
    client.force_login(superuser)

    response = client.get(reverse("admin:api_apitoken_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "ServiceNow" in page
    assert secret[:15] in page
    assert secret not in page


# --- targets ---------------------------------------------------------------------------------


def test_the_targets_are_the_active_ones(requester: Any, target: AwsTarget) -> None:
    AwsTarget.objects.create(name="Retired", account_id="111122223333", region="eu-west-1", is_active=False)

    response = api_as(requester).get(f"{API}/targets/")

    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": target.pk,
                "name": "Sandbox",
                "account_id": "123456789012",
                "region": "us-east-1",
                "byop_allowed": False,
                "is_active": True,
            }
        ]
    }


def test_an_inactive_target_is_read_only_by_those_who_see_every_request(requester: Any, approver: Any) -> None:
    retired = AwsTarget.objects.create(name="Retired", account_id="111122223333", region="eu-west-1", is_active=False)

    assert api_as(approver).get(f"{API}/targets/{retired.pk}/").json()["name"] == "Retired"
    assert_error(api_as(requester).get(f"{API}/targets/{retired.pk}/"), 404, "not_found")
    assert_error(api_as(requester).get(f"{API}/targets/not-an-id/"), 404, "not_found")


# --- listing requests ------------------------------------------------------------------------


def test_a_requester_lists_only_their_own_requests(
    requester: Any, other_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    mine = make_request()
    make_request(by=other_requester)

    response = api_as(requester).get(f"{API}/requests/")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    row = response.json()["results"][0]
    assert row["reference"] == mine.reference
    assert row["requester"] == "rita"
    assert row["target"] == {"id": mine.target_id, "name": "Sandbox"}
    assert row["url"] == f"http://testserver{API}/requests/{mine.pk}/"


def test_approvers_and_auditors_list_every_request_newest_first(
    approver: Any, auditor: Any, other_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    first, second = make_request(), make_request(by=other_requester)

    for user in (approver, auditor):
        response = api_as(user).get(f"{API}/requests/")
        assert [row["id"] for row in response.json()["results"]] == [second.pk, first.pk]


def test_the_list_filters_as_the_list_page_does(
    approver: Any,
    other_requester: Any,
    byop_target: AwsTarget,
    make_request: Callable[..., ImportRequest],
) -> None:
    rejected = make_request()
    workflow.reject_request(request_id=rejected.pk, actor=approver, expected_version=1, comment="No.")
    oscars = make_request(by=other_requester)
    elsewhere = pass_preflight(
        workflow.submit_request(requester=rejected.requester, fields=request_fields(byop_target, image_name="core-1"))
    )
    api = api_as(approver)

    def ids(query: str) -> list[int]:
        response = api.get(f"{API}/requests/?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("state=rejected") == [rejected.pk]
    assert ids(f"target={byop_target.pk}") == [elsewhere.pk]
    assert ids("requester=OSCAR") == [oscars.pk]
    assert ids(f"q={oscars.image_name}") == [oscars.pk]
    assert ids("state=submitted&requester=rita") == [elsewhere.pk]


def test_a_filter_the_list_page_would_refuse_is_a_400_naming_the_field(approver: Any) -> None:
    error = assert_error(api_as(approver).get(f"{API}/requests/?state=lost&target=999999"), 400, "invalid")

    assert set(error["fields"]) == {"state", "target"}
    assert all(isinstance(message, str) for messages in error["fields"].values() for message in messages)


def test_the_list_pages_by_cursor_without_repeating_or_skipping(
    approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    made = [make_request() for _ in range(5)]
    api = api_as(approver)

    first = api.get(f"{API}/requests/?page_size=2&state=submitted").json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    back = api.get(second["previous"]).json()

    newest_first = [request.pk for request in reversed(made)]
    assert [row["id"] for row in first["results"]] == newest_first[:2]
    assert first["previous"] is None
    assert "state=submitted" in first["next"]
    assert "page_size=2" in first["next"]
    assert [row["id"] for row in second["results"]] == newest_first[2:4]
    assert [row["id"] for row in third["results"]] == newest_first[4:]
    assert third["next"] is None
    assert back["results"] == first["results"]


def test_a_search_pages_by_cursor_through_only_the_requests_the_caller_may_see(
    requester: Any, other_requester: Any, make_request: Callable[..., ImportRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first look at the newest 2 requests, so that the pages below need every way of reading.
    monkeypatch.setattr(paging, "SEARCH_WINDOW", 2)
    mine = [make_request(image_name=f"win11-golden-{n}") for n in range(3)]
    make_request(by=other_requester, image_name="win11-golden-other")
    make_request(image_name="win10-plain")
    api = api_as(requester)

    first = api.get(f"{API}/requests/?page_size=2&q=GOLDEN").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()

    assert [row["id"] for row in first["results"]] == [mine[2].pk, mine[1].pk]
    assert [row["id"] for row in second["results"]] == [mine[0].pk]
    assert second["next"] is None
    assert back["results"] == first["results"]


def test_a_misspelt_filter_is_refused_not_ignored(approver: Any, make_request: Callable[..., Any]) -> None:
    request = make_request()
    api = api_as(approver)

    listed = assert_error(api.get(f"{API}/requests/?stat=failed"), 400, "invalid")
    history = assert_error(api.get(f"{API}/requests/{request.pk}/history/?after=3"), 400, "invalid")

    assert listed["fields"] == {"stat": [MSG_UNKNOWN_FIELD]}
    assert history["fields"] == {"after": [MSG_UNKNOWN_FIELD]}


@pytest.mark.parametrize("size", ["0", "101", "ten"])
def test_a_page_size_out_of_range_is_a_400(approver: Any, size: str) -> None:
    error = assert_error(api_as(approver).get(f"{API}/requests/?page_size={size}"), 400, "invalid")

    assert error["fields"] == {"page_size": [views.MSG_PAGE_SIZE]}


def test_the_list_reads_a_few_queries_whatever_its_length(
    approver: Any, make_request: Callable[..., ImportRequest], django_assert_max_num_queries: Any
) -> None:
    for _ in range(6):
        make_request()
    api = api_as(approver)

    with django_assert_max_num_queries(8):
        response = api.get(f"{API}/requests/")

    assert len(response.json()["results"]) == 6


# --- reading one request and its history ----------------------------------------------------


def test_a_request_reads_with_its_parameters_version_and_what_the_caller_may_do(
    requester: Any, approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()

    own = api_as(requester).get(f"{API}/requests/{request.pk}/").json()
    decider = api_as(approver).get(f"{API}/requests/{request.pk}/").json()

    assert own["version"] == 1
    assert own["state"] == "submitted"
    assert own["state_label"] == "Submitted"
    assert own["ec2_image_id"] == "ami-0123456789abcdef0"
    assert own["tags"] == [{"key": "CostCenter", "value": "4711"}]
    assert own["history_url"] == f"http://testserver{API}/requests/{request.pk}/history/"
    assert own["actions"] == ["cancel", "edit", "recheck"]
    assert decider["actions"] == ["approve", "recheck", "reject", "request_changes"]


def test_under_a_quorum_an_approver_who_approved_is_not_offered_approve_again(
    approver: Any, other_approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    request.target.approvals_required = 2
    request.target.save()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    mine = api_as(approver).get(f"{API}/requests/{request.pk}/").json()
    theirs = api_as(other_approver).get(f"{API}/requests/{request.pk}/").json()

    assert mine["actions"] == ["recheck", "reject", "request_changes"]
    assert theirs["actions"] == ["approve", "recheck", "reject", "request_changes"]


def test_each_action_a_request_offers_is_a_decision_an_endpoint_or_the_pages_edit_form(
    requester: Any, approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    submitted = make_request()
    retryable = failed(make_request(), approver)
    offered = {
        name
        for user in (requester, approver)
        for request in (submitted, retryable)
        for name in api_as(user).get(f"{API}/requests/{request.pk}/").json()["actions"]
    }

    assert offered == {*DECISIONS, "cancel", "retry", "recheck", "edit", "revise"}
    for name in offered - set(DECISIONS) - {"edit", "revise"}:
        assert reverse(f"api:request_{name}", args=[submitted.pk]) == f"{API}/requests/{submitted.pk}/{name}/"


def test_someone_elses_request_is_a_404_to_a_requester_as_on_the_pages(
    other_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    api = api_as(other_requester)

    assert_error(api.get(f"{API}/requests/{request.pk}/"), 404, "not_found")
    assert_error(api.get(f"{API}/requests/{request.pk}/history/"), 404, "not_found")
    assert_error(api.get(f"{API}/requests/9999999999999/"), 404, "not_found")


def test_the_history_is_newest_first_and_pages_back(
    requester: Any, approver: Any, make_request: Callable[..., ImportRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "HISTORY_PAGE_SIZE", 2)
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1, comment="Fine.")
    api = api_as(requester)

    first = api.get(f"{API}/requests/{request.pk}/history/").json()
    second = api.get(first["next"]).json()

    assert first["total"] == 3
    assert [event["action"] for event in first["results"]] == ["approve", "preflight"]
    assert first["results"][0]["actor"] == "anna"
    assert first["results"][0]["comment"] == "Fine."
    assert first["results"][0]["seq"] > first["results"][1]["seq"]
    assert [event["action"] for event in second["results"]] == ["submit"]
    assert second["next"] is None


# --- filing a request ------------------------------------------------------------------------


def test_a_requester_files_a_request_through_the_form_and_the_workflow(
    requester: Any, target: AwsTarget, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(requester).post(f"{API}/requests/", new_request_body(target), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    created = ImportRequest.objects.get()
    assert response["Location"] == f"http://testserver{API}/requests/{created.pk}/"
    assert body["id"] == created.pk
    assert body["state"] == "submitted"
    assert body["version"] == 1
    assert body["warnings"] == created.warnings
    assert created.requester == requester
    assert created.tags == [{"Key": "CostCenter", "Value": "4711"}]
    assert [event.action for event in created.events.all()] == [EventAction.SUBMIT]
    assert ("run_preflight_checks", (created.pk, 1)) in published


def test_a_request_the_form_refuses_names_each_field_with_the_pages_message(requester: Any, target: AwsTarget) -> None:
    body = new_request_body(
        target,
        windows_version="11",
        ingestion_process="BYOL_REGULAR",
        image_name="has spaces",
        tags=[{"key": "aws:owner", "value": "x"}],
    )

    error = assert_error(api_as(requester).post(f"{API}/requests/", body, format="json"), 400, "invalid")

    assert error["fields"]["image_name"] == [rules.MSG_IMAGE_NAME_FORMAT]
    assert error["fields"]["ingestion_process"] == [rules.MSG_WIN11_NO_PCOIP]
    assert error["fields"]["tags[0].key"] == [rules.tag_text_violation("aws:owner", is_key=True)]
    assert not ImportRequest.objects.exists()


def test_an_image_name_in_use_is_the_forms_message(
    requester: Any, target: AwsTarget, make_request: Callable[..., ImportRequest]
) -> None:
    make_request(image_name="win10-api-2026")

    error = assert_error(
        api_as(requester).post(f"{API}/requests/", new_request_body(target), format="json"), 400, "invalid"
    )

    assert error["fields"] == {"image_name": [MSG_NAME_IN_USE]}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"target": "1"}, "target", views.MSG_EXPECTED[int]),
        ({"image_name": 42}, "image_name", views.MSG_EXPECTED[str]),
        ({"bundle": "yes"}, "bundle", views.MSG_EXPECTED[bool]),
        ({"imagename": "x"}, "imagename", MSG_UNKNOWN_FIELD),
        ({"tags": [{"Key": "a", "Value": "b"}]}, "tags", views.MSG_TAG_SHAPE),
        ({"tags": "CostCenter=4711"}, "tags", views.MSG_TAG_SHAPE),
    ],
)
def test_a_field_of_the_wrong_type_or_name_is_refused(
    requester: Any, target: AwsTarget, change: dict[str, Any], field: str, message: str
) -> None:
    body = new_request_body(target) | change

    error = assert_error(api_as(requester).post(f"{API}/requests/", body, format="json"), 400, "invalid")

    assert error["fields"][field] == [message]
    assert not ImportRequest.objects.exists()


def test_a_body_that_is_not_an_object_or_not_json_is_a_400(requester: Any) -> None:
    api = api_as(requester)

    listed = assert_error(api.post(f"{API}/requests/", [1, 2], format="json"), 400, "invalid")
    garbled = api.post(f"{API}/requests/", "{not json", content_type="application/json")
    form_encoded = api.post(f"{API}/requests/", {"image_name": "x"}, format="multipart")

    assert listed["fields"] == {"non_field_errors": [views.MSG_NOT_AN_OBJECT]}
    assert_error(garbled, 400, "parse_error")
    assert_error(form_encoded, 415, "unsupported_media_type")


def test_only_requesters_file_requests(approver: Any, auditor: Any, target: AwsTarget) -> None:
    for user in (approver, auditor):
        error = assert_error(
            api_as(user).post(f"{API}/requests/", new_request_body(target), format="json"), 403, "permission_denied"
        )
        assert error["message"] == workflow.MSG_NOT_ALLOWED
    assert not ImportRequest.objects.exists()


# --- deciding --------------------------------------------------------------------------------


def decide(user: Any, request: ImportRequest, decision: str, **body: Any) -> Any:
    return api_as(user).post(
        f"{API}/requests/{request.pk}/decision/",
        {"decision": decision, "expected_version": request.version, **body},
        format="json",
    )


def test_an_api_approval_writes_the_same_audit_event_as_the_pages(
    approver: Any,
    make_request: Callable[..., ImportRequest],
    published: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    by_page, by_api = make_request(), make_request()
    page = Client()
    page.force_login(approver)
    page.post(reverse("request_action", args=[by_page.pk, "approve"]), {"version": "1", "comment": "Looks right."})

    with django_capture_on_commit_callbacks(execute=True):
        response = decide(approver, by_api, "approve", comment="Looks right.")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    by_api.refresh_from_db()
    assert by_api.state == ImportRequest.State.APPROVED
    assert by_api.approver == approver
    page_event, api_event = (request.events.order_by("-seq").first() for request in (by_page, by_api))
    fields = ("action", "actor", "actor_username", "from_state", "to_state", "comment")
    assert [getattr(api_event, name) for name in fields] == [getattr(page_event, name) for name in fields]
    assert set(api_event.data) == set(page_event.data)
    assert api_event.data["parameters"] == {**page_event.data["parameters"], "ImageName": by_api.image_name}
    assert ("import_request", (by_api.pk,)) in published


@pytest.mark.parametrize(
    ("decision", "state", "action"),
    [
        ("reject", ImportRequest.State.REJECTED, EventAction.REJECT),
        ("request_changes", ImportRequest.State.CHANGES_REQUESTED, EventAction.REQUEST_CHANGES),
    ],
)
def test_an_approver_rejects_or_sends_back_with_a_comment(
    approver: Any, make_request: Callable[..., ImportRequest], decision: str, state: str, action: str
) -> None:
    request = make_request()

    response = decide(approver, request, decision, comment="Use the 23H2 image.")

    assert response.status_code == 200
    assert response.json()["state"] == state
    request.refresh_from_db()
    assert request.state == state
    event = request.events.order_by("-seq").first()
    assert (event.action, event.actor, event.comment) == (action, approver, "Use the 23H2 image.")


def test_rejecting_without_a_comment_is_the_workflows_message_on_the_comment(
    approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()

    error = assert_error(decide(approver, request, "reject"), 400, "invalid")

    assert error["fields"] == {"comment": [workflow.MSG_COMMENT_REQUIRED]}
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED


def test_a_requester_cannot_decide(
    requester: Any, other_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    own, others = make_request(), make_request(by=other_requester)

    assert_error(decide(requester, own, "approve"), 403, "permission_denied")
    # Someone else's request a requester may not even see, as on the pages.
    assert_error(decide(requester, others, "approve"), 404, "not_found")
    for request in (own, others):
        request.refresh_from_db()
        assert request.state == ImportRequest.State.SUBMITTED


def test_nobody_approves_their_own_request(
    approving_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    own = make_request(by=approving_requester)

    error = assert_error(decide(approving_requester, own, "approve"), 403, "permission_denied")

    assert error["message"] == workflow.MSG_OWN_REQUEST
    own.refresh_from_db()
    assert own.state == ImportRequest.State.SUBMITTED
    assert [event.action for event in own.events.all()] == [EventAction.SUBMIT, EventAction.PREFLIGHT]


def test_a_decision_on_a_version_the_approver_did_not_see_is_a_409(
    approver: Any, requester: Any, target: AwsTarget, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    stale = ImportRequest.objects.get(pk=request.pk)
    workflow.edit_request(
        request_id=request.pk,
        actor=requester,
        fields={k: v for k, v in request_fields(target, image_name=request.image_name).items() if k != "target"},
        expected_version=1,
    )
    pass_preflight(ImportRequest.objects.get(pk=request.pk))

    error = assert_error(decide(approver, stale, "approve"), 409, "conflict")

    assert error["message"] == workflow.MSG_CHANGED_SINCE_VIEWED
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED


def test_a_request_decided_already_is_a_409_saying_who_decided(
    approver: Any, other_approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    decide(other_approver, request, "reject", comment="No.")

    error = assert_error(decide(approver, request, "approve"), 409, "conflict")

    assert "bert" in error["message"]


def test_a_decision_before_the_checks_passed_is_refused_with_the_pages_message(
    approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request(checked=False)

    error = assert_error(decide(approver, request, "approve"), 409, "not_possible_now")

    assert error["message"] == workflow.MSG_PREFLIGHT_PENDING


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "maybe", "expected_version": 1}, "decision"),
        ({"decision": "approve"}, "expected_version"),
        ({"decision": "approve", "expected_version": 0}, "expected_version"),
        ({"decision": "approve", "expected_version": 1, "comment": "x" * 2001}, "comment"),
        ({"decision": "approve", "expected_version": 1, "version": 1}, "version"),
    ],
)
def test_a_malformed_decision_names_its_field(
    approver: Any, make_request: Callable[..., ImportRequest], body: dict[str, Any], field: str
) -> None:
    request = make_request()

    response = api_as(approver).post(f"{API}/requests/{request.pk}/decision/", body, format="json")

    assert set(assert_error(response, 400, "invalid")["fields"]) == {field}
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED


# --- cancelling, retrying, running the checks again ------------------------------------------


def act(user: Any, request: ImportRequest, action: str, **body: Any) -> Any:
    """The API's form of the request page's button `action`, on the version the caller saw."""
    return api_as(user).post(
        f"{API}/requests/{request.pk}/{action}/", {"expected_version": request.version, **body}, format="json"
    )


def failed(request: ImportRequest, approver: Any, next_step: str = "retry") -> ImportRequest:
    """Approved, then failed at AWS, without going through AWS."""
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
    ImportRequest.objects.filter(pk=request.pk).update(
        state=ImportRequest.State.FAILED, failure={"message": "AWS kept failing", "next_step": next_step}
    )
    request.refresh_from_db()
    return request


def last_event(request: ImportRequest) -> Any:
    return request.events.order_by("-seq").first()


EVENT_FIELDS = ("action", "actor", "actor_username", "from_state", "to_state", "comment")


def test_a_requester_cancels_through_the_api_with_the_pages_audit_event(
    requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    by_page, by_api = make_request(), make_request()
    page = Client()
    page.force_login(requester)
    page.post(reverse("request_action", args=[by_page.pk, "cancel"]), {"comment": "Not needed any more."})

    response = act(requester, by_api, "cancel", comment="Not needed any more.")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert response.json()["actions"] == []
    by_api.refresh_from_db()
    assert by_api.state == ImportRequest.State.CANCELLED
    page_event, api_event = last_event(by_page), last_event(by_api)
    assert api_event.action == EventAction.CANCEL
    assert [getattr(api_event, name) for name in EVENT_FIELDS] == [getattr(page_event, name) for name in EVENT_FIELDS]
    assert api_event.data == page_event.data


def test_only_the_requester_cancels_and_someone_elses_request_is_not_found(
    approver: Any, other_requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()

    refused = assert_error(act(approver, request, "cancel"), 403, "permission_denied")
    assert_error(act(other_requester, request, "cancel"), 404, "not_found")

    assert refused["message"] == workflow.MSG_NOT_ALLOWED
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED
    assert request.events.count() == 2


def test_cancelling_a_version_the_requester_did_not_see_is_a_409(
    requester: Any, target: AwsTarget, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    stale = ImportRequest.objects.get(pk=request.pk)
    workflow.edit_request(
        request_id=request.pk,
        actor=requester,
        fields={k: v for k, v in request_fields(target, image_name=request.image_name).items() if k != "target"},
        expected_version=1,
    )
    events = request.events.count()

    error = assert_error(act(requester, stale, "cancel"), 409, "conflict")

    assert error["message"] == workflow.MSG_CHANGED_SINCE_VIEWED
    request.refresh_from_db()
    assert (request.state, request.version) == (ImportRequest.State.SUBMITTED, 2)
    assert request.events.count() == events


def test_a_request_sent_to_aws_already_is_not_cancelled(
    requester: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = make_request()
    ImportRequest.objects.filter(pk=request.pk).update(state=ImportRequest.State.IMPORTING)

    error = assert_error(act(requester, request, "cancel"), 409, "conflict")

    assert error["message"] == workflow.MSG_WRONG_STATE.format(
        reference=request.reference, state="importing", verb="cancelled"
    )
    request.refresh_from_db()
    assert request.state == ImportRequest.State.IMPORTING
    assert request.events.count() == 2


def test_an_approver_retries_a_failed_import_through_the_api_with_the_pages_audit_event(
    approver: Any,
    other_approver: Any,
    make_request: Callable[..., ImportRequest],
    published: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    by_page, by_api = failed(make_request(), other_approver), failed(make_request(), other_approver)
    page = Client()
    page.force_login(approver)
    page.post(reverse("request_action", args=[by_page.pk, "retry"]), {"comment": "The role is fixed."})
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = act(approver, by_api, "retry", comment="The role is fixed.")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    by_api.refresh_from_db()
    assert by_api.state == ImportRequest.State.APPROVED
    assert by_api.failure == {}
    assert [earlier["failure"]["message"] for earlier in by_api.earlier_failures] == ["AWS kept failing"]
    page_event, api_event = last_event(by_page), last_event(by_api)
    assert api_event.action == EventAction.RETRY
    assert [getattr(api_event, name) for name in EVENT_FIELDS] == [getattr(page_event, name) for name in EVENT_FIELDS]
    assert set(api_event.data) == set(page_event.data)
    assert published == [("import_request", (by_api.pk,))]


def test_a_requester_cannot_retry_and_someone_elses_request_is_not_found(
    requester: Any, other_requester: Any, approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    request = failed(make_request(), approver)

    assert_error(act(requester, request, "retry"), 403, "permission_denied")
    assert_error(act(other_requester, request, "retry"), 404, "not_found")

    request.refresh_from_db()
    assert request.state == ImportRequest.State.FAILED
    assert last_event(request).action == EventAction.APPROVE


def test_retrying_a_failure_the_approver_did_not_see_is_a_409(
    requester: Any, approver: Any, other_approver: Any, make_request: Callable[..., ImportRequest]
) -> None:
    first_failure = failed(make_request(), approver)
    workflow.revise_request(
        request_id=first_failure.pk,
        actor=requester,
        fields={"ec2_image_id": "ami-0fedcba9876543210"},
        expected_version=1,
    )
    failed(pass_preflight(ImportRequest.objects.get(pk=first_failure.pk)), approver)
    events = first_failure.events.count()

    error = assert_error(act(other_approver, first_failure, "retry"), 409, "conflict")

    assert error["message"] == workflow.MSG_CHANGED_SINCE_VIEWED
    first_failure.refresh_from_db()
    assert (first_failure.state, first_failure.version) == (ImportRequest.State.FAILED, 2)
    assert first_failure.events.count() == events


def test_only_a_failed_import_is_retried_and_only_where_a_retry_can_work(
    approver: Any, other_approver: Any, make_request: Callable[..., ImportRequest], published: list[Any]
) -> None:
    submitted = make_request()
    needs_a_new_version = failed(make_request(), other_approver, next_step="revise")
    published.clear()

    not_failed = assert_error(act(approver, submitted, "retry"), 409, "conflict")
    pointless = assert_error(act(approver, needs_a_new_version, "retry"), 409, "not_possible_now")

    assert not_failed["message"] == workflow.MSG_WRONG_STATE.format(
        reference=submitted.reference, state="submitted", verb="retried"
    )
    assert pointless["message"] == workflow.MSG_RETRY_CANNOT_WORK
    needs_a_new_version.refresh_from_db()
    assert needs_a_new_version.state == ImportRequest.State.FAILED
    assert submitted.events.count() == 2
    assert published == []


@pytest.mark.parametrize("who", ["requester", "approver"])
def test_the_requester_and_approvers_run_the_checks_again_as_on_the_page(
    who: str, request: pytest.FixtureRequest, make_request: Callable[..., ImportRequest], published: list[Any]
) -> None:
    import_request = make_request()
    published.clear()

    response = act(request.getfixturevalue(who), import_request, "recheck")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "submitted"
    assert "recheck" in response.json()["actions"]
    import_request.refresh_from_db()
    assert import_request.state == ImportRequest.State.SUBMITTED
    # The results arrive as their own event, from the worker; asking for them writes none.
    assert import_request.events.count() == 2
    assert published == [("run_preflight_checks", (import_request.pk, 1))]


def test_others_cannot_run_the_checks_again(
    auditor: Any, other_requester: Any, make_request: Callable[..., ImportRequest], published: list[Any]
) -> None:
    request = make_request()
    published.clear()

    assert_error(act(auditor, request, "recheck"), 403, "permission_denied")
    assert_error(act(other_requester, request, "recheck"), 404, "not_found")

    assert published == []


def test_the_checks_of_a_version_the_caller_did_not_see_or_of_a_failed_import_are_not_run(
    requester: Any, approver: Any, target: AwsTarget, make_request: Callable[..., ImportRequest], published: list[Any]
) -> None:
    edited = make_request()
    stale = ImportRequest.objects.get(pk=edited.pk)
    workflow.edit_request(
        request_id=edited.pk,
        actor=requester,
        fields={k: v for k, v in request_fields(target, image_name=edited.image_name).items() if k != "target"},
        expected_version=1,
    )
    too_late = failed(make_request(), approver)
    published.clear()

    changed = assert_error(act(approver, stale, "recheck"), 409, "conflict")
    wrong_state = assert_error(act(approver, too_late, "recheck"), 409, "conflict")

    assert changed["message"] == workflow.MSG_CHANGED_SINCE_VIEWED
    assert wrong_state["message"] == workflow.MSG_WRONG_STATE.format(
        reference=too_late.reference, state="failed", verb="checked"
    )
    assert published == []


@pytest.mark.parametrize(
    ("action", "body", "field", "message"),
    [
        ("cancel", {}, "expected_version", "This field is required."),
        ("cancel", {"expected_version": 0}, "expected_version", "Ensure this value is greater than or equal to 1."),
        ("cancel", {"expected_version": "one"}, "expected_version", "A valid integer is required."),
        ("cancel", {"expected_version": 1, "comment": "x" * 2001}, "comment", MSG_COMMENT_TOO_LONG),
        ("cancel", {"expected_version": 1, "version": 1}, "version", MSG_UNKNOWN_FIELD),
        ("retry", {}, "expected_version", "This field is required."),
        ("retry", {"expected_version": 1, "comment": "x" * 2001}, "comment", MSG_COMMENT_TOO_LONG),
        ("retry", {"expected_version": 1, "decision": "approve"}, "decision", MSG_UNKNOWN_FIELD),
        ("recheck", {}, "expected_version", "This field is required."),
        # The checks record no comment: one is refused rather than lost.
        ("recheck", {"expected_version": 1, "comment": "Please."}, "comment", MSG_UNKNOWN_FIELD),
    ],
)
def test_a_malformed_action_names_its_field_and_changes_nothing(
    requester: Any,
    approver: Any,
    make_request: Callable[..., ImportRequest],
    published: list[Any],
    action: str,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    request = failed(make_request(), approver) if action == "retry" else make_request()
    state, events = request.state, request.events.count()
    published.clear()
    caller = requester if action == "cancel" else approver

    response = api_as(caller).post(f"{API}/requests/{request.pk}/{action}/", body, format="json")

    assert assert_error(response, 400, "invalid")["fields"] == {field: [message]}
    request.refresh_from_db()
    assert (request.state, request.events.count()) == (state, events)
    assert published == []


@pytest.mark.parametrize("action", ["cancel", "retry", "recheck"])
def test_an_action_on_a_body_that_is_not_an_object_or_an_id_that_is_not_one_is_refused(
    approver: Any, make_request: Callable[..., ImportRequest], action: str
) -> None:
    request = make_request()
    api = api_as(approver)

    listed = assert_error(api.post(f"{API}/requests/{request.pk}/{action}/", [1], format="json"), 400, "invalid")
    assert_error(
        api.post(f"{API}/requests/not-an-id/{action}/", {"expected_version": 1}, format="json"), 404, "not_found"
    )
    assert_error(
        api.post(f"{API}/requests/9999999/{action}/", {"expected_version": 1}, format="json"), 404, "not_found"
    )
    assert_error(api.get(f"{API}/requests/{request.pk}/{action}/"), 405, "method_not_allowed")

    assert set(listed["fields"]) == {"non_field_errors"}
    request.refresh_from_db()
    assert request.state == ImportRequest.State.SUBMITTED


# --- the rest of the error shape -------------------------------------------------------------


def test_a_method_an_endpoint_does_not_have_is_a_405(approver: Any, make_request: Callable[..., Any]) -> None:
    request = make_request()

    assert_error(api_as(approver).delete(f"{API}/requests/{request.pk}/"), 405, "method_not_allowed")


def test_too_many_calls_are_throttled_in_the_error_shape(requester: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UserRateThrottle, "rate", "2/minute", raising=False)
    api = api_as(requester)

    codes = [api.get(f"{API}/targets/").status_code for _ in range(3)]
    response = api.get(f"{API}/targets/")

    assert codes == [200, 200, 429]
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_an_unexpected_failure_is_a_plain_500_without_a_trace(approver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views.selectors, "visible_target", broken)

    response = api_as(approver).get(f"{API}/targets/1/")

    assert_error(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert response.json()["error"]["message"] == errors.MSG_SERVER_ERROR


# --- the OpenAPI document --------------------------------------------------------------------


def test_the_openapi_document_is_served_to_a_token_or_a_signed_in_person(requester: Any) -> None:
    by_token = api_as(requester).get(f"{API}/schema/")
    person = Client()
    person.force_login(requester)
    by_session = person.get(f"{API}/schema/?format=yaml")
    anonymous = APIClient().get(f"{API}/schema/")

    assert by_token.status_code == 200
    assert by_token.json()["paths"][f"{API}/requests/{{id}}/decision/"]["post"]["operationId"] == "decide_request"
    assert by_session.status_code == 200
    assert yaml.safe_load(by_session.content)["info"]["title"] == by_token.json()["info"]["title"]
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"


def test_the_docs_page_uses_only_the_portals_own_files(requester: Any) -> None:
    person = Client()
    person.force_login(requester)

    page = person.get(f"{API}/docs/")
    script = person.get(f"{API}/docs/?script=")

    assert page.status_code == 200
    html = page.content.decode()
    assert "<style" not in html
    assert "<script>" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert Client().get(f"{API}/docs/").status_code == 302


def openapi_document(tmp_path: Any) -> dict[str, Any]:
    """The document as CI makes it: drf-spectacular's own validation, failing on any warning."""
    path = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_the_openapi_document_is_valid_openapi_3(tmp_path: Any) -> None:
    document = openapi_document(tmp_path)

    openapi_spec_validator.validate(document)
    assert document["openapi"].startswith("3.")
    operations = {operation["operationId"] for methods in document["paths"].values() for operation in methods.values()}
    assert operations == {
        "list_targets",
        "read_target",
        "list_requests",
        "file_request",
        "read_request",
        "read_request_history",
        "decide_request",
        "cancel_request",
        "retry_request",
        "recheck_request",
    }
    assert document["components"]["securitySchemes"] == {"knoxApiToken": {"type": "http", "scheme": "bearer"}}


@contextmanager
def wsgi_calls_in_the_test_transaction() -> Iterator[None]:
    """Calls through the WSGI handler inside the test's transaction, as Django's test client
    makes them: the end of a request must not close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


SCHEMATHESIS_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def drive(operation: Any, mode: GenerationMode, auth: dict[str, str]) -> int:
    """Generated calls to one operation, each checked against the document; how many were made."""
    app = get_wsgi_application()
    # A body that breaks the document is refused. A query is read as the list page reads its form
    # (an empty filter is no filter), which the document cannot say of an integer.
    rejects = mode is GenerationMode.NEGATIVE and operation.method.upper() == "POST"
    checks = SCHEMATHESIS_CHECKS + ([negative_data_rejection] if rejects else [])
    calls = 0

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), who=st.sampled_from(sorted(auth)))
    @hypothesis.settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def call(case: Any, who: str) -> None:
        nonlocal calls
        headers = {"Authorization": auth[who]}
        response = case.call(app=app, base_url="http://localhost", headers=headers)
        case.validate_response(response, checks=checks, headers=headers)
        calls += 1

    with wsgi_calls_in_the_test_transaction():
        call()
    return calls


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_answers_as_its_openapi_document_says(
    tmp_path: Any,
    mode: GenerationMode,
    requester: Any,
    approver: Any,
    make_request: Callable[..., ImportRequest],
) -> None:
    """schemathesis sends generated calls (fitting the document, then not fitting it) to every
    operation, as a requester and as an approver, and checks each answer against the document:
    never a 500, only documented statuses and content types, bodies of the documented shape."""
    for _ in range(3):
        make_request()
    schema = schemathesis.openapi.from_dict(openapi_document(tmp_path))
    auth = {
        user.username: f"Bearer {tokens.make_token(user=user, name='schemathesis', days=1)[1]}"
        for user in (requester, approver)
    }

    calls = [drive(result.ok(), mode, auth) for result in schema.get_all_operations()]

    assert len(calls) == 10
    assert all(n >= 10 for n in calls), calls
