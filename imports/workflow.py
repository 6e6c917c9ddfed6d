"""The only code that changes an import request's state.

Every change is a compare-and-set on (state, version) with its audit event in the same
transaction; side effects (email, Celery work) run only after commit. Who may do what is
checked here as well as in the views, so no caller can skip it.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from imports import dispatch, notifications, roles, selectors
from imports.audit import append_event
from imports.models import (
    Approval,
    AwsTarget,
    Delegation,
    EventAction,
    ImportRequest,
    RequestEvent,
    RolloutStep,
    format_reference,
)
from imports.rules import Rollout

State = ImportRequest.State

EDITABLE_FIELDS = (
    "target",
    "import_path",
    "windows_version",
    "ec2_image_id",
    "ingestion_process",
    "source_kind",
    "ec2_import_task_id",
    "image_build_version_arn",
    "infrastructure_configuration_arn",
    "compute_type",
    "protocol",
    "image_validation_mode",
    "image_name",
    "image_description",
    "tags",
    "office",
    "justification",
    "delivery_plan",
)

MSG_NOT_FOUND = "That request does not exist."
MSG_NOT_ALLOWED = "You are not allowed to do that with this request."
MSG_OWN_REQUEST = "You cannot decide on your own request: another approver must do it."
MSG_NOT_APPROVER_HERE = (
    "Requests for {target} are decided by approvers in {groups} only: you are in none of them, and stand in "
    "for none of them today. Nothing was changed."
)
MSG_ALREADY_APPROVED = (
    "You already approved version {version} of this request; it needs {missing} more approval(s) from "
    "other approvers. Nothing was changed."
)
MSG_COMMENT_REQUIRED = "Write a comment that tells the requester why."
MSG_CHANGED_SINCE_VIEWED = (
    "The requester changed this request after you opened it. Nothing was decided: "
    "review the new version and decide again."
)
MSG_NAME_TAKEN = "Another open request for this target already uses this image name: choose a different image name."
MSG_PREFLIGHT_PENDING = (
    "The pre-flight checks of this version have not finished yet: wait a moment and reload the page, "
    "or run the checks again."
)
MSG_PREFLIGHT_FAILED = (
    "The pre-flight checks failed, so this request cannot be approved. Send it back for changes, or run "
    "the checks again once the problem is fixed."
)
MSG_LEASE_HELD = "Another worker is importing {reference} right now."
MSG_RETRY_CANNOT_WORK = (
    "Retrying would fail the same way: the request itself must change. The requester can revise it "
    "(a new AMI, say), and it comes back for approval."
)
MSG_WRONG_STATE = "{reference} is {state}, so it cannot be {verb} now. Nothing was changed."
MSG_ALREADY_DECIDED = "{reference} was already {state} by {who} at {when}. Nothing was changed."


Action = EventAction


@dataclass(frozen=True)
class Transition:
    sources: tuple[str, ...]
    target: str | None  # None: the event records a step and the state stays
    verb: str


TRANSITIONS: dict[Action, Transition] = {
    Action.SUBMIT: Transition((), State.SUBMITTED, "submitted"),
    Action.EDIT: Transition((State.SUBMITTED, State.CHANGES_REQUESTED), State.SUBMITTED, "edited"),
    Action.APPROVE: Transition((State.SUBMITTED,), State.APPROVED, "approved"),
    # One approval of a quorum: the request waits for the others (approve_request).
    Action.APPROVAL: Transition((State.SUBMITTED,), None, "approved"),
    # Beat: a request nobody decided in time (record_overdue).
    Action.REMIND: Transition((State.SUBMITTED,), None, "reminded about"),
    Action.ESCALATE: Transition((State.SUBMITTED,), None, "escalated"),
    Action.REJECT: Transition((State.SUBMITTED,), State.REJECTED, "rejected"),
    Action.REQUEST_CHANGES: Transition((State.SUBMITTED,), State.CHANGES_REQUESTED, "sent back for changes"),
    Action.CANCEL: Transition((State.SUBMITTED, State.CHANGES_REQUESTED, State.APPROVED), State.CANCELLED, "cancelled"),
    Action.RETRY: Transition((State.FAILED,), State.APPROVED, "retried"),
    Action.REVISE: Transition((State.FAILED,), State.SUBMITTED, "revised"),
    Action.CLAIM: Transition((State.APPROVED,), State.SUBMITTING, "claimed for import"),
    Action.AWS_ACCEPTED: Transition((State.SUBMITTING,), State.IMPORTING, "marked as importing"),
    Action.AWS_REFUSED: Transition((State.SUBMITTING,), State.FAILED, "marked as refused by AWS"),
    Action.IMPORT_STOPPED: Transition((State.SUBMITTING,), State.FAILED, "stopped"),
    Action.IMAGE_AVAILABLE: Transition((State.IMPORTING,), State.AVAILABLE, "marked as available"),
    Action.IMAGE_FAILED: Transition((State.IMPORTING,), State.FAILED, "marked as failed"),
    Action.PREFLIGHT: Transition((State.SUBMITTED, State.CHANGES_REQUESTED, State.APPROVED), None, "checked"),
    Action.IMPORT_CALL: Transition((State.SUBMITTING,), None, "sent to AWS"),
    Action.IMPORT_RETRY: Transition((State.SUBMITTING,), None, "rescheduled"),
    Action.RECLAIM: Transition((State.SUBMITTING,), None, "taken over"),
    Action.IMAGE_STALLED: Transition((State.IMPORTING,), None, "flagged as stalled"),
    Action.IMAGE_DELETED: Transition((State.SUBMITTING,), None, "cleaned up"),
    # The delivery plan's steps (imports.steps), once the image is available.
    Action.STEP_CALL: Transition((State.AVAILABLE,), None, "rolled out"),
    Action.STEP_ACCEPTED: Transition((State.AVAILABLE,), None, "rolled out"),
    Action.STEP_RETRY: Transition((State.AVAILABLE,), None, "rolled out"),
    Action.STEP_DONE: Transition((State.AVAILABLE,), None, "rolled out"),
    Action.STEP_FAILED: Transition((State.AVAILABLE,), None, "rolled out"),
    Action.STEP_RETRIED: Transition((State.AVAILABLE,), None, "rolled out"),
}

REQUESTER_ACTIONS = frozenset({Action.EDIT, Action.REVISE, Action.CANCEL})
APPROVER_ACTIONS = frozenset({Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES, Action.RETRY, Action.STEP_RETRIED})
COMMENT_REQUIRED = frozenset({Action.REJECT, Action.REQUEST_CHANGES})
DECISIONS = (Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES, Action.CANCEL)


class WorkflowError(Exception):
    """A refusal with a message for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(WorkflowError):
    pass


