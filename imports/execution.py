"""What the Celery tasks run besides the engine's calls (imports.steps.engine): the pre-flight,
the import's tracking until AWS says AVAILABLE or ERROR, the request form's AMI offers, and the
sweeper that sends again the work whose message was lost.

Never inside a database transaction: each workflow verb commits on its own, AWS is called
between them. Every function takes ids, re-reads the rows and returns quietly when the world
has moved on.

The import itself is a unit of the engine, like each step of the delivery plan: claimed with a
lease, reconciled after a call whose outcome is unknown, called once, retried with backoff; its
own checks, its turn at AWS's rate and the deletion of a stale image are its operation's
(imports.steps.image).
"""

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from imports import aws, dispatch, rules, workflow
from imports.locks import job_lock
from imports.models import AwsTarget, ImportRequest
from imports.steps import engine
from imports.steps.base import DONE, FAILED, Made
from imports.steps.image import IMPORT, image_builder_source
from imports.steps.ledger import REQUESTS, STALLED

logger = logging.getLogger(__name__)
State = ImportRequest.State


# --- pre-flight ------------------------------------------------------------------------------


def run_preflight_checks(request_id: int, version: int) -> ImportRequest | None:
    request = ImportRequest.objects.select_related("target").filter(pk=request_id).first()
    if request is None or request.version != version:
        return None
    if request.state not in workflow.TRANSITIONS[workflow.Action.PREFLIGHT].sources:
        return None  # being imported, or over: the import makes its own checks
    checks = aws.run_preflight(
        request.target,
        ami_id=request.ec2_image_id,
        image_name=request.image_name,
        identity=request.reference,
        windows_version=request.windows_version,
        # The failed image of an earlier attempt holds the name until the import deletes it.
        replacing_image_id=request.stale_image_id,
        image_builder=image_builder_source(request),
    )
    if request.delivery_plan:
        checks += aws.run_plan_checks(
            request.target, plan=request.delivery_plan, image_name=request.image_name, identity=request.reference
        )
    try:
        return workflow.record_preflight(
            request_id=request.pk, version=request.version, checks=[asdict(c) for c in checks]
        )
    except workflow.Conflict:
        return None  # edited or decided meanwhile: these results are for a version nobody needs


def preflight_interrupted(request: ImportRequest | None) -> bool:
    """Whether a check could not be made for a passing reason, so running them again may pass."""
    return request is not None and any(c.get("retryable") for c in request.preflight.get("checks", []))


# --- the import ------------------------------------------------------------------------------


