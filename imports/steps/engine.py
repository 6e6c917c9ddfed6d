"""The engine: claim, lease, call, reconcile, poll and retry, written once for every unit of
work the portal sends to AWS: the import (imports.steps.image, kept on its request) and each
operation of the delivery plan (imports.steps.OPERATIONS, kept as RolloutSteps). Where a unit is
kept and which workflow verbs move it is its ledger (imports.steps.ledger); what it calls is its
operation (imports.steps.base.Operation).

Never inside a database transaction: each change is a workflow verb that commits with its audit
event, and AWS is called between them.

- A unit is claimed with a lease and a token; the worker renews the lease while it works, so a
  worker that dies loses the unit within PORTAL_IMPORT_LEASE_SECONDS and the sweeper hands it to
  another; the token fences a paused worker out of every later write.
- The call is recorded before it is sent (`call_pending`). After a call whose outcome is unknown
  (a lost answer, a dead worker), what the call would have made is looked for first
  (Operation.find: by name and portal tag), so nothing is ever made twice.
- Throttling, 5xx, timeouts, an unreachable AWS and resources not ready yet make the unit wait
  and try again (exponential backoff with jitter) until PORTAL_RETRY_BUDGET_SECONDS is spent;
  AWS's refusals fail it with what to do. A failed step never undoes the others: those that
  need it wait for its retry.
- What AWS works on for a while (an image, a copy, a bundle not yet AVAILABLE) is followed by a
  poller: the steps' here, the import's in imports.execution (25 images a call, per account).
"""

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
from imports.steps.base import DONE, FAILED, Made, NotOurs, Operation, Stop
from imports.steps.ledger import REQUESTS, STEPS, Ledger

logger = logging.getLogger(__name__)
StepState = RolloutStep.State

# After being accepted, an image or a copy may take a moment to show in DescribeWorkspaceImages.
VANISHED_AFTER = timedelta(minutes=30)


# --- a unit's call ---------------------------------------------------------------------------


def run(ledger: Ledger, unit_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    """Claim (or resume), reconcile, check, call AWS once, record. Raises TryAgain when the unit
    must wait; returns quietly when another worker holds it or the world has moved on."""
    seconds = settings.PORTAL_IMPORT_LEASE_SECONDS
    try:
        unit = ledger.take(unit_id, lease_token=lease_token, due_at=due_at, lease_seconds=seconds)
    except workflow.WorkflowError as lost:
        logger.info("%s %s not taken: %s", ledger.name, unit_id, lost.message)
        return
    token = unit.lease_token
    with lease_kept(f"{ledger.name} {unit_id}", lambda: ledger.renew(unit_id, token, seconds), seconds=seconds):
        _attempt(ledger, unit, token, resumed=due_at is not None)


def run_step(step_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    run(STEPS, step_id, lease_token=lease_token, due_at=due_at)


def run_import(request_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    run(REQUESTS, request_id, lease_token=lease_token, due_at=due_at)


def _attempt(ledger: Ledger, unit: Any, token: str, *, resumed: bool) -> None:
    operation = ledger.operation(unit)
    where = ledger.where(unit)
    calls_before, call_pending, _ = ledger.counters(unit.pk)
    try:
        parameters = operation.parameters(unit)
        if call_pending:
            found = operation.find(where, unit, parameters)
            if found is not None:
                ledger.settle(unit, token, found, {"adopted": True, **found.record})
                return
        extra = operation.before_call(unit, parameters, resumed=resumed)
        called = ledger.record_call(unit, token, parameters, extra)
        try:
            made = operation.call(where, parameters, identity=ledger.identity(unit))
        except aws.AlreadyExists:
            # Ours from an earlier call whose answer was lost, or someone else's.
            found = operation.find(where, called, parameters)
            if found is None:
                raise
            ledger.settle(unit, token, found, {"adopted": True, **found.record})
            return
        ledger.settle(unit, token, made, made.record)
    except Stop as stop:
        _fail(ledger, unit, token, stop.failure, calls_before)
    except NotOurs as clash:
        _fail(ledger, unit, token, operation.clash(unit, str(clash)), calls_before)
    except aws.AwsError as error:
        if error.retryable:
            _wait_for_aws(ledger, operation, unit, token, error, calls_before)
        else:
            _fail(ledger, unit, token, operation.failure(unit, error), calls_before)
    except workflow.Conflict as lost:
        logger.info("%s %s lost its lease: %s", ledger.name, unit.pk, lost.message)


def _fail(ledger: Ledger, unit: Any, token: str, failure: dict[str, Any], calls_before: int) -> None:
    """End the attempt as failed: refused by AWS (`sent`: its answer to this attempt's call), or
    stopped by the portal before anything was sent."""
    sent = ledger.counters(unit.pk)[0] > calls_before
    try:
        ledger.fail(unit, token, failure, sent=sent)
    except workflow.Conflict as lost:
        logger.info("failure of %s %s not recorded: %s", ledger.name, unit.pk, lost.message)


def _wait_for_aws(
    ledger: Ledger, operation: Operation, unit: Any, token: str, error: aws.AwsError, calls_before: int
) -> None:
    """Schedule the next attempt, or give up once the retry budget is spent."""
    calls, call_pending, waiting = ledger.counters(unit.pk)
    called_now = calls > calls_before
    wait = wait_for_aws(error, waiting=waiting, called_now=called_now, call_pending=call_pending)
    if wait is None:
        _fail(ledger, unit, token, operation.gave_up(unit, gave_up_message(error), error), calls_before)
        return
    try:
        due_at = ledger.schedule_retry(unit, token, error.as_record(), wait, settings.PORTAL_IMPORT_LEASE_SECONDS)
    except workflow.Conflict as lost:
        logger.info("%s %s not rescheduled: %s", ledger.name, unit.pk, lost.message)
        return
    raise TryAgain(wait.seconds, token, due_at)


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
            made = OPERATIONS[step.kind].read(STEPS.where(step), step)
        except aws.AwsError as error:
            report["errors"] += 1
            logger.warning("could not read step %s: %s", step.pk, error.as_record())
            continue
        report["asked"] += 1
        _apply(step, made, report)


def _apply(step: RolloutStep, made: Made | None, report: dict[str, int]) -> None:
    outcome = settle_read(STEPS, step, made)
    if outcome in (DONE, FAILED):
        report[outcome] += 1


def settle_read(ledger: Ledger, unit: Any, made: Made | None) -> str:
    """Record what a poller read of a unit AWS works on: DONE, FAILED, WORKING, another word
    the ledger has for it (the import's "stalled"), or "" when nothing was recorded (AWS does
    not show it yet, or someone else recorded it first)."""
    try:
        if made is None:
            if timezone.now() - ledger.working_since(unit) <= VANISHED_AFTER:
                return ""
            ledger.fail(unit, None, ledger.operation(unit).vanished(unit, ledger.resource_id(unit)), sent=True)
            return FAILED
        return ledger.settle(unit, None, made, made.record) or made.outcome
    except workflow.Conflict:
        return ""


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