class NotAllowed(WorkflowError):
    pass


class Conflict(WorkflowError):
    """Someone else changed the request first; nothing was changed."""


class NameTaken(WorkflowError):
    pass


class _LostRace(Exception):
    pass


def may(user: AbstractBaseUser | None, action: Action, request: ImportRequest) -> bool:
    """Whether `user` may take `action` on `request` in principle, whatever its state."""
    if action in REQUESTER_ACTIONS:
        return roles.has_role(user, roles.REQUESTERS) and request.requester_id == user.pk
    if action in APPROVER_ACTIONS:
        return (
            roles.has_role(user, roles.APPROVERS)
            and request.requester_id != user.pk
            and acting_for(user, request) is not None
        )
    # Submission is checked by submit_request; the worker's actions have no human actor.
    return user is None


def available_actions(user: AbstractBaseUser, request: ImportRequest) -> list[Action]:
    """The actions `user` can take on `request` now: what the page offers as buttons."""
    return [
        action
        for action in (*REQUESTER_ACTIONS, *APPROVER_ACTIONS)
        if request.state in TRANSITIONS[action].sources
        and may(user, action, request)
        and (action != Action.RETRY or may_retry(request))
        and (action != Action.APPROVE or not approved_already(user, request))
        and action != Action.STEP_RETRIED  # offered on the step itself (may_retry_step)
    ]


def approved_already(user: AbstractBaseUser, request: ImportRequest) -> bool:
    """Whether `user` gave an approval of the request's current version, their own or as a
    stand-in, or a stand-in gave theirs: under a quorum, what is missing is the others'."""
    if request.target.approvals_required <= 1:
        return False
    mine = Q(approver=user) | Q(decided_by=user)
    return Approval.objects.filter(mine, request=request, version=request.version).exists()


def _ensure_may(user: AbstractBaseUser | None, action: Action, request: ImportRequest) -> None:
    if may(user, action, request):
        return
    if action in APPROVER_ACTIONS and user is not None and request.requester_id == user.pk:
        raise NotAllowed(MSG_OWN_REQUEST)
    if action in APPROVER_ACTIONS and roles.has_role(user, roles.APPROVERS):
        groups = ", ".join(sorted(selectors.policy_groups(request.target, user)))
        raise NotAllowed(MSG_NOT_APPROVER_HERE.format(target=request.target.name, groups=groups))
    raise NotAllowed(MSG_NOT_ALLOWED)


def approver_for(user: AbstractBaseUser, target: AwsTarget) -> bool:
    """Whether the target's approval policy lets `user` decide its requests: every approver when
    it names no groups, else the approvers in one of them."""
    groups = selectors.policy_groups(target, user)
    return not groups or any(groups.values())


def acting_for(user: AbstractBaseUser, request: ImportRequest) -> AbstractBaseUser | None:
    """Whose decision `user` (an approver) takes on `request`: their own when the target's policy
    lets them decide, else that of an approver they stand in for today who may (never the
    request's requester); None: nobody's."""
    if approver_for(user, request.target):
        return user
    for approver in standing_in_for(user):
        if approver.pk != request.requester_id and approver_for(approver, request.target):
            return approver
    return None


def standing_in_for(user: AbstractBaseUser) -> list[AbstractBaseUser]:
    """The approvers `user` stands in for today: delegations not revoked whose days include
    today, from approvers still active in Approvers. Read once per user object."""
    cached = getattr(user, "_standing_in_for", None)
    if cached is None:
        current = Delegation.objects.in_force().filter(stand_in_id=user.pk).select_related("approver")
        cached = [d.approver for d in current if d.approver.is_active and roles.has_role(d.approver, roles.APPROVERS)]
        user._standing_in_for = cached
    return cached


def _on_behalf(actor: AbstractBaseUser | None, action: Action, request: ImportRequest) -> dict[str, Any]:
    """For a stand-in's decision, whose it is (the history shows "by B for A")."""
    if actor is None or action not in APPROVER_ACTIONS:
        return {}
    behalf = acting_for(actor, request)
    return {"on_behalf_of": behalf.get_username()} if behalf is not None and behalf.pk != actor.pk else {}


def _transition(
    *,
    request_id: int,
    action: Action,
    actor: AbstractBaseUser | None,
    comment: str = "",
    data: dict[str, Any] | Callable[[ImportRequest], dict[str, Any]] | None = None,
    expected_version: int | None = None,
    changes: Callable[[ImportRequest], dict[str, Any]] | None = None,
    after_commit: Callable[[ImportRequest, RequestEvent], None] | None = None,
    check: Callable[[ImportRequest], None] | None = None,
    guard: Q | None = None,
) -> ImportRequest:
    """Move one request along TRANSITIONS[action]: read, check, compare-and-set, audit.

    `check` may refuse with a WorkflowError after the state and version checks; `guard` adds
    conditions to the compare-and-set (a lease that must have expired, say)."""
    transition = TRANSITIONS[action]
    comment = comment.strip()
    if action in COMMENT_REQUIRED and not comment:
        raise WorkflowError(MSG_COMMENT_REQUIRED)
    try:
        with transaction.atomic():
            request = ImportRequest.objects.filter(pk=request_id).select_related("target").first()
            if request is None:
                raise NotFound(MSG_NOT_FOUND)
            _ensure_may(actor, action, request)
            if request.state not in transition.sources:
                raise _LostRace
            if expected_version is not None and request.version != expected_version:
                raise Conflict(MSG_CHANGED_SINCE_VIEWED)
            if check:
                check(request)
            to_state = transition.target or request.state
            field_changes = changes(request) if changes else {}
            same = ImportRequest.objects.filter(pk=request.pk, state=request.state, version=request.version)
            updated = same.filter(guard or Q()).update(state=to_state, updated_at=timezone.now(), **field_changes)
            if updated != 1:
                raise _LostRace
            from_state = request.state
            request.refresh_from_db()
            recorded = data(request) if callable(data) else data
            behalf = _on_behalf(actor, action, request)
            event = append_event(
                request,
                action=action,
                actor=actor,
                from_state=from_state,
                to_state=to_state,
                comment=comment,
                data={**(recorded or {}), **behalf} if behalf else recorded,
            )
            if after_commit:
                transaction.on_commit(lambda: after_commit(request, event), robust=True)
    except _LostRace:
        raise Conflict(_conflict_message(request_id, transition)) from None
    except IntegrityError as exc:
        _raise_if_name_taken(exc)
        raise
    return request


