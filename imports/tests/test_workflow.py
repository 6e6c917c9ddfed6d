"""Every transition, allowed and refused, with the audit events it writes."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail

from imports import roles, workflow
from imports.audit import verify_chain
from imports.models import ImportRequest, RequestEvent
from imports.tests.conftest import pass_preflight, request_fields
from imports.workflow import Action

State = ImportRequest.State


def events(request: ImportRequest) -> list[tuple[str, str, str]]:
    return list(request.events.order_by("seq").values_list("action", "from_state", "to_state"))


def force_state(request: ImportRequest, state: str) -> None:
    """Put a request in a state the worker reaches, without going through AWS."""
    ImportRequest.objects.filter(pk=request.pk).update(state=state)
    request.refresh_from_db()


# --- the transition table -------------------------------------------------------------------


def test_every_state_is_reachable_and_every_transition_targets_a_known_state() -> None:
    targets = {t.target for t in workflow.TRANSITIONS.values() if t.target is not None}
    sources = {s for t in workflow.TRANSITIONS.values() for s in t.sources}
    assert targets | sources == set(State.values)


def test_every_action_has_a_transition_and_a_label() -> None:
    assert set(workflow.TRANSITIONS) == set(Action)
    assert all(action.label for action in Action)


# --- submit ---------------------------------------------------------------------------------


def test_submitting_creates_a_request_and_its_first_audit_event(requester: Any, target: Any, approver: Any) -> None:
    request = workflow.submit_request(requester=requester, fields=request_fields(target))

    assert request.reference == f"IMP-{request.pk:06d}"
    request.refresh_from_db()
    assert request.state == State.SUBMITTED
    assert request.version == 1
    event = request.events.get()
    assert (event.action, event.from_state, event.to_state, event.actor) == ("submit", "", "submitted", requester)
    assert event.data["parameters"]["ImageName"] == "win10-finance-2026"


def test_submitting_emails_the_approvers_but_not_the_requester(
    requester: Any, target: Any, approver: Any, approving_requester: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        request = workflow.submit_request(requester=approving_requester, fields=request_fields(target))

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [approver.email]
    assert request.reference in mail.outbox[0].subject
    assert "submitted" in mail.outbox[0].subject


def test_a_user_without_the_requester_role_cannot_submit(auditor: Any, target: Any) -> None:
    with pytest.raises(workflow.NotAllowed):
        workflow.submit_request(requester=auditor, fields=request_fields(target))

    assert not ImportRequest.objects.exists()
    assert not RequestEvent.objects.exists()


def test_submitting_a_name_a_live_request_already_uses_is_refused(
    make_request: Any, requester: Any, target: Any
) -> None:
    make_request(image_name="shared-name")

    with pytest.raises(workflow.NameTaken) as refused:
        workflow.submit_request(requester=requester, fields=request_fields(target, image_name="shared-name"))

    assert refused.value.message == workflow.MSG_NAME_TAKEN
    assert ImportRequest.objects.count() == 1
    assert RequestEvent.objects.count() == 2


def test_a_name_freed_by_a_rejected_request_can_be_used_again(make_request: Any, approver: Any) -> None:
    first = make_request(image_name="reused-name")
    workflow.reject_request(request_id=first.pk, actor=approver, expected_version=1, comment="Wrong AMI")

    second = make_request(image_name="reused-name")

    assert second.state == State.SUBMITTED


# --- approve, reject, request changes -------------------------------------------------------


def test_approver_approves_and_the_event_records_the_exact_parameters(
    make_request: Any, approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = make_request(office="Microsoft_Office_2019")

    with django_capture_on_commit_callbacks(execute=True):
        approved = workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1, comment="ok")

    assert approved.state == State.APPROVED
    request.refresh_from_db()
    assert request.approver == approver
    event = request.events.get(action="approve")
    assert (event.from_state, event.to_state, event.comment) == ("submitted", "approved", "ok")
    assert event.data["version"] == 1
    assert event.data["parameters"] == request.aws_parameters()
    assert event.data["parameters"]["Applications"] == ["Microsoft_Office_2019"]
    assert [m.to for m in mail.outbox] == [[request.requester.email]]
    assert "approved" in mail.outbox[0].subject


def test_approver_cannot_approve_own_request(approving_requester: Any, target: Any) -> None:
    request = workflow.submit_request(requester=approving_requester, fields=request_fields(target))

    with pytest.raises(workflow.NotAllowed) as refused:
        workflow.approve_request(request_id=request.pk, actor=approving_requester, expected_version=1)

    assert refused.value.message == workflow.MSG_OWN_REQUEST
    request.refresh_from_db()
    assert request.state == State.SUBMITTED
    assert request.approver is None
    assert events(request) == [("submit", "", "submitted")]


@pytest.mark.parametrize("actor_name", ["requester", "other_requester", "auditor"])
def test_only_approvers_can_decide(make_request: Any, actor_name: str, request: Any) -> None:
    import_request = make_request()
    actor = request.getfixturevalue(actor_name)

    for verb in (workflow.approve_request, workflow.reject_request, workflow.request_changes):
        with pytest.raises(workflow.NotAllowed):
            verb(request_id=import_request.pk, actor=actor, expected_version=1, comment="no")

    import_request.refresh_from_db()
    assert import_request.state == State.SUBMITTED
    assert import_request.events.count() == 2


def test_a_superuser_approves_only_as_a_member_of_approvers(make_request: Any, superuser: Any) -> None:
    request = make_request()

    with pytest.raises(workflow.NotAllowed):
        workflow.approve_request(request_id=request.pk, actor=superuser, expected_version=1)
    request.refresh_from_db()
    assert request.state == State.SUBMITTED

    superuser.groups.add(Group.objects.get(name=roles.APPROVERS))
    member = get_user_model().objects.get(pk=superuser.pk)  # roles are read once per user object
    approved = workflow.approve_request(request_id=request.pk, actor=member, expected_version=1)

    assert approved.state == State.APPROVED


def test_a_superuser_files_no_request_without_the_requester_role(superuser: Any, target: Any) -> None:
    with pytest.raises(workflow.NotAllowed):
        workflow.submit_request(requester=superuser, fields=request_fields(target))

    assert not ImportRequest.objects.exists()


def test_a_requester_removed_from_the_role_can_no_longer_act_on_their_own_request(
    make_request: Any, requester: Any
) -> None:
    request = make_request()
    requester.groups.clear()
    former = get_user_model().objects.get(pk=requester.pk)

    with pytest.raises(workflow.NotAllowed):
        workflow.edit_request(request_id=request.pk, actor=former, fields={"office": ""}, expected_version=1)
    with pytest.raises(workflow.NotAllowed):
        workflow.cancel_request(request_id=request.pk, actor=former)

    request.refresh_from_db()
    assert (request.state, request.version) == (State.SUBMITTED, 1)


@pytest.mark.parametrize(
    ("verb", "state", "action"),
    [
        (workflow.reject_request, State.REJECTED, "reject"),
        (workflow.request_changes, State.CHANGES_REQUESTED, "request_changes"),
    ],
)
def test_rejecting_or_sending_back_needs_a_comment_and_records_it(
    make_request: Any, approver: Any, verb: Any, state: str, action: str, django_capture_on_commit_callbacks: Any
) -> None:
    request = make_request()

    with pytest.raises(workflow.WorkflowError) as refused:
        verb(request_id=request.pk, actor=approver, expected_version=1, comment="   ")
    assert refused.value.message == workflow.MSG_COMMENT_REQUIRED

    with django_capture_on_commit_callbacks(execute=True):
        result = verb(request_id=request.pk, actor=approver, expected_version=1, comment="  Use the 22H2 AMI  ")

    assert result.state == state
    request.refresh_from_db()
    assert request.state == state
    assert request.approver is None
    event = request.events.get(action=action)
    assert (event.actor, event.comment) == (approver, "Use the 22H2 AMI")
    assert len(mail.outbox) == 1
    assert "Use the 22H2 AMI" in mail.outbox[0].body


def test_a_decision_on_an_outdated_version_is_refused(
    make_request: Any, requester: Any, approver: Any, target: Any
) -> None:
    request = make_request()
    workflow.edit_request(
        request_id=request.pk, actor=requester, fields={"image_name": "renamed-image"}, expected_version=1
    )

    with pytest.raises(workflow.Conflict) as refused:
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    assert refused.value.message == workflow.MSG_CHANGED_SINCE_VIEWED
    request.refresh_from_db()
    assert (request.state, request.version, request.approver) == (State.SUBMITTED, 2, None)
    assert [e[0] for e in events(request)] == ["submit", "preflight", "edit"]


def test_the_second_decision_is_told_who_decided_first(make_request: Any, approver: Any, other_approver: Any) -> None:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    with pytest.raises(workflow.Conflict) as refused:
        workflow.reject_request(request_id=request.pk, actor=other_approver, expected_version=1, comment="No")

    assert f"{request.reference} was already approved by anna" in refused.value.message
    request.refresh_from_db()
    assert (request.state, request.approver) == (State.APPROVED, approver)
    assert [e[0] for e in events(request)] == ["submit", "preflight", "approve"]


# --- edit and resubmit ----------------------------------------------------------------------


def test_requester_edits_a_submitted_request_and_the_version_goes_up(make_request: Any, requester: Any) -> None:
    request = make_request(image_name="first-name")

    edited = workflow.edit_request(
        request_id=request.pk, actor=requester, fields={"image_name": "second-name"}, expected_version=1
    )

    assert (edited.state, edited.version, edited.image_name) == (State.SUBMITTED, 2, "second-name")
    event = request.events.get(action="edit")
    assert event.data["before"]["parameters"]["ImageName"] == "first-name"
    assert event.data["after"]["parameters"]["ImageName"] == "second-name"


def test_editing_a_request_sent_back_for_changes_resubmits_it(
    make_request: Any, requester: Any, approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = make_request()
    workflow.request_changes(request_id=request.pk, actor=approver, expected_version=1, comment="Add a tag")

    with django_capture_on_commit_callbacks(execute=True):
        edited = workflow.edit_request(
            request_id=request.pk,
            actor=requester,
            fields={"tags": [{"Key": "Team", "Value": "Finance"}]},
            expected_version=1,
        )

    assert edited.state == State.SUBMITTED
    assert events(request)[-1] == ("edit", "changes_requested", "submitted")
    assert [m.to for m in mail.outbox] == [[approver.email]]
    assert "resubmitted" in mail.outbox[0].subject


def test_nobody_else_can_edit_a_request(make_request: Any, other_requester: Any, approver: Any) -> None:
    request = make_request()

    for actor in (other_requester, approver):
        with pytest.raises(workflow.NotAllowed):
            workflow.edit_request(request_id=request.pk, actor=actor, fields={"image_name": "x"}, expected_version=1)

    request.refresh_from_db()
    assert request.image_name != "x"


@pytest.mark.parametrize(
    "state", [State.APPROVED, State.SUBMITTING, State.IMPORTING, State.AVAILABLE, State.FAILED, State.REJECTED]
)
def test_parameters_cannot_change_once_approved_or_decided(make_request: Any, requester: Any, state: str) -> None:
    request = make_request(image_name="approved-name")
    force_state(request, state)

    with pytest.raises(workflow.Conflict):
        workflow.edit_request(
            request_id=request.pk, actor=requester, fields={"image_name": "sneaky"}, expected_version=1
        )

    request.refresh_from_db()
    assert request.image_name == "approved-name"
    assert request.events.count() == 2


def test_edit_refuses_fields_that_are_not_request_parameters(make_request: Any, requester: Any) -> None:
    request = make_request()

    with pytest.raises(ValueError, match="state"):
        workflow.edit_request(request_id=request.pk, actor=requester, fields={"state": "approved"}, expected_version=1)


# --- cancel and retry -----------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.SUBMITTED, State.CHANGES_REQUESTED, State.APPROVED])
def test_requester_cancels_before_the_import_call(make_request: Any, requester: Any, state: str) -> None:
    request = make_request()
    force_state(request, state)

    cancelled = workflow.cancel_request(request_id=request.pk, actor=requester, comment="Not needed")

    assert cancelled.state == State.CANCELLED
    assert events(request)[-1] == ("cancel", state, "cancelled")


@pytest.mark.parametrize("state", [State.SUBMITTING, State.IMPORTING, State.AVAILABLE, State.FAILED])
def test_requester_cannot_cancel_once_the_import_call_is_made(make_request: Any, requester: Any, state: str) -> None:
    request = make_request()
    force_state(request, state)

    with pytest.raises(workflow.Conflict) as refused:
        workflow.cancel_request(request_id=request.pk, actor=requester)

    assert "cannot be cancelled now" in refused.value.message
    request.refresh_from_db()
    assert request.state == state


def test_only_the_requester_can_cancel(make_request: Any, approver: Any, other_requester: Any) -> None:
    request = make_request()

    for actor in (approver, other_requester):
        with pytest.raises(workflow.NotAllowed):
            workflow.cancel_request(request_id=request.pk, actor=actor)

    request.refresh_from_db()
    assert request.state == State.SUBMITTED


def test_approver_retries_a_failed_import(make_request: Any, approver: Any, other_approver: Any) -> None:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=300)
    workflow.record_import_refused(
        request_id=request.pk, lease_token=claimed.lease_token, failure={"message": "Access denied"}, data={}
    )

    retried = workflow.retry_import(request_id=request.pk, actor=other_approver, comment="Role fixed")

    assert retried.state == State.APPROVED
    request.refresh_from_db()
    assert request.failure == {}
    assert events(request)[-1] == ("retry", "failed", "approved")


def test_retry_is_refused_when_the_name_was_taken_meanwhile(make_request: Any, approver: Any) -> None:
    request = make_request(image_name="contested")
    force_state(request, State.FAILED)
    make_request(image_name="contested")

    with pytest.raises(workflow.NameTaken):
        workflow.retry_import(request_id=request.pk, actor=approver)

    request.refresh_from_db()
    assert request.state == State.FAILED
    assert request.events.count() == 2


def test_retry_is_only_for_failed_requests_and_not_for_the_requester(
    make_request: Any, requester: Any, approver: Any
) -> None:
    request = make_request()

    with pytest.raises(workflow.Conflict):
        workflow.retry_import(request_id=request.pk, actor=approver)
    force_state(request, State.FAILED)
    with pytest.raises(workflow.NotAllowed):
        workflow.retry_import(request_id=request.pk, actor=requester)

    request.refresh_from_db()
    assert request.state == State.FAILED


# --- the worker's transitions ----------------------------------------------------------------


def test_the_worker_path_to_available(
    make_request: Any, approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=300)
    assert claimed.state == State.SUBMITTING
    assert len(claimed.lease_token) == 32
    accepted = workflow.record_import_accepted(
        request_id=request.pk,
        lease_token=claimed.lease_token,
        aws_image_id="wsi-abc123def",
        data={"aws_request_id": "r-1"},
    )
    assert (accepted.state, accepted.aws_image_id) == (State.IMPORTING, "wsi-abc123def")
    with django_capture_on_commit_callbacks(execute=True):
        available = workflow.record_image_available(request_id=request.pk, data={"State": "AVAILABLE"})

    assert available.state == State.AVAILABLE
    assert events(request)[3:] == [
        ("claim", "approved", "submitting"),
        ("aws_accepted", "submitting", "importing"),
        ("image_available", "importing", "available"),
    ]
    assert all(e.actor is None for e in request.events.exclude(action__in=["submit", "approve"]))
    assert request.events.get(action="aws_accepted").data == {"aws_request_id": "r-1", "aws_image_id": "wsi-abc123def"}
    assert [m.to for m in mail.outbox] == [[request.requester.email]]


def test_the_worker_records_a_refusal_and_an_image_error(make_request: Any, approver: Any) -> None:
    refused = make_request()
    failed = make_request()
    tokens = {}
    for request in (refused, failed):
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
        tokens[request.pk] = workflow.claim_for_import(request_id=request.pk, lease_seconds=300).lease_token
    workflow.record_import_accepted(
        request_id=failed.pk, lease_token=tokens[failed.pk], aws_image_id="wsi-000000001", data={}
    )

    workflow.record_import_refused(
        request_id=refused.pk, lease_token=tokens[refused.pk], failure={"message": "AMI not found"}, data={}
    )
    workflow.record_image_failed(request_id=failed.pk, failure={"message": "OfficeInstalled"}, data={})

    refused.refresh_from_db()
    failed.refresh_from_db()
    assert (refused.state, refused.failure["message"]) == (State.FAILED, "AMI not found")
    assert (failed.state, failed.failure["message"]) == (State.FAILED, "OfficeInstalled")
    assert events(refused)[-1] == ("aws_refused", "submitting", "failed")
    assert events(failed)[-1] == ("image_failed", "importing", "failed")


def test_a_request_is_claimed_only_once(make_request: Any, approver: Any) -> None:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    workflow.claim_for_import(request_id=request.pk, lease_seconds=300)

    with pytest.raises(workflow.Conflict):
        workflow.claim_for_import(request_id=request.pk, lease_seconds=300)

    assert [e[0] for e in events(request)].count("claim") == 1


def test_people_cannot_drive_the_workers_transitions(make_request: Any, approver: Any) -> None:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    with pytest.raises(workflow.NotAllowed):
        workflow._transition(request_id=request.pk, action=Action.CLAIM, actor=approver)

    request.refresh_from_db()
    assert request.state == State.APPROVED


@pytest.mark.parametrize(
    ("verb", "kwargs", "allowed_from"),
    [
        (workflow.record_import_accepted, {"lease_token": "", "aws_image_id": "wsi-1", "data": {}}, State.SUBMITTING),
        (workflow.record_import_refused, {"lease_token": "", "failure": {}, "data": {}}, State.SUBMITTING),
        (workflow.record_image_available, {"data": {}}, State.IMPORTING),
        (workflow.record_image_failed, {"failure": {}, "data": {}}, State.IMPORTING),
    ],
)
def test_worker_transitions_are_refused_from_any_other_state(
    make_request: Any, verb: Any, kwargs: dict[str, Any], allowed_from: str
) -> None:
    request = make_request()
    for state in State.values:
        if state == allowed_from:
            continue
        force_state(request, state)
        with pytest.raises(workflow.Conflict):
            verb(request_id=request.pk, **kwargs)
        request.refresh_from_db()
        assert request.state == state
    assert request.events.count() == 2


def test_an_unknown_request_is_not_found(approver: Any) -> None:
    with pytest.raises(workflow.NotFound):
        workflow.approve_request(request_id=987654, actor=approver, expected_version=1)


# --- available actions ----------------------------------------------------------------------


def test_available_actions_follow_role_and_state(
    make_request: Any, requester: Any, approver: Any, auditor: Any, other_requester: Any
) -> None:
    request = make_request()

    assert set(workflow.available_actions(requester, request)) == {Action.EDIT, Action.CANCEL}
    assert set(workflow.available_actions(approver, request)) == {Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES}
    assert workflow.available_actions(auditor, request) == []
    assert workflow.available_actions(other_requester, request) == []
    force_state(request, State.FAILED)
    assert workflow.available_actions(approver, request) == [Action.RETRY]
    assert workflow.available_actions(requester, request) == [Action.REVISE]
    ImportRequest.objects.filter(pk=request.pk).update(failure={"message": "ERROR", "next_step": "revise"})
    request.refresh_from_db()
    assert workflow.available_actions(approver, request) == []  # a retry would fail the same way


def test_every_transition_keeps_the_audit_chain_intact(make_request: Any, requester: Any, approver: Any) -> None:
    request = make_request()
    workflow.request_changes(request_id=request.pk, actor=approver, expected_version=1, comment="Tag it")
    edited = workflow.edit_request(request_id=request.pk, actor=requester, fields={"office": ""}, expected_version=1)
    pass_preflight(edited)
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=2)
    workflow.claim_for_import(request_id=request.pk, lease_seconds=300)

    count, problems = verify_chain()

    assert (count, problems) == (7, [])


# --- after a failed import: revise or retry --------------------------------------------------

IMAGE_ERROR = {
    "message": "AWS could not import the image: it failed 1 check (OfficeInstalled).",
    "details": [{"code": "OfficeInstalled", "aws_message": "Office found", "explanation": "Remove Office."}],
    "next_step": "revise",
}


def failed_import(make_request: Any, approver: Any, *, failure: dict[str, Any], image_id: str = "") -> ImportRequest:
    request = make_request()
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    ImportRequest.objects.filter(pk=request.pk).update(state=State.FAILED, failure=failure, aws_image_id=image_id)
    request.refresh_from_db()
    return request


def test_the_requester_revises_a_failed_request_into_a_new_version_that_goes_back_to_approval(
    make_request: Any, requester: Any, approver: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    request = failed_import(make_request, approver, failure=IMAGE_ERROR, image_id="wsi-failed001")
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        revised = workflow.revise_request(
            request_id=request.pk, actor=requester, fields={"ec2_image_id": "ami-0fedcba9876543210"}, expected_version=1
        )

    assert (revised.state, revised.version, revised.reference) == (State.SUBMITTED, 2, request.reference)
    request.refresh_from_db()
    assert request.ec2_image_id == "ami-0fedcba9876543210"
    assert (request.failure, request.aws_image_id, request.approver) == ({}, "", None)
    assert request.stale_image_id == "wsi-failed001"  # deleted before the new version is imported
    [earlier] = request.earlier_failures
    assert (earlier["failure"], earlier["version"]) == (IMAGE_ERROR, 1)
    assert events(request)[-1] == ("revise", "failed", "submitted")
    revise = request.events.get(action="revise")
    assert revise.actor == requester
    assert revise.data["before"]["parameters"]["Ec2ImageId"] == "ami-0123456789abcdef0"
    assert revise.data["after"]["parameters"]["Ec2ImageId"] == "ami-0fedcba9876543210"
    assert published == [("run_preflight_checks", (request.pk, 2))]
    with pytest.raises(workflow.Conflict):
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)


def test_only_the_requester_revises_and_only_a_failed_request(
    make_request: Any, requester: Any, approver: Any, other_requester: Any
) -> None:
    failed = failed_import(make_request, approver, failure=IMAGE_ERROR)
    submitted = make_request()

    with pytest.raises(workflow.NotAllowed):
        workflow.revise_request(request_id=failed.pk, actor=other_requester, fields={}, expected_version=1)
    with pytest.raises(workflow.NotAllowed):
        workflow.revise_request(request_id=failed.pk, actor=approver, fields={}, expected_version=1)
    with pytest.raises(workflow.Conflict):
        workflow.revise_request(request_id=submitted.pk, actor=requester, fields={}, expected_version=1)

    failed.refresh_from_db()
    assert (failed.state, failed.version) == (State.FAILED, 1)


def test_a_retry_that_would_fail_the_same_way_is_refused_with_what_to_do_instead(
    make_request: Any, approver: Any, other_approver: Any
) -> None:
    request = failed_import(make_request, approver, failure=IMAGE_ERROR, image_id="wsi-failed001")

    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.retry_import(request_id=request.pk, actor=other_approver)

    assert refused.value.message == workflow.MSG_RETRY_CANNOT_WORK
    request.refresh_from_db()
    assert (request.state, request.failure) == (State.FAILED, IMAGE_ERROR)
    assert "retry" not in [e[0] for e in events(request)]


def test_a_retry_keeps_the_failure_in_sight_and_marks_the_failed_image_for_deletion(
    make_request: Any, approver: Any, other_approver: Any
) -> None:
    gave_up = {"message": "AWS kept failing for 6 hours", "next_step": "retry"}
    request = failed_import(make_request, approver, failure=gave_up, image_id="wsi-vanish01")

    workflow.retry_import(request_id=request.pk, actor=other_approver, comment="AWS is back")

    request.refresh_from_db()
    assert (request.state, request.failure, request.stale_image_id) == (State.APPROVED, {}, "wsi-vanish01")
    assert [e["failure"] for e in request.earlier_failures] == [gave_up]
