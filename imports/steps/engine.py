"""The step engine: claim, lease, call, reconcile, poll and retry, written once for every
operation of the delivery plan (imports.steps.OPERATIONS).

Never inside a database transaction, as the import's engine (imports.execution): each change
is a workflow verb that commits with its audit event, and AWS is called between them.

- A step is claimed with a lease and a token (workflow.claim_step); the worker renews the lease
  while it works, so a worker that dies loses the step within PORTAL_IMPORT_LEASE_SECONDS and the
  sweeper hands it to another; the token fences a paused worker out of every later write.
- The call is recorded before it is sent (`call_pending`). After a call whose outcome is unknown
  (a lost answer, a dead worker), what the call would have made is looked for first
  (Operation.find: by name and portal tag), so no step ever makes its thing twice.
- Throttling, 5xx, timeouts, an unreachable AWS and resources not ready yet make the step wait
  and try again (exponential backoff with jitter) until PORTAL_RETRY_BUDGET_SECONDS is spent;
  AWS's refusals fail the step with what to do, and an approver can retry it. A failed step
  never undoes the others: those that need it wait for its retry.
- What AWS works on for a while (a copy, a bundle not yet AVAILABLE) is followed by the poller.
"""

import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from imports import aws, workflow
from imports.locks import job_lock, lease_kept
from imports.models import ImportRequest, RolloutStep
from imports.retry import TryAgain, gave_up_message, wait_for_aws
from imports.steps import OPERATIONS
from imports.steps.base import DONE, FAILED, Made, NotOurs, Operation

logger = logging.getLogger(__name__)
StepState = RolloutStep.State

MSG_VANISHED = "AWS no longer knows {resource_id}: it was deleted while AWS was still working on it."
# What to do, by what stopped the step: shown with its failure.
TODO_PERMISSION = (
    "An admin must give the portal's IAM role {permission} in {region} (the README's IAM policy), "
    "then an approver retries this step."
)
TODO_IN_AWS = "Fix this in AWS as the message says (in {region}), then an approver retries this step."
TODO_NAME = "Rename or delete it in AWS (in {region}), then an approver retries this step."
TODO_LATER = "An approver can retry this step once AWS works again."
TODO_NEEDS = "Retry it once step {position} is done."
# After being accepted, a copy may take a moment to show in its region's DescribeWorkspaceImages.
VANISHED_AFTER = timedelta(minutes=30)


def _where(step: RolloutStep) -> aws.Target:
    return aws.in_region(step.request.target, step.region)


def _image_id(step: RolloutStep) -> str:
    """What the step works on: the image its dependency made (a copy), or the request's own."""
    return step.depends_on.resource_id if step.depends_on_id else step.request.aws_image_id


# --- a step's call ---------------------------------------------------------------------------