def _raise_if_name_taken(exc: IntegrityError) -> None:
    # PostgreSQL names the constraint; SQLite names the columns of the unique index.
    if "unique_live_image_name" in str(exc) or "image_name" in str(exc):
        raise NameTaken(MSG_NAME_TAKEN) from exc


def _conflict_message(request_id: int, transition: Transition) -> str:
    """Tell the loser of a race what happened instead, and who did it."""
    request = ImportRequest.objects.get(pk=request_id)
    moves = request.events.filter(to_state=request.state).exclude(from_state=request.state)
    last = moves.select_related("actor").order_by("-seq").first()
    if last is not None and last.action in DECISIONS:
        return MSG_ALREADY_DECIDED.format(
            reference=request.reference,
            state=request.get_state_display().lower(),
            who=last.actor_name,
            when=timezone.localtime(last.created_at).strftime("%Y-%m-%d %H:%M:%S"),
        )
    return MSG_WRONG_STATE.format(
        reference=request.reference, state=request.get_state_display().lower(), verb=transition.verb
    )


def _request_snapshot(request: ImportRequest) -> dict[str, Any]:
    return {
        "version": request.version,
        "target": {"id": request.target_id, "account_id": request.target.account_id, "region": request.target.region},
        "windows_version": request.windows_version,
        "parameters": request.aws_parameters(),
        # The delivery plan is approved with the import: its steps run as approved (imports.steps).
        "plan": request.delivery_plan,
    }


# --- People ---------------------------------------------------------------------------------


def submit_request(*, requester: AbstractBaseUser, fields: dict[str, Any]) -> ImportRequest:
    if not roles.has_role(requester, roles.REQUESTERS):
        raise NotAllowed(MSG_NOT_ALLOWED)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not request fields: {sorted(unknown)}")
    try:
        with transaction.atomic():
            request = ImportRequest.objects.create(
                requester=requester, state=State.SUBMITTED, decision_asked_at=timezone.now(), **fields
            )
            event = append_event(
                request,
                action=Action.SUBMIT,
                actor=requester,
                from_state="",
                to_state=State.SUBMITTED,
                data=_request_snapshot(request),
            )
            transaction.on_commit(lambda: notifications.request_awaits_decision(request, event), robust=True)
            dispatch.after_commit("run_preflight_checks", request.pk, request.version, request_id=request.pk)
    except IntegrityError as exc:
        _raise_if_name_taken(exc)
        raise
    return request


def edit_request(
    *, request_id: int, actor: AbstractBaseUser, fields: dict[str, Any], expected_version: int
) -> ImportRequest:
    """Change a request's parameters. It goes (back) to `submitted` and needs a fresh decision."""
    return _new_version(request_id=request_id, actor=actor, fields=fields, expected_version=expected_version)


def _new_version(
    *,
    request_id: int,
    actor: AbstractBaseUser,
    fields: dict[str, Any],
    expected_version: int,
    action: Action = Action.EDIT,
    also: Callable[[ImportRequest], dict[str, Any]] | None = None,
) -> ImportRequest:
    """A new version of the request's parameters, back to `submitted`, the checks queued; the
    event records the parameters before and after."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not request fields: {sorted(unknown)}")
    before: dict[str, Any] = {}

    def changes(request: ImportRequest) -> dict[str, Any]:
        before.update(_request_snapshot(request))
        return {**(also(request) if also else {}), **fields, "version": request.version + 1, **_waits_afresh()}

    def after_commit(request: ImportRequest, event: RequestEvent) -> None:
        notifications.request_awaits_decision(request, event)
        dispatch.publish("run_preflight_checks", (request.pk, request.version), request_id=request.pk)

    return _transition(
        request_id=request_id,
        action=action,
        actor=actor,
        expected_version=expected_version,
        changes=changes,
        data=lambda request: {"before": before, "after": _request_snapshot(request)},
        after_commit=after_commit,
    )


def _waits_afresh() -> dict[str, Any]:
    """A new version waits for its decision from now, nobody reminded yet."""
    return {"decision_asked_at": timezone.now(), "reminded_at": None, "escalated_at": None}


def _ensure_preflight_passed(request: ImportRequest) -> None:
    if not request.preflight_is_current:
        raise WorkflowError(MSG_PREFLIGHT_PENDING)
    if not request.preflight_passed:
        raise WorkflowError(MSG_PREFLIGHT_FAILED)


def _decided_and_queue_import(request: ImportRequest, event: RequestEvent) -> None:
    notifications.request_decided(request, event)
    dispatch.publish("import_request", (request.pk,), request_id=request.pk)


def approve_request(
    *, request_id: int, actor: AbstractBaseUser, expected_version: int, comment: str = ""
) -> ImportRequest:
    """Approve exactly the parameters of `expected_version`. Under a target's quorum each
    approver's approval of that version is recorded (an `approval` event with what they saw)
    until the last one needed, which approves the request (`approve`, naming every approver of
    the version); the import is queued only once that has committed. The deciders of one request
    take turns (its row is locked first), so two approvals at once complete a quorum once."""
    with transaction.atomic():
        request = ImportRequest.objects.select_for_update().select_related("target").filter(pk=request_id).first()
        if request is None:
            raise NotFound(MSG_NOT_FOUND)
        _ensure_may(actor, Action.APPROVE, request)
        if request.state not in TRANSITIONS[Action.APPROVE].sources:
            raise Conflict(_conflict_message(request_id, TRANSITIONS[Action.APPROVE]))
        if request.version != expected_version:
            raise Conflict(MSG_CHANGED_SINCE_VIEWED)
        _ensure_preflight_passed(request)
        approvers = _approve_version(request, actor, acting_for(actor, request) or actor)
        required = request.target.approvals_required
        if len(approvers) < required:
            snapshot = {**_request_snapshot(request), "approvals": len(approvers), "required": required}
            append_event(
                request,
                action=Action.APPROVAL,
                actor=actor,
                from_state=request.state,
                to_state=request.state,
                comment=comment.strip(),
                data={**snapshot, **_on_behalf(actor, Action.APPROVE, request)},
            )
            return request
        return _transition(
            request_id=request_id,
            action=Action.APPROVE,
            actor=actor,
            comment=comment,
            expected_version=expected_version,
            changes=lambda request: {"approver": actor},
            data=lambda request: {**_request_snapshot(request), "approvers": approvers},
            after_commit=_decided_and_queue_import,
        )


def _approve_version(request: ImportRequest, actor: AbstractBaseUser, behalf: AbstractBaseUser) -> list[str]:
    """Record the approval of the request's version by `behalf`, given by `actor` (themselves, or
    their stand-in); every approver of the version so far, in order."""
    try:
        with transaction.atomic():
            Approval.objects.create(
                request=request,
                version=request.version,
                approver=behalf,
                decided_by=actor,
                requester_id=request.requester_id,
            )
    except IntegrityError:
        missing = request.target.approvals_required - approvals_of(request).count()
        raise WorkflowError(MSG_ALREADY_APPROVED.format(version=request.version, missing=max(missing, 1))) from None
    return [approval.approver.get_username() for approval in approvals_of(request).select_related("approver")]


def approvals_of(request: ImportRequest) -> Any:
    """The approvals of the request's current version, the earliest first."""
    return Approval.objects.filter(request=request, version=request.version).order_by("created_at", "id")