def import_request(request_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    """Claim (or resume), re-check, take a turn, call AWS once, record: the engine's run of the
    import. Raises TryAgain when the import must wait."""
    engine.run_import(request_id, lease_token=lease_token, due_at=due_at)


# --- the request form's AMI offers -------------------------------------------------------------


def refresh_ami_offers(target_id: int) -> int | None:
    """List the target's Windows AMIs for the request form (selectors.offered_amis); the number
    offered, or None when AWS could not be asked (the last list stays)."""
    target = AwsTarget.objects.filter(pk=target_id, is_active=True).first()
    if target is None:
        return None
    try:
        amis = aws.list_windows_amis(target)
    except aws.AwsError as error:
        logger.warning("could not list the AMIs of %s: %s", target, error.as_record())
        return None
    offers = [asdict(ami) for ami in amis]
    AwsTarget.objects.filter(pk=target_id).update(ami_offers=offers, ami_offers_at=timezone.now())
    return len(offers)


# --- tracking --------------------------------------------------------------------------------


@dataclass
class PollReport:
    requests: int = 0
    describe_calls: int = 0
    available: int = 0
    failed: int = 0
    stalled: int = 0
    errors: int = 0
    # Importing requests this pass did not reach (its time ran out, or AWS's rate was busy with
    # imports); the next pass starts with them.
    deferred: int = 0
    # Image Builder imports whose progress was asked (one call each), and those left for a later
    # pass because the account's rate had no free turn.
    progress_calls: int = 0
    progress_deferred: int = 0

    def add(self, other: "PollReport") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def importing_target_ids() -> list[int]:
    importing = ImportRequest.objects.filter(state=State.IMPORTING)
    return sorted(set(importing.values_list("target_id", flat=True)))


def poll_importing_images() -> PollReport:
    """One pass over every target with `importing` requests, one after the other (the Celery task
    instead sends one `poll_target` per target, so accounts are polled side by side)."""
    report = PollReport()
    for target_id in importing_target_ids():
        report.add(poll_target(target_id))
    return report


def poll_target(target_id: int, *, seconds: float | None = None, min_interval: float = 0) -> PollReport:
    """Ask AWS about the target's importing images, 25 ids a call, the longest unasked first,
    for at most `seconds` (the pass must end well inside a task's time limits; what it does not
    reach, the next pass does first). One pass at a time per target, and none within
    `min_interval` seconds of the last one started."""
    report = PollReport()
    seconds = settings.PORTAL_POLL_PASS_SECONDS if seconds is None else seconds
    with job_lock(f"poll:{target_id}", hold_seconds=seconds + 60, min_interval_seconds=min_interval) as mine:
        if mine:
            _poll_target(target_id, report, deadline=time.monotonic() + seconds)
    return report


def _poll_target(target_id: int, report: PollReport, *, deadline: float) -> None:
    target = AwsTarget.objects.get(pk=target_id)
    started = timezone.now()
    importing = ImportRequest.objects.filter(target_id=target_id, state=State.IMPORTING)
    unasked = importing.filter(Q(polled_at__isnull=True) | Q(polled_at__lt=started))
    # At least one call per pass, however short its time: every pass makes progress.
    while batch := list(unasked.order_by(F("polled_at").asc(nulls_first=True), "pk")[: aws.DESCRIBE_BATCH]):
        if report.describe_calls and time.monotonic() >= deadline:
            report.deferred += unasked.count()
            return
        try:
            read = IMPORT.read_many(target, batch)
        except aws.AwsError as error:
            # RateBusy: imports are using the account's rate, and they go first.
            if not isinstance(error, aws.RateBusy):
                report.errors += 1
                logger.warning("could not poll %d images of %s: %s", len(batch), target, error.as_record())
            report.deferred += unasked.count()
            return
        report.describe_calls += 1
        report.requests += len(batch)
        ImportRequest.objects.filter(pk__in=[r.pk for r in batch]).update(polled_at=timezone.now())
        for request in batch:
            _apply_status(request, read[request.pk], report)
    _refresh_progress(target, report, deadline=deadline)


def _refresh_progress(target: AwsTarget, report: PollReport, *, deadline: float) -> None:
    """Ask for the progress of the target's Image Builder imports still running, the longest
    unasked first, one call each, only in free turns of the account's rate: with many in flight
    each figure is simply older (the page says how old), never a call over the rate."""
    running = ImportRequest.objects.filter(
        target_id=target.pk, state=State.IMPORTING, import_path=rules.ImportPath.IMAGE_BUILDER
    ).order_by(F("progress_checked_at").asc(nulls_first=True), "pk")
    for request in running.only("pk", "aws_image_id", "target_id").iterator(chunk_size=100):
        if time.monotonic() >= deadline:
            report.progress_deferred += 1
            continue
        try:
            progress = aws.import_progress(target, request.aws_image_id)
        except aws.RateBusy:
            report.progress_deferred += running.count() - report.progress_calls
            return
        except aws.AwsError as error:
            report.errors += 1
            logger.warning("could not read the progress of %s: %s", request.pk, error.as_record())
            continue
        report.progress_calls += 1
        workflow.record_import_progress(
            request_id=request.pk, stage=progress.stage, message=progress.message, progress=progress.progress
        )


def _apply_status(request: ImportRequest, made: Made | None, report: PollReport) -> None:
    outcome = engine.settle_read(REQUESTS, request, made)
    if outcome == DONE:
        report.available += 1
    elif outcome == FAILED:
        report.failed += 1
    elif outcome == STALLED:
        report.stalled += 1


# --- decisions overdue -----------------------------------------------------------------------


@dataclass
class OverdueReport:
    reminded: int = 0
    escalated: int = 0


def remind_overdue_decisions(*, min_interval: float = 0) -> OverdueReport:
    """Remind the approvers of each request undecided for PORTAL_REMIND_AFTER_HOURS, and escalate
    each undecided for PORTAL_ESCALATE_AFTER_HOURS; once each per version (workflow.record_overdue).
    One pass at a time."""
    report = OverdueReport()
    with job_lock("overdue", hold_seconds=300, min_interval_seconds=min_interval) as mine:
        if mine:
            report.reminded = _overdue(settings.PORTAL_REMIND_AFTER_HOURS, escalate=False)
            report.escalated = _overdue(settings.PORTAL_ESCALATE_AFTER_HOURS, escalate=True)
    return report


def _overdue(hours: float, *, escalate: bool) -> int:
    not_yet = {"escalated_at__isnull" if escalate else "reminded_at__isnull": True}
    since = timezone.now() - timedelta(hours=hours)
    due = ImportRequest.objects.filter(state=State.SUBMITTED, decision_asked_at__lt=since, **not_yet)
    done = 0
    for pk, version in due.values_list("pk", "version").iterator():
        try:
            workflow.record_overdue(request_id=pk, version=version, escalate=escalate)
        except workflow.Conflict:
            continue  # decided, changed or told meanwhile
        done += 1
    return done


# --- the sweeper -----------------------------------------------------------------------------


@dataclass
class SweepReport:
    unclaimed: int = 0
    lost_claims: int = 0
    unchecked: int = 0
    # Rollout steps sent again (imports.steps.engine.lost_steps).
    steps: int = 0


def _unsent_since(due: Any, now: datetime) -> Q:
    """No message for the work was accepted since it became due at `due`, or the last one is so
    old that it can no longer be on its way (a broker that lost it)."""
    resend_after = now - timedelta(seconds=settings.PORTAL_RESEND_AFTER_SECONDS)
    return Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=due) | Q(dispatched_at__lt=resend_after)


