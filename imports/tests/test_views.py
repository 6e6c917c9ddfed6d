"""Every URL for every role and method, the pages' flows, and hostile input."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from imports import aws, workflow
from imports.audit import append_event
from imports.forms import MSG_STALE_FORM
from imports.models import ImportRequest
from imports.steps import image
from imports.tests.conftest import form_data

State = ImportRequest.State
ROLES = ["anonymous", "requester", "other_requester", "approver", "auditor", "superuser"]


@pytest.fixture
def as_role(client: Client, request: Any) -> Any:
    def login(role: str) -> Client:
        if role != "anonymous":
            client.force_login(request.getfixturevalue(role))
        return client

    return login


@pytest.fixture
def rita_request(make_request: Any) -> ImportRequest:
    """A submitted request of `requester` (rita)."""
    return make_request(image_name="rita-image")


# --- the permission matrix --------------------------------------------------------------------

PAGE_ACCESS = {
    # url name: roles that get 200 on GET (everyone else logged in gets 403)
    "dashboard": {"requester", "other_requester", "approver", "auditor", "superuser"},
    # A superuser files and approves nothing without the role (separation of duties).
    "request_create": {"requester", "other_requester"},
    "request_list": {"approver", "auditor", "superuser"},
    "approval_queue": {"approver"},
    "audit_export": {"approver", "auditor", "superuser"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url_name", list(PAGE_ACCESS))
def test_each_page_answers_each_role_as_the_matrix_says(as_role: Any, role: str, url_name: str, target: Any) -> None:
    response = as_role(role).get(reverse(url_name))

    if role == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    elif role in PAGE_ACCESS[url_name]:
        assert response.status_code == 200
    else:
        assert response.status_code == 403


# GET of a request's own pages: 200 for those who may, 404 for those who may not even see it.
DETAIL_ACCESS = {"requester": 200, "other_requester": 404, "approver": 200, "auditor": 200, "superuser": 200}
EDIT_ACCESS = {"requester": 200, "other_requester": 404, "approver": 403, "auditor": 403, "superuser": 403}


@pytest.mark.parametrize("role", ROLES)
def test_a_request_page_is_seen_only_by_its_requester_and_those_who_see_all(
    as_role: Any, role: str, rita_request: ImportRequest
) -> None:
    response = as_role(role).get(reverse("request_detail", args=[rita_request.pk]))

    if role == "anonymous":
        assert response.status_code == 302
    else:
        assert response.status_code == DETAIL_ACCESS[role]
        if response.status_code == 200:
            assert rita_request.reference in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_only_the_requester_reaches_the_edit_page(
    as_role: Any, role: str, method: str, rita_request: ImportRequest, target: Any
) -> None:
    client = as_role(role)
    url = reverse("request_edit", args=[rita_request.pk])
    data = form_data(target, image_name="edited-name", version="1")

    response = client.get(url) if method == "get" else client.post(url, data)

    rita_request.refresh_from_db()
    if role == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    elif role == "requester" and method == "post":
        assert response.status_code == 302
        assert rita_request.image_name == "edited-name"
    else:
        assert response.status_code == EDIT_ACCESS[role]
    if not (role == "requester" and method == "post"):
        assert rita_request.image_name == "rita-image"
        assert rita_request.version == 1


# action -> roles whose POST succeeds on a submitted request of rita's
ACTION_ACCESS = {
    "approve": {"approver"},
    "reject": {"approver"},
    "request-changes": {"approver"},
    "cancel": {"requester"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTION_ACCESS))
def test_each_action_is_refused_to_everyone_it_is_not_for(
    as_role: Any, role: str, action: str, rita_request: ImportRequest
) -> None:
    url = reverse("request_action", args=[rita_request.pk, action])

    response = as_role(role).post(url, {"version": "1", "comment": "Because."})

    rita_request.refresh_from_db()
    if role == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    elif role in ACTION_ACCESS[action]:
        assert response.status_code == 302
        assert response.url == reverse("request_detail", args=[rita_request.pk])
        assert rita_request.state != State.SUBMITTED
    else:
        assert response.status_code == (404 if role == "other_requester" else 403)
    if role not in ACTION_ACCESS[action]:
        assert rita_request.state == State.SUBMITTED
        assert rita_request.events.count() == 2


@pytest.mark.parametrize("role", ROLES)
def test_retry_is_for_approvers_only(as_role: Any, role: str, rita_request: ImportRequest) -> None:
    ImportRequest.objects.filter(pk=rita_request.pk).update(state=State.FAILED)

    response = as_role(role).post(reverse("request_action", args=[rita_request.pk, "retry"]))

    rita_request.refresh_from_db()
    if role == "approver":
        assert response.status_code == 302
        assert rita_request.state == State.APPROVED
    else:
        assert response.status_code in {302, 403, 404} if role == "anonymous" else {403, 404}
        assert rita_request.state == State.FAILED


@pytest.mark.parametrize("action", ["approve", "reject", "request-changes", "cancel", "retry"])
def test_actions_refuse_get(as_role: Any, action: str, rita_request: ImportRequest) -> None:
    response = as_role("superuser").get(reverse("request_action", args=[rita_request.pk, action]))

    assert response.status_code == 405


def test_an_approver_cannot_approve_own_request_by_posting_the_form(
    client: Client, approving_requester: Any, make_request: Any
) -> None:
    own = make_request(by=approving_requester)
    client.force_login(approving_requester)

    response = client.post(reverse("request_action", args=[own.pk, "approve"]), {"version": "1"})

    assert response.status_code == 403
    assert workflow.MSG_OWN_REQUEST in response.content.decode()
    own.refresh_from_db()
    assert (own.state, own.approver) == (State.SUBMITTED, None)
    assert own.events.count() == 2


def test_an_approvers_own_request_has_no_decision_buttons_and_is_not_in_their_queue(
    client: Client, approving_requester: Any, make_request: Any
) -> None:
    own = make_request(by=approving_requester)
    client.force_login(approving_requester)

    page = client.get(reverse("request_detail", args=[own.pk])).content.decode()
    queue = client.get(reverse("approval_queue")).content.decode()

    assert "Approve</button>" not in page
    assert own.reference not in queue


def test_an_auditor_sees_everything_and_gets_no_action_buttons(
    client: Client, auditor: Any, rita_request: ImportRequest
) -> None:
    client.force_login(auditor)

    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()
    listing = client.get(reverse("request_list")).content.decode()

    assert rita_request.reference in listing
    assert "What you can do" not in page
    assert "<button" not in page.split("</nav>")[1]


# --- flows through the pages ------------------------------------------------------------------


def test_a_requester_submits_the_form_and_lands_on_the_new_request(
    client: Client, requester: Any, approver: Any, target: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(requester)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("request_create"), form_data(target))

    created = ImportRequest.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("request_detail", args=[created.pk])
    assert (created.requester, created.state, created.tags) == (
        requester,
        State.SUBMITTED,
        [{"Key": "CostCenter", "Value": "4711"}],
    )
    assert [m.to for m in mail.outbox] == [[approver.email]]


def test_an_end_of_life_process_is_accepted_with_a_warning(client: Client, requester: Any, target: Any) -> None:
    client.force_login(requester)

    response = client.post(reverse("request_create"), form_data(target, ingestion_process="BYOL_GRAPHICS"), follow=True)

    assert response.status_code == 200
    assert "which AWS has retired" in response.content.decode()
    assert ImportRequest.objects.get().ingestion_process == "BYOL_GRAPHICS"


def test_the_approver_approves_from_the_request_page(
    client: Client, approver: Any, rita_request: ImportRequest
) -> None:
    client.force_login(approver)
    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()
    assert 'name="version" value="1"' in page

    response = client.post(
        reverse("request_action", args=[rita_request.pk, "approve"]), {"version": "1", "comment": ""}, follow=True
    )

    assert response.status_code == 200
    assert "is approved" in response.content.decode()
    rita_request.refresh_from_db()
    assert (rita_request.state, rita_request.approver) == (State.APPROVED, approver)


def test_a_rejection_without_comment_is_refused_and_nothing_changes(
    client: Client, approver: Any, rita_request: ImportRequest
) -> None:
    client.force_login(approver)

    response = client.post(reverse("request_action", args=[rita_request.pk, "reject"]), {"version": "1", "comment": ""})

    assert response.status_code == 409
    assert workflow.MSG_COMMENT_REQUIRED in response.content.decode()
    rita_request.refresh_from_db()
    assert rita_request.state == State.SUBMITTED


def test_an_approval_of_a_version_the_approver_did_not_see_is_refused_and_the_comment_kept(
    client: Client, approver: Any, requester: Any, rita_request: ImportRequest
) -> None:
    workflow.edit_request(
        request_id=rita_request.pk, actor=requester, fields={"image_name": "changed"}, expected_version=1
    )
    client.force_login(approver)

    response = client.post(
        reverse("request_action", args=[rita_request.pk, "reject"]),
        {"version": "1", "comment": "My long careful reasoning"},
    )

    assert response.status_code == 409
    page = response.content.decode()
    assert workflow.MSG_CHANGED_SINCE_VIEWED.replace("'", "&#x27;") in page
    assert "My long careful reasoning" in page
    assert 'name="version" value="2"' in page
    rita_request.refresh_from_db()
    assert rita_request.state == State.SUBMITTED


def test_the_second_approver_is_told_who_decided_first(
    client: Client, approver: Any, other_approver: Any, rita_request: ImportRequest
) -> None:
    workflow.approve_request(request_id=rita_request.pk, actor=approver, expected_version=1)
    client.force_login(other_approver)

    response = client.post(
        reverse("request_action", args=[rita_request.pk, "reject"]), {"version": "1", "comment": "No"}
    )

    assert response.status_code == 409
    assert f"{rita_request.reference} was already approved by anna" in response.content.decode()
    assert rita_request.events.count() == 3


def test_editing_a_request_sent_back_resubmits_it(
    client: Client, requester: Any, approver: Any, rita_request: ImportRequest, target: Any
) -> None:
    workflow.request_changes(request_id=rita_request.pk, actor=approver, expected_version=1, comment="Add Office")
    client.force_login(requester)
    page = client.get(reverse("request_edit", args=[rita_request.pk])).content.decode()
    assert 'value="rita-image"' in page

    response = client.post(
        reverse("request_edit", args=[rita_request.pk]),
        form_data(target, image_name="rita-image", office="Microsoft_Office_2019", version="1"),
    )

    assert response.status_code == 302
    rita_request.refresh_from_db()
    assert (rita_request.state, rita_request.version, rita_request.office) == (
        State.SUBMITTED,
        2,
        "Microsoft_Office_2019",
    )


def test_an_approved_request_cannot_be_edited_from_the_page(
    client: Client, requester: Any, approver: Any, rita_request: ImportRequest, target: Any
) -> None:
    workflow.approve_request(request_id=rita_request.pk, actor=approver, expected_version=1)
    client.force_login(requester)

    response = client.post(
        reverse("request_edit", args=[rita_request.pk]), form_data(target, image_name="late-change"), follow=True
    )

    assert "can no longer be edited" in response.content.decode()
    rita_request.refresh_from_db()
    assert rita_request.image_name == "rita-image"


def test_the_timeline_shows_every_event_with_its_comment_escaped(
    client: Client, requester: Any, approver: Any, rita_request: ImportRequest
) -> None:
    workflow.reject_request(
        request_id=rita_request.pk, actor=approver, expected_version=1, comment="<script>alert('x')</script>"
    )
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()

    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "Rejected" in page
    assert "Submitted" in page


def test_the_list_filters_by_state_and_finds_a_reference(
    client: Client, auditor: Any, make_request: Any, approver: Any
) -> None:
    first, second = make_request(), make_request()
    workflow.approve_request(request_id=second.pk, actor=approver, expected_version=1)
    client.force_login(auditor)

    by_state = client.get(reverse("request_list"), {"state": "approved"}).content.decode()
    by_reference = client.get(reverse("request_list"), {"q": first.reference}).content.decode()

    assert second.reference in by_state
    assert first.reference not in by_state
    assert first.reference in by_reference
    assert second.reference not in by_reference


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/requests/abc/",
        "/requests/-1/",
        "/requests/9999999999999999999999/",
        "/requests/999999999999/",
        "/requests/999999999999/edit/",
        "/requests/1/%00/",
        "/requests/1/delete/",
    ],
)
def test_malformed_or_unknown_ids_and_actions_are_404(client: Client, superuser: Any, path: str) -> None:
    client.force_login(superuser)

    response = client.post(path) if path.endswith("delete/") else client.get(path)

    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        {"state": "evil"},
        {"target": "abc"},
        {"target": "99999999999999999999"},
        {"requester": "-1"},
        {"created_from": "not-a-date"},
        {"created_to": "2026-13-45"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "99999999999999999999"},
        {"q": "x\x00y"},
        {"q": "IMP-99999999999999999999"},
        {"q": "' OR 1=1 --"},
        {"q": "a" * 5000},
    ],
)
def test_junk_in_the_list_filters_never_breaks_the_page(
    client: Client, auditor: Any, rita_request: ImportRequest, query: dict[str, str]
) -> None:
    client.force_login(auditor)

    response = client.get(reverse("request_list"), query)

    assert response.status_code == 200
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "abc", "comment": "x"}, MSG_STALE_FORM),
        ({"version": "1", "comment": "x" * 2001}, "Keep the comment under 2,000 characters."),
        ({"version": "1", "comment": "nul\x00byte"}, "Null characters are not allowed."),
        ({"version": "99999999999999999999", "comment": "x"}, MSG_STALE_FORM),
    ],
)
def test_a_malformed_decision_is_refused_with_a_message(
    client: Client, approver: Any, rita_request: ImportRequest, body: dict[str, str], message: str
) -> None:
    client.force_login(approver)

    response = client.post(reverse("request_action", args=[rita_request.pk, "approve"]), body)

    assert response.status_code == 400
    assert message in response.content.decode()
    rita_request.refresh_from_db()
    assert rita_request.state == State.SUBMITTED


def test_a_post_without_the_csrf_token_is_refused(requester: Any, rita_request: ImportRequest) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(requester)

    response = client.post(reverse("request_action", args=[rita_request.pk, "cancel"]))

    assert response.status_code == 403
    rita_request.refresh_from_db()
    assert rita_request.state == State.SUBMITTED


@pytest.mark.parametrize(
    "overrides",
    [
        {"target": "99999999999999999999"},
        {"target": "abc"},
        {"windows_version": "12"},
        {"ingestion_process": "BYOL_EVERYTHING"},
        {"office": "Microsoft_Office_2030"},
        {"tags-TOTAL_FORMS": "abc"},
        {"tags-TOTAL_FORMS": "100000"},
        {"image_name": "x\x00y"},
    ],
)
def test_a_tampered_form_is_refused_and_stores_nothing(
    client: Client, requester: Any, target: Any, overrides: dict[str, str]
) -> None:
    client.force_login(requester)

    response = client.post(reverse("request_create"), form_data(target, **overrides))

    assert response.status_code == 400
    assert "Some fields need a change" in response.content.decode()
    assert not ImportRequest.objects.exists()


def test_a_form_without_its_management_fields_is_refused(client: Client, requester: Any, target: Any) -> None:
    client.force_login(requester)
    data = {k: v for k, v in form_data(target).items() if not k.startswith("tags-")}

    response = client.post(reverse("request_create"), data)

    assert response.status_code == 400
    assert not ImportRequest.objects.exists()


# --- pre-flight, live status and the AMI list ---------------------------------------------------


def test_the_form_offers_the_targets_windows_amis(client: Client, requester: Any, target: Any) -> None:
    client.force_login(requester)

    page = client.get(reverse("request_create")).content.decode()

    assert f'<datalist id="amis-{target.pk}">' in page
    assert '<option value="ami-0aaaaaaaaaaaaaaa1">win11-golden</option>' in page
    assert f'list="amis-{target.pk}"' in page


def test_the_request_page_shows_the_checks_and_whether_they_block(
    client: Client, approver: Any, make_request: Any
) -> None:
    request = make_request(checked=False)
    workflow.record_preflight(
        request_id=request.pk,
        version=1,
        checks=[
            {"key": "ami", "title": "Source AMI", "outcome": "fail", "message": "ami-x is not Windows", "aws": {}},
            {"key": "volumes", "title": "Volumes", "outcome": "warn", "message": "80 GB root", "aws": {}},
        ],
    )
    client.force_login(approver)

    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    refused = client.post(reverse("request_action", args=[request.pk, "approve"]), {"version": "1"})

    assert "ami-x is not Windows" in page
    assert "80 GB root" in page
    assert "A failed check blocks approval." in page
    assert refused.status_code == 409
    assert workflow.MSG_PREFLIGHT_FAILED in refused.content.decode()


def test_a_request_whose_checks_are_running_says_so_and_polls(
    client: Client, requester: Any, make_request: Any
) -> None:
    request = make_request(checked=False)
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()

    assert "The checks of this version are running" in page
    assert reverse("request_status", args=[request.pk]) in page


@pytest.mark.parametrize("role", ["requester", "approver"])
def test_the_requester_and_approvers_can_run_the_checks_again(
    as_role: Any, role: str, rita_request: ImportRequest, published: list[Any]
) -> None:
    published.clear()

    response = as_role(role).post(reverse("request_action", args=[rita_request.pk, "recheck"]))

    assert response.status_code == 302
    assert published == [("run_preflight_checks", (rita_request.pk, 1))]


@pytest.mark.parametrize(("role", "status"), [("auditor", 403), ("other_requester", 404)])
def test_others_cannot_run_the_checks(
    as_role: Any, role: str, status: int, rita_request: ImportRequest, published: list[Any]
) -> None:
    published.clear()

    response = as_role(role).post(reverse("request_action", args=[rita_request.pk, "recheck"]))

    assert response.status_code == status
    assert published == []


def test_the_status_endpoint_reports_state_and_history_length_to_who_may_see_it(
    client: Client, requester: Any, other_requester: Any, rita_request: ImportRequest
) -> None:
    client.force_login(requester)
    mine = client.get(reverse("request_status", args=[rita_request.pk]))
    client.force_login(other_requester)
    theirs = client.get(reverse("request_status", args=[rita_request.pk]))

    assert mine.json() == {
        "state": "submitted",
        "state_label": "Submitted",
        "version": 1,
        "events": 2,
        "next_attempt_at": None,
        "progress": None,  # a classic import reports no stages
        "rollout": None,  # no delivery plan, or not started (test_rollout_pages has one)
    }
    assert theirs.status_code == 404


def test_an_import_waiting_for_aws_says_why_when_it_tries_next_and_until_when(
    client: Client, requester: Any, rita_request: ImportRequest, settings: Any
) -> None:
    settings.PORTAL_RETRY_BUDGET_SECONDS = 6 * 3600
    since = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    next_attempt = timezone.now() + timedelta(seconds=90)
    waiting = {"reason": "transient", "message": aws.MSG_THROTTLED, "since": since.isoformat(), "attempts": 3}
    ImportRequest.objects.filter(pk=rita_request.pk).update(
        state=State.SUBMITTING, waiting=waiting, next_attempt_at=next_attempt
    )
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()
    status = client.get(reverse("request_status", args=[rita_request.pk])).json()

    assert "Waiting for AWS" in page
    assert aws.MSG_THROTTLED in page
    assert f'Next attempt at <time datetime="{next_attempt.isoformat()}">{next_attempt:%H:%M:%S}</time>' in page
    assert "Attempt 3. The portal keeps trying until 2026-11-27 15:00" in page
    assert status["next_attempt_at"] == next_attempt.isoformat()
    assert f'data-next-attempt="{next_attempt.isoformat()}"' in page


def test_an_import_waiting_for_its_turn_says_so_without_a_deadline(
    client: Client, requester: Any, rita_request: ImportRequest
) -> None:
    waiting = {"reason": "rate", "message": image.MSG_WAITING_FOR_TURN}
    ImportRequest.objects.filter(pk=rita_request.pk).update(
        state=State.SUBMITTING, waiting=waiting, next_attempt_at=timezone.now() + timedelta(seconds=30)
    )
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()

    assert "Waiting for its turn at AWS" in page
    assert escape(image.MSG_WAITING_FOR_TURN) in page
    assert "keeps trying until" not in page


def test_a_failed_import_explains_each_error_code(client: Client, requester: Any, rita_request: ImportRequest) -> None:
    failure = {
        "message": "AWS could not import the image: it failed 1 check.",
        "details": [{"code": "OfficeInstalled", "aws_message": "Office found", "explanation": "Uninstall Office."}],
        "aws_message": "Validation failed",
    }
    ImportRequest.objects.filter(pk=rita_request.pk).update(state=State.FAILED, failure=failure)
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()

    assert "<strong>OfficeInstalled</strong>: Uninstall Office." in page
    assert "AWS said: Validation failed" in page


# --- after a failed import ---------------------------------------------------------------------

VALIDATION_FAILURE = {
    "message": "AWS could not import the image: it failed 1 check (OfficeInstalled).",
    "details": [
        {
            "code": "OfficeInstalled",
            "aws_message": "Office found",
            "explanation": "Remove volume-licensed Office.",
            "source": "https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html",
            "documented": True,
        }
    ],
    "checker": "https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html#byol-checker",
    "next_step": "revise",
}


@pytest.fixture
def failed_request(rita_request: ImportRequest) -> ImportRequest:
    ImportRequest.objects.filter(pk=rita_request.pk).update(
        state=State.FAILED, failure=VALIDATION_FAILURE, aws_image_id="wsi-failed001"
    )
    rita_request.refresh_from_db()
    return rita_request


def test_a_failed_validation_offers_the_requester_a_revision_and_approvers_no_retry(
    as_role: Any, failed_request: ImportRequest
) -> None:
    requester_page = as_role("requester").get(reverse("request_detail", args=[failed_request.pk])).content.decode()
    approver_page = as_role("approver").get(reverse("request_detail", args=[failed_request.pk])).content.decode()

    assert "the request itself must change: the requester revises it" in requester_page
    assert f'href="{reverse("request_edit", args=[failed_request.pk])}">Revise this request</a>' in requester_page
    assert 'href="https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html"' in requester_page
    assert ">AWS's BYOL checker</a>" in requester_page
    assert "Retry the import" not in approver_page
    refused = as_role("approver").post(reverse("request_action", args=[failed_request.pk, "retry"]))
    assert refused.status_code == 409
    assert escape(workflow.MSG_RETRY_CANNOT_WORK) in refused.content.decode()


def test_a_transient_give_up_offers_approvers_a_retry(as_role: Any, failed_request: ImportRequest) -> None:
    ImportRequest.objects.filter(pk=failed_request.pk).update(
        failure={"message": "AWS kept failing for 6 hours", "next_step": "retry"}
    )

    page = as_role("approver").get(reverse("request_detail", args=[failed_request.pk])).content.decode()

    assert "nothing in the request needs to change" in page
    assert "Retry the import" in page


def test_the_requester_revises_a_failed_request_through_the_edit_form(
    as_role: Any, failed_request: ImportRequest, target: Any, published: list[Any]
) -> None:
    client = as_role("requester")
    form_page = client.get(reverse("request_edit", args=[failed_request.pk])).content.decode()

    response = client.post(
        reverse("request_edit", args=[failed_request.pk]),
        form_data(target, image_name="rita-image", ec2_image_id="ami-0fedcba9876543210", version="1"),
    )

    assert '<h1 class="h3">Revise IMP-' in form_page
    assert response.status_code == 302
    failed_request.refresh_from_db()
    assert (failed_request.state, failed_request.version) == (State.SUBMITTED, 2)
    assert failed_request.ec2_image_id == "ami-0fedcba9876543210"
    assert failed_request.stale_image_id == "wsi-failed001"
    page = client.get(reverse("request_detail", args=[failed_request.pk])).content.decode()
    assert "The last attempt failed" in page
    assert "Remove volume-licensed Office." in page  # the original failure stays in sight
    assert "wsi-failed001" in page
    assert "Revised after a failed import" in page


def test_nobody_else_revises_a_failed_request(as_role: Any, failed_request: ImportRequest, target: Any) -> None:
    data = form_data(target, image_name="rita-image", ec2_image_id="ami-0fedcba9876543210", version="1")

    for role in ("approver", "other_requester", "auditor"):
        response = as_role(role).post(reverse("request_edit", args=[failed_request.pk]), data)
        assert response.status_code in (403, 404), role

    failed_request.refresh_from_db()
    assert (failed_request.state, failed_request.version) == (State.FAILED, 1)


def test_an_available_image_with_an_update_from_aws_says_so(as_role: Any, rita_request: ImportRequest) -> None:
    image = {
        "image_id": "wsi-abc123def",
        "state": "AVAILABLE",
        "update_available": True,
        "update_description": "New drivers",
    }
    ImportRequest.objects.filter(pk=rita_request.pk).update(state=State.AVAILABLE)
    with transaction.atomic():
        append_event(
            ImportRequest.objects.get(pk=rita_request.pk),
            action="image_available",
            actor=None,
            from_state="importing",
            to_state="available",
            data={"image": image},
        )

    page = as_role("requester").get(reverse("request_detail", args=[rita_request.pk])).content.decode()

    assert "AWS has an update for this image: New drivers." in page


# --- headers --------------------------------------------------------------------------------


def test_pages_carry_a_strict_content_security_policy_and_a_permissions_policy(client: Client, requester: Any) -> None:
    client.force_login(requester)

    response = client.get(reverse("dashboard"))

    policy = dict(
        directive.strip().split(" ", 1) for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert "geolocation=()" in response.headers["Permissions-Policy"]


@pytest.mark.parametrize("url_name", ["dashboard", "request_list", "audit_export"])
def test_nothing_a_signed_in_person_sees_is_stored_by_browsers_or_caches(
    client: Client, approver: Any, url_name: str
) -> None:
    client.force_login(approver)

    response = client.get(reverse(url_name))

    assert response.status_code == 200
    cache_control = {part.strip() for part in response.headers["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= cache_control


@pytest.mark.parametrize("action", ["cancel", "recheck"])
def test_a_requesters_button_on_a_page_of_an_older_version_is_refused_and_nothing_changes(
    client: Client, requester: Any, rita_request: ImportRequest, published: list[Any], action: str
) -> None:
    # Shown version 1 in one tab, edited in another: the first tab's button acts on nothing.
    client.force_login(requester)
    page = client.get(reverse("request_detail", args=[rita_request.pk])).content.decode()
    assert f'action="{reverse("request_action", args=[rita_request.pk, action])}"' in page
    workflow.edit_request(
        request_id=rita_request.pk, actor=requester, fields={"image_name": "changed"}, expected_version=1
    )
    events, published_before = rita_request.events.count(), len(published)

    response = client.post(reverse("request_action", args=[rita_request.pk, action]), {"version": "1"})

    assert response.status_code == 409
    rita_request.refresh_from_db()
    assert (rita_request.state, rita_request.version) == (State.SUBMITTED, 2)
    assert rita_request.events.count() == events
    assert len(published) == published_before