def reject_request(*, request_id: int, actor: AbstractBaseUser, expected_version: int, comment: str) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.REJECT,
        actor=actor,
        comment=comment,
        expected_version=expected_version,
        data={"version": expected_version},
        after_commit=notifications.request_decided,
    )


def request_changes(*, request_id: int, actor: AbstractBaseUser, expected_version: int, comment: str) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.REQUEST_CHANGES,
        actor=actor,
        comment=comment,
        expected_version=expected_version,
        data={"version": expected_version},
        after_commit=notifications.request_decided,
    )


def cancel_request(
    *, request_id: int, actor: AbstractBaseUser, comment: str = "", expected_version: int | None = None
) -> ImportRequest:
    """Withdraw a request before its import is sent to AWS; with `expected_version` (the API's),
    only the version the requester saw."""
    return _transition(
        request_id=request_id, action=Action.CANCEL, actor=actor, comment=comment, expected_version=expected_version
    )


# A failure's `next_step` says what can make the next attempt work: a new version of the request
# ("revise"), the same one again ("retry"), or the same one once an admin fixed the target
# ("fix_target"). Retrying is offered only where it can succeed.
RETRYABLE_NEXT_STEPS = frozenset({"retry", "fix_target"})


def may_retry(request: ImportRequest) -> bool:
    return request.failure.get("next_step", "retry") in RETRYABLE_NEXT_STEPS


def _ensure_retry_can_work(request: ImportRequest) -> None:
    if not may_retry(request):
        raise WorkflowError(MSG_RETRY_CANNOT_WORK)


def _next_attempt(request: ImportRequest) -> dict[str, Any]:
    """What a new attempt starts from: the failure kept in sight, the failed image marked for
    deletion, the import's own fields cleared."""
    earlier = {"failure": request.failure, "version": request.version, "at": timezone.now().isoformat()}
    return {
        **_ATTEMPT_OVER,
        "earlier_failures": [*request.earlier_failures, earlier],
        "stale_image_id": request.aws_image_id or request.stale_image_id,
        "failure": {},
        "aws_image_id": "",
        "import_calls": 0,
        "import_started_at": None,
        "stalled_at": None,
        "dispatched_at": None,
    }


def retry_import(
    *, request_id: int, actor: AbstractBaseUser, comment: str = "", expected_version: int | None = None
) -> ImportRequest:
    """Send a failed request back to `approved` so the worker imports it again, when what failed
    was not the request itself (AWS kept failing, the target was fixed, the quota freed); with
    `expected_version` (the API's), only the version the approver saw."""
    return _transition(
        request_id=request_id,
        action=Action.RETRY,
        actor=actor,
        comment=comment,
        expected_version=expected_version,
        check=_ensure_retry_can_work,
        changes=_next_attempt,
        data=_request_snapshot,
        after_commit=lambda request, event: dispatch.publish("import_request", (request.pk,), request_id=request.pk),
    )


def revise_request(
    *, request_id: int, actor: AbstractBaseUser, fields: dict[str, Any], expected_version: int
) -> ImportRequest:
    """The requester's way out of a failed import: a new version of the same request (a new AMI,
    say), which goes back to approval. Its failure stays in sight and the failed image is deleted
    before the new version is imported."""
    return _new_version(
        request_id=request_id,
        actor=actor,
        fields=fields,
        expected_version=expected_version,
        action=Action.REVISE,
        also=lambda request: {**_next_attempt(request), "approver": None},
    )


def may_request_preflight(user: AbstractBaseUser, request: ImportRequest) -> bool:
    """Approvers (of others' requests) and the requester may have the checks run again."""
    in_time = request.state in TRANSITIONS[Action.PREFLIGHT].sources
    return in_time and (may(user, Action.APPROVE, request) or may(user, Action.EDIT, request))