def sweep_lost_work(*, min_interval: float = 0) -> SweepReport:
    """Send again the work whose message was lost or never sent (a broker that was down at
    approval, a worker that died): each piece once, not again while its message may still be
    on its way. One sweep at a time, and none within `min_interval` seconds of the last."""
    report = SweepReport()
    with job_lock("sweep", hold_seconds=120, min_interval_seconds=min_interval) as mine:
        if mine:
            _sweep(report, timezone.now())
    return report


def _sweep(report: SweepReport, now: datetime) -> None:
    quiet_since = now - timedelta(seconds=settings.PORTAL_UNCLAIMED_AFTER_SECONDS)
    unclaimed = ImportRequest.objects.filter(_unsent_since(F("updated_at"), now), state=State.APPROVED)
    for pk in unclaimed.filter(updated_at__lt=quiet_since).values_list("pk", flat=True):
        dispatch.publish("import_request", (pk,), request_id=pk)
        report.unclaimed += 1
    lost = ImportRequest.objects.filter(
        _unsent_since(F("lease_expires_at"), now), state=State.SUBMITTING, lease_expires_at__lt=now
    )
    for pk in lost.values_list("pk", flat=True):
        dispatch.publish("import_request", (pk,), request_id=pk)
        report.lost_claims += 1
    waiting = ImportRequest.objects.filter(
        _unsent_since(F("updated_at"), now),
        state__in=[State.SUBMITTED, State.CHANGES_REQUESTED],
        updated_at__lt=quiet_since,
    ).only("pk", "version", "preflight")
    for request in waiting:
        if not request.preflight_is_current:
            dispatch.publish("run_preflight_checks", (request.pk, request.version), request_id=request.pk)
            report.unchecked += 1
    for step_id in engine.lost_steps(now, unsent_since=_unsent_since):
        dispatch.publish("run_step", (step_id,), step_id=step_id)
        report.steps += 1