def run_step(step_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    """Claim (or resume), reconcile, call AWS once, record. Raises TryAgain when it must wait."""
    step = _take(step_id, lease_token, due_at)
    if step is None:
        return
    seconds = settings.PORTAL_IMPORT_LEASE_SECONDS
    renew = lambda: workflow.renew_step_lease(step_id=step.pk, lease_token=step.lease_token, lease_seconds=seconds)  # noqa: E731
    with lease_kept(f"step {step.pk}", renew, seconds=seconds):
        _attempt(step)


def _take(step_id: int, lease_token: str, due_at: datetime | None) -> RolloutStep | None:
    lease = settings.PORTAL_IMPORT_LEASE_SECONDS
    try:
        if lease_token and due_at is not None:
            return workflow.resume_step(step_id=step_id, lease_token=lease_token, due_at=due_at, lease_seconds=lease)
        return workflow.claim_step(step_id=step_id, lease_seconds=lease)
    except workflow.WorkflowError as lost:
        logger.info("step %s not taken: %s", step_id, lost.message)
        return None


def _attempt(step: RolloutStep) -> None:
    operation = OPERATIONS[step.kind]
    where = _where(step)
    calls_before = step.calls
    try:
        parameters = operation.parameters(step, _image_id(step))
        if step.call_pending:
            found = operation.find(where, step, parameters)
            if found is not None:
                _settle(step, found, data={"adopted": True})
                return
        workflow.record_step_call(step_id=step.pk, lease_token=step.lease_token, parameters=parameters)
        try:
            made = operation.call(where, parameters, identity=step.request.reference)
        except aws.AlreadyExists:
            # Ours from an earlier call whose answer was lost, or someone else's.
            made = operation.find(where, step, parameters)
            if made is None:
                raise
            _settle(step, made, data={"adopted": True})
            return
        _settle(step, made, data=made.record)
    except NotOurs as clash:
        _fail(step, {"message": str(clash), "what_to_do": TODO_NAME.format(region=step.region)}, calls_before)
    except aws.AwsError as error:
        if error.retryable:
            _wait_for_aws(step, error, calls_before)
        else:
            _fail(step, _failure(operation, step, error), calls_before)
    except workflow.Conflict as lost:
        logger.info("step %s lost its lease: %s", step.pk, lost.message)


def _failure(operation: Operation, step: RolloutStep, error: aws.AwsError) -> dict[str, Any]:
    if isinstance(error, aws.AccessDenied):
        todo = TODO_PERMISSION.format(permission=operation.permission, region=step.region)
    else:
        todo = TODO_IN_AWS.format(region=step.region)
    return {**error.as_record(), "what_to_do": todo}


def _settle(step: RolloutStep, made: Made, *, data: dict[str, Any]) -> None:
    token = step.lease_token
    try:
        if made.outcome == DONE:
            workflow.record_step_done(
                step_id=step.pk, lease_token=token, resource_id=made.resource_id, resource_state=made.state, data=data
            )
        elif made.outcome == FAILED:
            failure = {"message": made.message, "what_to_do": TODO_IN_AWS.format(region=step.region)}
            workflow.record_step_failed(step_id=step.pk, lease_token=token, failure=failure, data=data)
        else:
            workflow.record_step_accepted(
                step_id=step.pk, lease_token=token, resource_id=made.resource_id, resource_state=made.state, data=data
            )
    except workflow.Conflict as lost:
        logger.info("outcome of step %s not recorded: %s", step.pk, lost.message)


def _fail(step: RolloutStep, failure: dict[str, Any], calls_before: int) -> None:
    sent = RolloutStep.objects.filter(pk=step.pk, calls__gt=calls_before).exists()
    try:
        workflow.record_step_failed(step_id=step.pk, lease_token=step.lease_token, failure=failure, data={}, sent=sent)
    except workflow.Conflict as lost:
        logger.info("failure of step %s not recorded: %s", step.pk, lost.message)


def _wait_for_aws(step: RolloutStep, error: aws.AwsError, calls_before: int) -> None:
    """Schedule the next attempt, or give up once the retry budget is spent."""
    step.refresh_from_db()
    called_now = step.calls > calls_before
    wait = wait_for_aws(error, waiting=step.waiting, called_now=called_now, call_pending=step.call_pending)
    if wait is None:
        _fail(step, {**error.as_record(), "message": gave_up_message(error), "what_to_do": TODO_LATER}, calls_before)
        return
    try:
        waits = workflow.schedule_step_retry(
            step_id=step.pk,
            lease_token=step.lease_token,
            error=error.as_record(),
            retry_in=wait.seconds,
            lease_seconds=settings.PORTAL_IMPORT_LEASE_SECONDS,
            outcome_unknown=wait.outcome_unknown,
            waiting=wait.waiting,
        )
    except workflow.Conflict as lost:
        logger.info("step %s not rescheduled: %s", step.pk, lost.message)
        return
    raise TryAgain(wait.seconds, step.lease_token, waits.next_attempt_at)


# --- following what AWS works on -------------------------------------------------------------


def tracking_steps() -> Any:
    return RolloutStep.objects.filter(state=StepState.TRACKING)


def poll_steps(*, seconds: float | None = None, min_interval: float = 0) -> dict[str, int]:
    """Ask AWS about each step it works on (a copy, a bundle not yet AVAILABLE), the longest
    unasked first, for at most `seconds`; one pass at a time."""
    report = {"asked": 0, "done": 0, "failed": 0, "errors": 0, "deferred": 0}
    seconds = settings.PORTAL_POLL_PASS_SECONDS if seconds is None else seconds
    with job_lock("poll-steps", hold_seconds=seconds + 60, min_interval_seconds=min_interval) as mine:
        if mine:
            _poll(report, deadline=time.monotonic() + seconds)
    return report


def _poll(report: dict[str, int], *, deadline: float) -> None:
    started = timezone.now()
    unasked = tracking_steps().filter(Q(polled_at__isnull=True) | Q(polled_at__lt=started))
    ordered = unasked.select_related("request__target").order_by(F("polled_at").asc(nulls_first=True), "pk")
    for step in ordered.iterator(chunk_size=100):
        if report["asked"] and time.monotonic() >= deadline:
            report["deferred"] += 1
            continue
        try:
            made = OPERATIONS[step.kind].read(_where(step), step)
        except aws.AwsError as error:
            report["errors"] += 1
            logger.warning("could not read step %s: %s", step.pk, error.as_record())
            continue
        report["asked"] += 1
        # A Conflict: retried or recorded by someone else meanwhile.
        with contextlib.suppress(workflow.Conflict):
            _apply(step, made, report)


def _apply(step: RolloutStep, made: Made | None, report: dict[str, int]) -> None:
    if made is None:
        if timezone.now() - step.updated_at > VANISHED_AFTER:
            failure = {"message": MSG_VANISHED.format(resource_id=step.resource_id), "what_to_do": TODO_LATER}
            workflow.record_step_failed(step_id=step.pk, failure=failure, data={})
            report["failed"] += 1
        return
    if made.outcome == DONE:
        workflow.record_step_done(
            step_id=step.pk, resource_id=made.resource_id, resource_state=made.state, data=made.record
        )
        report["done"] += 1
    elif made.outcome == FAILED:
        failure = {"message": made.message, "what_to_do": TODO_IN_AWS.format(region=step.region)}
        workflow.record_step_failed(step_id=step.pk, failure=failure, data=made.record)
        report["failed"] += 1
    else:
        workflow.record_step_polled(step_id=step.pk, resource_state=made.state)


# --- the sweeper's share ---------------------------------------------------------------------


def lost_steps(now: datetime, *, unsent_since: Any) -> list[int]:
    """Steps whose message was lost or never sent: ready to start and quiet, or held by a lease
    that ran out (a dead worker, a retry message the broker lost)."""
    quiet_since = now - timedelta(seconds=settings.PORTAL_UNCLAIMED_AFTER_SECONDS)
    ready = Q(depends_on__isnull=True) | Q(depends_on__state=StepState.DONE)
    unclaimed = RolloutStep.objects.filter(
        ready,
        unsent_since(F("updated_at"), now),
        state=StepState.PENDING,
        updated_at__lt=quiet_since,
        request__state=ImportRequest.State.AVAILABLE,
    )
    abandoned = RolloutStep.objects.filter(
        unsent_since(F("lease_expires_at"), now),
        state__in=[StepState.RUNNING, StepState.WAITING],
        lease_expires_at__lt=now,
    )
    return [*unclaimed.values_list("pk", flat=True), *abandoned.values_list("pk", flat=True)]