def request_preflight_checks(
    *, request_id: int, actor: AbstractBaseUser, expected_version: int | None = None
) -> ImportRequest:
    """Run the pre-flight checks again (of `expected_version` only, when it is given). Changes
    nothing yet: the results arrive as their own audit event."""
    request = ImportRequest.objects.filter(pk=request_id).first()
    if request is None:
        raise NotFound(MSG_NOT_FOUND)
    if not (may(actor, Action.APPROVE, request) or may(actor, Action.EDIT, request)):
        _ensure_may(actor, Action.APPROVE, request)
    if not may_request_preflight(actor, request):
        raise Conflict(_conflict_message(request_id, TRANSITIONS[Action.PREFLIGHT]))
    if expected_version is not None and request.version != expected_version:
        raise Conflict(MSG_CHANGED_SINCE_VIEWED)
    dispatch.publish("run_preflight_checks", (request.pk, request.version), request_id=request.pk)
    return request


# --- The worker -----------------------------------------------------------------------------


def record_preflight(*, request_id: int, version: int, checks: list[dict[str, Any]]) -> ImportRequest:
    """Store the checks of `version`; a request edited meanwhile refuses them (Conflict)."""
    result = {
        "version": version,
        "ran_at": timezone.now().isoformat(),
        "passed": all(c["outcome"] != "fail" for c in checks),
        "checks": checks,
    }
    return _transition(
        request_id=request_id,
        action=Action.PREFLIGHT,
        actor=None,
        expected_version=version,
        changes=lambda request: {"preflight": result},
        data=result,
    )


def _lease(seconds: float) -> Any:
    return timezone.now() + timedelta(seconds=seconds)


def new_lease_token() -> str:
    return uuid.uuid4().hex


# What ends an import attempt clears: nobody holds the request, nothing is due, nothing waits.
_ATTEMPT_OVER = {
    "lease_expires_at": None,
    "lease_token": "",
    "next_attempt_at": None,
    "waiting": {},
    "import_call_pending": False,
}


def claim_for_import(*, request_id: int, lease_seconds: float) -> ImportRequest:
    """Take an approved request for the import call (`approved` -> `submitting`). The lease is
    the worker's until it stops renewing it; its token fences every later write."""
    return _transition(
        request_id=request_id,
        action=Action.CLAIM,
        actor=None,
        changes=lambda request: {
            "lease_expires_at": _lease(lease_seconds),
            "lease_token": new_lease_token(),
            "next_attempt_at": None,
            "waiting": {},
        },
        data=_request_snapshot,
    )


def reclaim_import(*, request_id: int, lease_seconds: float) -> ImportRequest:
    """Take over a `submitting` request whose worker stopped renewing its lease (it died, or its
    message was lost). The old token stops working, so a worker that was only paused cannot
    write any more."""
    return _transition(
        request_id=request_id,
        action=Action.RECLAIM,
        actor=None,
        guard=Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now()),
        changes=lambda request: {
            "lease_expires_at": _lease(lease_seconds),
            "lease_token": new_lease_token(),
            "next_attempt_at": None,
        },
        data=lambda request: {
            "reason": "lease expired",
            "import_calls_so_far": request.import_calls,
            "outcome_unknown": request.import_call_pending,
        },
    )


def _held(request_id: int, lease_token: str) -> Any:
    return ImportRequest.objects.filter(pk=request_id, state=State.SUBMITTING, lease_token=lease_token)


def resume_import(*, request_id: int, lease_token: str, due_at: datetime, lease_seconds: float) -> ImportRequest:
    """Pick a waiting import up again at its due time, under the lease it kept. The due time is
    part of the compare-and-set, so a duplicate of the same message finds nothing to resume."""
    resumed = (
        _held(request_id, lease_token)
        .filter(next_attempt_at=due_at)
        .update(next_attempt_at=None, lease_expires_at=_lease(lease_seconds))
    )
    if resumed != 1:
        raise Conflict(MSG_LEASE_HELD.format(reference=format_reference(request_id)))
    return ImportRequest.objects.select_related("target").get(pk=request_id)


def renew_lease(*, request_id: int, lease_token: str, lease_seconds: float) -> bool:
    """The worker is still at it: push the lease out. False once the lease is no longer its own."""
    # Not while it waits for a due time: that wait holds the lease until then by itself.
    renewed = _held(request_id, lease_token).filter(next_attempt_at__isnull=True)
    return renewed.update(lease_expires_at=_lease(lease_seconds)) == 1


def wait_for_turn(
    *, request_id: int, lease_token: str, due_at: datetime, lease_seconds: float, waiting: dict[str, Any]
) -> bool:
    """The import waits for its reserved turn at AWS's rate. No audit event: nothing happened
    yet, and the request page shows the wait from `waiting`."""
    held = _held(request_id, lease_token).update(
        next_attempt_at=due_at, lease_expires_at=due_at + timedelta(seconds=lease_seconds), waiting=waiting
    )
    return held == 1


def record_import_call(
    *, request_id: int, lease_token: str, parameters: dict[str, Any], checks: list[dict[str, Any]]
) -> ImportRequest:
    """Written and committed before the call, so that the history shows exactly what was sent
    and what was re-checked, and a later attempt knows that this one may have reached AWS."""
    return _transition(
        request_id=request_id,
        action=Action.IMPORT_CALL,
        actor=None,
        guard=Q(lease_token=lease_token),
        changes=lambda request: {"import_calls": F("import_calls") + 1, "import_call_pending": True},
        data={"parameters": parameters, "checks": checks},
    )


def schedule_import_retry(
    *,
    request_id: int,
    lease_token: str,
    error: dict[str, Any],
    retry_in: float,
    lease_seconds: float,
    outcome_unknown: bool,
    waiting: dict[str, Any],
) -> ImportRequest:
    """The import waits `retry_in` seconds for AWS. The lease runs until a little after then, so
    the retry (which knows the token and the due time) resumes it, and only if the retry is
    lost does the sweeper take over."""
    due_at = _lease(retry_in)
    return _transition(
        request_id=request_id,
        action=Action.IMPORT_RETRY,
        actor=None,
        guard=Q(lease_token=lease_token),
        changes=lambda request: {
            "next_attempt_at": due_at,
            "lease_expires_at": due_at + timedelta(seconds=lease_seconds),
            "waiting": {**waiting, "next_attempt_at": due_at.isoformat()},
            "import_call_pending": outcome_unknown,
        },
        data={"error": error, "retry_in_seconds": round(retry_in, 1), "outcome_unknown": outcome_unknown},
    )


def record_import_accepted(
    *, request_id: int, lease_token: str, aws_image_id: str, data: dict[str, Any]
) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.AWS_ACCEPTED,
        actor=None,
        guard=Q(lease_token=lease_token),
        changes=lambda request: {**_ATTEMPT_OVER, "aws_image_id": aws_image_id, "import_started_at": timezone.now()},
        data={**data, "aws_image_id": aws_image_id},
    )


def record_import_refused(
    *, request_id: int, lease_token: str, failure: dict[str, Any], data: dict[str, Any], sent: bool = True
) -> ImportRequest:
    """The attempt failed: refused by AWS (`sent`), or stopped by the portal before anything was
    sent; the history says which."""
    return _transition(
        request_id=request_id,
        action=Action.AWS_REFUSED if sent else Action.IMPORT_STOPPED,
        actor=None,
        guard=Q(lease_token=lease_token),
        changes=lambda request: {**_ATTEMPT_OVER, "failure": failure},
        data={**data, "failure": failure},
        after_commit=notifications.import_finished,
    )


def mark_stale_image(*, request_id: int, lease_token: str, image_id: str) -> bool:
    """A failed image of this request from before this attempt turned up: delete it before going on."""
    return _held(request_id, lease_token).update(stale_image_id=image_id) == 1


def record_image_deleted(*, request_id: int, lease_token: str, image_id: str) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.IMAGE_DELETED,
        actor=None,
        guard=Q(lease_token=lease_token, stale_image_id=image_id),
        changes=lambda request: {"stale_image_id": ""},
        data={"aws_image_id": image_id},
    )


def record_image_available(*, request_id: int, data: dict[str, Any]) -> ImportRequest:
    """The image is AVAILABLE: the delivery plan as approved becomes its steps, in the same
    transaction, and the first ones are queued after commit."""
    from imports import steps  # the plan's operations, which call back into this module

    def changes(request: ImportRequest) -> dict[str, Any]:
        made = steps.plan_steps(request, approved_plan(request))
        return {"rollout": Rollout.RUNNING} if made else {}

    def after_commit(request: ImportRequest, event: RequestEvent) -> None:
        notifications.import_finished(request, event)
        for step_id in request.steps.filter(depends_on__isnull=True).values_list("pk", flat=True):
            dispatch.publish("run_step", (step_id,), step_id=step_id)

    return _transition(
        request_id=request_id,
        action=Action.IMAGE_AVAILABLE,
        actor=None,
        changes=changes,
        data=data,
        after_commit=after_commit,
    )


def latest_approval(request: ImportRequest) -> RequestEvent | None:
    """The event of the latest approval (or retry): what the worker may act on."""
    return request.events.filter(action__in=[Action.APPROVE, Action.RETRY]).order_by("-seq").first()


def approved_plan(request: ImportRequest) -> dict[str, Any]:
    """The delivery plan of the latest approval (an approval from before plans: none)."""
    approval = latest_approval(request)
    return (approval.data.get("plan") if approval else None) or {}


def record_image_failed(*, request_id: int, failure: dict[str, Any], data: dict[str, Any]) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.IMAGE_FAILED,
        actor=None,
        changes=lambda request: {"failure": failure},
        data={**data, "failure": failure},
        after_commit=notifications.import_finished,
    )


def record_image_stalled(*, request_id: int, running_for_hours: float) -> ImportRequest:
    return _transition(
        request_id=request_id,
        action=Action.IMAGE_STALLED,
        actor=None,
        guard=Q(stalled_at__isnull=True),
        changes=lambda request: {"stalled_at": timezone.now()},
        data={"running_for_hours": round(running_for_hours, 1)},
        after_commit=notifications.import_stalled,
    )


def record_import_progress(*, request_id: int, stage: str, message: str, progress: int | None) -> bool:
    """Note the Image Builder import's progress as AWS last reported it, and the stage in the
    stage history when it changed. Progress is AWS's report, not a change of the request: no
    audit event (the import's start and end have theirs). False: the request is no longer
    importing."""
    now = timezone.now()
    with transaction.atomic():
        request = (
            ImportRequest.objects.select_for_update()
            .filter(pk=request_id, state=State.IMPORTING)
            .only("import_stage", "import_stages")
            .first()
        )
        if request is None:
            return False
        stages = list(request.import_stages)
        if stage and stage != request.import_stage:
            stages.append({"stage": stage, "at": now.isoformat(), "progress": progress})
        ImportRequest.objects.filter(pk=request_id).update(
            import_stage=stage,
            import_stage_message=message[:1000],
            import_progress=progress,
            progress_checked_at=now,
            import_stages=stages,
        )
    return True


# --- the delivery plan's steps -----------------------------------------------------------------
# Each step of a request's plan changes on its own, a compare-and-set on the step's row with its
# audit event in the request's history, in one transaction; the request's `rollout` follows.

StepState = RolloutStep.State

# What a step's call needs of its request, read with the step.
STEP_RELATED = ("request__target", "request__requester", "request__approver", "depends_on")
MSG_STEP_LEASE_HELD = "Another worker is running this step right now."
MSG_STEP_NOT_FAILED = "This step has not failed, so there is nothing to retry. Nothing was changed."


def _step_change(
    *,
    step_id: int,
    action: Action,
    guard: Callable[[RolloutStep], bool],
    changes: dict[str, Any],
    data: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
    comment: str = "",
    after_commit: Callable[[RolloutStep], None] | None = None,
) -> RolloutStep:
    """Move one step: check `guard` with the step and its request locked, change, audit on the
    request, recount the rollout; all in one transaction."""
    with transaction.atomic():
        step = _locked_step(step_id, of=("self", "request"))
        if actor is not None:
            _ensure_may(actor, action, step.request)
        if step.request.state != State.AVAILABLE or not guard(step):
            raise Conflict(MSG_STEP_LEASE_HELD if actor is None else MSG_STEP_NOT_FAILED)
        RolloutStep.objects.filter(pk=step_id).update(**changes, updated_at=timezone.now())
        step.refresh_from_db()
        request = step.request
        finished = _recount_rollout(request)
        event = append_event(
            request,
            action=action,
            actor=actor,
            from_state=request.state,
            to_state=request.state,
            comment=comment,
            data={
                **{"step": step.position, "kind": step.kind, "region": step.region, **(data or {})},
                **_on_behalf(actor, action, request),
            },
        )
        if after_commit:
            transaction.on_commit(lambda: after_commit(step), robust=True)
        if finished:
            transaction.on_commit(lambda: notifications.rollout_finished(request, event), robust=True)
    return step


def _locked_step(step_id: int, *, of: tuple[str, ...]) -> RolloutStep:
    step = RolloutStep.objects.select_for_update(of=of).select_related(*STEP_RELATED).filter(pk=step_id).first()
    if step is None:
        raise NotFound(MSG_NOT_FOUND)
    return step


def _recount_rollout(request: ImportRequest) -> bool:
    """Keep the request's `rollout` in step with its steps; True when the rollout just ended.
    A step waiting on a failed one is blocked, not running: it starts after that one's retry."""
    steps = {pk: (state, after) for pk, state, after in request.steps.values_list("pk", "state", "depends_on_id")}

    def blocked(pk: int) -> bool:
        after = steps[pk][1]
        return after is not None and (steps[after][0] == StepState.FAILED or blocked(after))

    states = {state for pk, (state, _) in steps.items() if not (state == StepState.PENDING and blocked(pk))}
    if not steps:
        rollout = Rollout.NONE
    elif states & set(RolloutStep.ACTIVE_STATES):
        rollout = Rollout.RUNNING
    else:
        rollout = Rollout.INCOMPLETE if StepState.FAILED in states else Rollout.DONE
    if rollout == request.rollout:
        return False
    ImportRequest.objects.filter(pk=request.pk).update(rollout=rollout)
    ended = request.rollout == Rollout.RUNNING and rollout in (Rollout.DONE, Rollout.INCOMPLETE)
    request.rollout = rollout
    return ended


def _step_lease(seconds: float) -> dict[str, Any]:
    return {"lease_token": new_lease_token(), "lease_expires_at": _lease(seconds), "next_attempt_at": None}


def claim_step(*, step_id: int, lease_seconds: float) -> RolloutStep:
    """Take a step for its call: one waiting to start whose input is ready, or one whose worker
    stopped renewing its lease (died, or its retry message was lost). No audit event: the call
    that follows has one. The new token fences the earlier worker out."""
    with transaction.atomic():
        step = _locked_step(step_id, of=("self",))
        ready = step.depends_on is None or step.depends_on.state == StepState.DONE
        startable = step.state == StepState.PENDING and ready
        abandoned = (
            step.state in (StepState.RUNNING, StepState.WAITING)
            and step.lease_expires_at is not None
            and step.lease_expires_at < timezone.now()
        )
        if step.request.state != State.AVAILABLE or not (startable or abandoned):
            raise Conflict(MSG_STEP_LEASE_HELD)
        RolloutStep.objects.filter(pk=step_id).update(
            state=StepState.RUNNING, updated_at=timezone.now(), **_step_lease(lease_seconds)
        )
        step.refresh_from_db()
    return step


def resume_step(*, step_id: int, lease_token: str, due_at: datetime, lease_seconds: float) -> RolloutStep:
    """Pick a waiting step up at its due time, under the lease it kept; a duplicate message finds
    nothing to resume."""
    resumed = RolloutStep.objects.filter(
        pk=step_id, state=StepState.WAITING, lease_token=lease_token, next_attempt_at=due_at
    ).update(state=StepState.RUNNING, next_attempt_at=None, lease_expires_at=_lease(lease_seconds))
    if resumed != 1:
        raise Conflict(MSG_STEP_LEASE_HELD)
    return RolloutStep.objects.select_related(*STEP_RELATED).get(pk=step_id)


def renew_step_lease(*, step_id: int, lease_token: str, lease_seconds: float) -> bool:
    held = RolloutStep.objects.filter(pk=step_id, state=StepState.RUNNING, lease_token=lease_token)
    return held.update(lease_expires_at=_lease(lease_seconds)) == 1


def _step_held(lease_token: str) -> Callable[[RolloutStep], bool]:
    return lambda step: step.state == StepState.RUNNING and step.lease_token == lease_token


def _tracked(step: RolloutStep) -> bool:
    return step.state == StepState.TRACKING


def record_step_call(*, step_id: int, lease_token: str, parameters: dict[str, Any]) -> RolloutStep:
    """Written before the call, so the history shows what was sent and a later attempt knows
    this one may have reached AWS."""
    return _step_change(
        step_id=step_id,
        action=Action.STEP_CALL,
        guard=_step_held(lease_token),
        changes={"calls": F("calls") + 1, "call_pending": True},
        data={"parameters": parameters},
    )


_STEP_OVER = {
    "lease_token": "",
    "lease_expires_at": None,
    "next_attempt_at": None,
    "waiting": {},
    "call_pending": False,
}


def record_step_accepted(
    *, step_id: int, lease_token: str, resource_id: str, resource_state: str, data: dict[str, Any]
) -> RolloutStep:
    """AWS took the call and works on it: the poller follows it until it is done."""
    return _step_change(
        step_id=step_id,
        action=Action.STEP_ACCEPTED,
        guard=_step_held(lease_token),
        changes={
            **_STEP_OVER,
            "state": StepState.TRACKING,
            "resource_id": resource_id,
            "resource_state": resource_state,
        },
        data={**data, "resource_id": resource_id, "resource_state": resource_state},
    )


def _queue_dependents(step: RolloutStep) -> None:
    for dependent_id in step.dependents.filter(state=StepState.PENDING).values_list("pk", flat=True):
        dispatch.publish("run_step", (dependent_id,), step_id=dependent_id)


def record_step_done(
    *, step_id: int, resource_id: str, resource_state: str, data: dict[str, Any], lease_token: str | None = None
) -> RolloutStep:
    """Done: by the worker that called (`lease_token`), or by the poller for a tracked step."""
    guard = _step_held(lease_token) if lease_token is not None else _tracked
    return _step_change(
        step_id=step_id,
        action=Action.STEP_DONE,
        guard=guard,
        changes={
            **_STEP_OVER,
            "state": StepState.DONE,
            "resource_id": resource_id,
            "resource_state": resource_state,
            "failure": {},
            "finished_at": timezone.now(),
        },
        data={**data, "resource_id": resource_id, "resource_state": resource_state},
        after_commit=_queue_dependents,
    )


def record_step_failed(
    *, step_id: int, failure: dict[str, Any], data: dict[str, Any], lease_token: str | None = None, sent: bool = True
) -> RolloutStep:
    """Failed, refused by AWS or by the portal before a call, or reported failed by AWS (the
    poller: no token). The other steps go on; those that need this one wait for its retry."""
    guard = _step_held(lease_token) if lease_token is not None else _tracked
    changes = {**_STEP_OVER, "state": StepState.FAILED, "failure": failure, "finished_at": timezone.now()}
    if lease_token is not None and not sent:
        changes.pop("call_pending")  # an earlier call's unknown outcome stays unknown
    return _step_change(
        step_id=step_id,
        action=Action.STEP_FAILED,
        guard=guard,
        changes=changes,
        data={**data, "failure": failure, "sent": sent},
    )


def schedule_step_retry(
    *,
    step_id: int,
    lease_token: str,
    error: dict[str, Any],
    retry_in: float,
    lease_seconds: float,
    outcome_unknown: bool,
    waiting: dict[str, Any],
) -> RolloutStep:
    """The step waits `retry_in` seconds for AWS, keeping its lease until a little after then."""
    due_at = _lease(retry_in)
    return _step_change(
        step_id=step_id,
        action=Action.STEP_RETRY,
        guard=_step_held(lease_token),
        changes={
            "state": StepState.WAITING,
            "next_attempt_at": due_at,
            "lease_expires_at": due_at + timedelta(seconds=lease_seconds),
            "waiting": {**waiting, "next_attempt_at": due_at.isoformat()},
            "call_pending": outcome_unknown,
        },
        data={"error": error, "retry_in_seconds": round(retry_in, 1), "outcome_unknown": outcome_unknown},
    )


def record_step_polled(*, step_id: int, resource_state: str) -> bool:
    """AWS still works on a tracked step: note its word and when it was asked (no event)."""
    polled = RolloutStep.objects.filter(pk=step_id, state=StepState.TRACKING)
    return polled.update(resource_state=resource_state, polled_at=timezone.now()) == 1


def may_retry_step(user: AbstractBaseUser, step: RolloutStep) -> bool:
    return step.state == StepState.FAILED and may(user, Action.STEP_RETRIED, step.request)


def retry_step(*, step_id: int, actor: AbstractBaseUser, comment: str = "") -> RolloutStep:
    """An approver sends a failed step back to be run again (after fixing what its failure says);
    the steps that succeeded stay as they are."""
    return _step_change(
        step_id=step_id,
        action=Action.STEP_RETRIED,
        actor=actor,
        comment=comment,
        guard=lambda step: step.state == StepState.FAILED,
        changes={"state": StepState.PENDING, "failure": {}, "finished_at": None, "waiting": {}},
        data={},
        after_commit=lambda step: dispatch.publish("run_step", (step.pk,), step_id=step.pk),
    )


# --- stand-ins ---------------------------------------------------------------------------------

MSG_STAND_IN_NOT_APPROVER = "A stand-in must be an active approver other than you."
MSG_STAND_IN_GONE = "That stand-in does not exist or is already over. Nothing was changed."


def name_stand_in(
    *, approver: AbstractBaseUser, stand_in: AbstractBaseUser, starts_on: Any, ends_on: Any
) -> Delegation:
    """`approver` names `stand_in` (an approver too) for the days from `starts_on` to `ends_on`.
    The stand-in's decisions in that time, for the requests the approver may decide, are
    recorded as theirs for the approver (acting_for)."""
    if not roles.has_role(approver, roles.APPROVERS):
        raise NotAllowed(MSG_NOT_ALLOWED)
    if stand_in.pk == approver.pk or not stand_in.is_active or not roles.has_role(stand_in, roles.APPROVERS):
        raise WorkflowError(MSG_STAND_IN_NOT_APPROVER)
    return Delegation.objects.create(approver=approver, stand_in=stand_in, starts_on=starts_on, ends_on=ends_on)


def revoke_stand_in(*, approver: AbstractBaseUser, delegation_id: int) -> Delegation:
    """End a stand-in before its last day: from now on it gives nothing (a decision it is
    making right now is checked again when it is recorded)."""
    revoked = Delegation.objects.filter(
        pk=delegation_id, approver_id=approver.pk, revoked_at__isnull=True, ends_on__gte=timezone.localdate()
    ).update(revoked_at=timezone.now())
    if revoked != 1:
        raise NotFound(MSG_STAND_IN_GONE)
    return Delegation.objects.get(pk=delegation_id)


# --- decisions overdue -----------------------------------------------------------------------


def record_overdue(*, request_id: int, version: int, escalate: bool) -> ImportRequest:
    """Nobody decided the request's `version` in time: its approvers are reminded, or, later, it
    is escalated (notifications.decision_overdue); each once per version, in the history."""
    action, field = (Action.ESCALATE, "escalated_at") if escalate else (Action.REMIND, "reminded_at")

    def data(request: ImportRequest) -> dict[str, Any]:
        waited = timezone.now() - (request.decision_asked_at or request.created_at)
        approvals = approvals_of(request).count() if request.target.approvals_required > 1 else 0
        return {
            "version": request.version,
            "waiting_hours": round(waited.total_seconds() / 3600, 1),
            "required": request.target.approvals_required,
            "approvals": approvals,
        }

    return _transition(
        request_id=request_id,
        action=action,
        actor=None,
        expected_version=version,
        guard=Q(**{f"{field}__isnull": True}),
        changes=lambda request: {field: timezone.now()},
        data=data,
        after_commit=notifications.decision_overdue,
    )
