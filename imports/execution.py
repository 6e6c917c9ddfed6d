"""The engine: the steps between the workflow verbs and AWS that the Celery tasks run.

Never inside a database transaction: each workflow verb commits on its own, AWS is called
between them (claim, commit, call, record). Every function takes ids, re-reads the rows and
returns quietly when the world has moved on.

How an import survives what AWS and the machines do:
- A claim is a lease with a token. The worker renews the lease while it works (a heartbeat
  thread), so a worker that dies loses it within PORTAL_IMPORT_LEASE_SECONDS and the sweeper
  hands the import to another; the token fences a worker that was only paused out of every
  later write.
- The import call spends the account's WorkSpaces rate and nothing else does on the way: the
  checks just before it ask STS and EC2, BYOL comes from a cache, and a name clash is what the
  call itself reports. Its turn is reserved at the limiter; a turn further off than a moment
  is waited for as a scheduled retry, not by a worker that could be doing other work.
- Throttling, 5xx, timeouts and an unreachable AWS, anywhere on the way, make the import wait
  and try again (exponential backoff with jitter) until PORTAL_RETRY_BUDGET_SECONDS is spent;
  only AWS's own refusals fail it. After a call whose outcome is unknown, the image is looked
  for by name before anything is sent again.
"""

import logging
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from imports import aws, dispatch, image_errors, rules, workflow
from imports.locks import job_lock, lease_kept
from imports.models import AwsTarget, ImportRequest
from imports.retry import TryAgain, gave_up_message, wait_for_aws

logger = logging.getLogger(__name__)
State = ImportRequest.State

MSG_PREFLIGHT_FAILED_AT_IMPORT = (
    "The pre-flight checks failed just before the import, so nothing was sent to AWS: {failures}"
)
MSG_NAME_TAKEN_IN_AWS = (
    "An image called {name} already exists in WorkSpaces and was not made by this request ({image_id}). "
    "Revise the request with another image name."
)
MSG_STALE_IMAGE_KEPT = (
    "The failed image of an earlier attempt ({image_id}) could not be deleted, so nothing was sent to AWS: {reason}"
)
MSG_PARAMETERS_CHANGED = (
    "The request's parameters no longer match the ones approved, so nothing was sent to AWS. "
    "Revise the request, so that it is approved as it stands."
)
MSG_GAVE_UP = "{reason} Once AWS works again, an approver can retry the import."
MSG_WAITING_FOR_TURN = (
    "Waiting for its turn: the portal keeps to AWS's rate of WorkSpaces calls for this account, "
    "and other imports to it are ahead."
)
MSG_IMAGE_VANISHED = "AWS no longer knows the image {image_id}: it was deleted while it was being imported."

# What can make the next attempt work, by what stopped this one (workflow.RETRYABLE_NEXT_STEPS).
NEXT_STEP_BY_ERROR: dict[type[aws.AwsError], str] = {
    aws.AccessDenied: "fix_target",
    aws.NotSupported: "fix_target",
    aws.InvalidParameters: "revise",
    aws.ResourceNotFound: "revise",
    aws.AlreadyExists: "revise",
    aws.ImageInUse: "fix_target",
    aws.EndpointRefused: "fix_target",
}
# Checks about the target, which an admin fixes; any other failed check is about the request.
TARGET_CHECKS = frozenset({"credentials", "byol"})

# After being accepted, an image id may take a moment to show in DescribeWorkspaceImages.
VANISHED_AFTER = timedelta(minutes=30)
# A turn at most this far off is waited for by the worker itself; a later one is a scheduled retry.
INLINE_TURN_SECONDS = 1.0


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


def image_builder_source(request: ImportRequest) -> aws.ImageBuilderSource | None:
    """The Image Builder path's source and infrastructure, or None on the classic path."""
    if not request.via_image_builder:
        return None
    return aws.ImageBuilderSource(
        kind=request.source_kind,
        value=request.source_value,
        infrastructure_configuration_arn=request.infrastructure_configuration_arn,
    )


def preflight_interrupted(request: ImportRequest | None) -> bool:
    """Whether a check could not be made for a passing reason, so running them again may pass."""
    return request is not None and any(c.get("retryable") for c in request.preflight.get("checks", []))


# --- the import ------------------------------------------------------------------------------


def import_request(request_id: int, *, lease_token: str = "", due_at: datetime | None = None) -> None:
    """Claim (or resume), re-check, take a turn, call AWS once, record. Raises TryAgain when the
    import must wait."""
    request = _take(request_id, lease_token, due_at)
    if request is None:
        return
    with _lease_kept(request.pk, request.lease_token):
        _attempt(request, resumed=due_at is not None)


def _take(request_id: int, lease_token: str, due_at: datetime | None) -> ImportRequest | None:
    lease = settings.PORTAL_IMPORT_LEASE_SECONDS
    state = ImportRequest.objects.filter(pk=request_id).values_list("state", flat=True).first()
    try:
        if lease_token and due_at is not None:
            return workflow.resume_import(
                request_id=request_id, lease_token=lease_token, due_at=due_at, lease_seconds=lease
            )
        if state == State.APPROVED:
            return workflow.claim_for_import(request_id=request_id, lease_seconds=lease)
        if state == State.SUBMITTING:
            return workflow.reclaim_import(request_id=request_id, lease_seconds=lease)
    except workflow.Conflict as lost:
        logger.info("import of %s not taken: %s", request_id, lost.message)
    return None


def _lease_kept(request_id: int, lease_token: str) -> AbstractContextManager[None]:
    seconds = settings.PORTAL_IMPORT_LEASE_SECONDS
    return lease_kept(
        f"request {request_id}",
        lambda: workflow.renew_lease(request_id=request_id, lease_token=lease_token, lease_seconds=seconds),
        seconds=seconds,
    )


def _attempt(request: ImportRequest, *, resumed: bool) -> None:
    token = request.lease_token
    try:
        if request.import_call_pending and _reconcile(request):
            return
        if request.stale_image_id and not _delete_stale_image(request):
            return
        parameters = _approved_parameters(request)
        if parameters is None:
            _refuse(request, {"message": MSG_PARAMETERS_CHANGED, "next_step": "revise"}, sent=False)
            return
        checks = _checks_before_import(request)
        if checks is None:
            return
        if _take_turn(request, resumed=resumed):
            _call_aws(request, parameters, checks)
    except aws.AwsError as error:
        if not error.retryable:
            sent = ImportRequest.objects.filter(pk=request.pk, import_calls__gt=request.import_calls).exists()
            _refuse(request, _failure(error), sent=sent)
            return
        _wait_for_aws(ImportRequest.objects.get(pk=request.pk), token, error, calls_before=request.import_calls)


def _failure(error: aws.AwsError, **overrides: Any) -> dict[str, Any]:
    next_step = next((step for kind, step in NEXT_STEP_BY_ERROR.items() if isinstance(error, kind)), "retry")
    return {**error.as_record(), "next_step": next_step, **overrides}


def _delete_stale_image(request: ImportRequest) -> bool:
    """Delete the failed image of an earlier attempt, so that its name and its slot of the image
    quota are free; only an image whose portal tag names this request. False: the request
    failed because AWS would not delete it."""
    image_id = request.stale_image_id
    tags = _tags_or_none(request.target, image_id)
    if tags is not None and tags.get(rules.PORTAL_TAG_KEYS[0]) == request.reference:
        try:
            aws.delete_image(request.target, image_id, identity=request.reference)
        except aws.AwsError as error:
            if error.retryable:
                raise
            reason = f"{error.message} (AWS: {error.aws_message})" if error.aws_message else error.message
            failure = _failure(error, message=MSG_STALE_IMAGE_KEPT.format(image_id=image_id, reason=reason))
            _refuse(request, failure, sent=False)
            return False
    try:
        workflow.record_image_deleted(request_id=request.pk, lease_token=request.lease_token, image_id=image_id)
    except workflow.Conflict as lost:
        logger.info("deletion of %s for %s not recorded: %s", image_id, request.pk, lost.message)
        return False
    request.stale_image_id = ""
    return True


def _tags_or_none(target: AwsTarget, image_id: str) -> dict[str, str] | None:
    """The image's tags, or None when AWS no longer knows the image (nothing left to delete)."""
    try:
        return aws.image_tags(target, image_id)
    except aws.ResourceNotFound:
        return None


def _checks_before_import(request: ImportRequest) -> list[dict[str, Any]] | None:
    """The checks of what can have changed since approval; None when one failed (and the
    request with it). A check that could not be made raises a retryable AwsError."""
    checks = aws.run_import_checks(
        request.target,
        ami_id=request.ec2_image_id,
        identity=request.reference,
        byol_cache_seconds=settings.PORTAL_BYOL_CACHE_SECONDS,
        windows_version=request.windows_version,
        image_builder=image_builder_source(request),
    )
    records = [asdict(c) for c in checks]
    failed = [c for c in checks if c.outcome == aws.FAIL]
    if failed:
        failure = {
            "message": MSG_PREFLIGHT_FAILED_AT_IMPORT.format(failures=" ".join(c.message for c in failed)),
            "checks": records,
            "next_step": "fix_target" if all(c.key in TARGET_CHECKS for c in failed) else "revise",
        }
        _refuse(request, failure, sent=False)
        return None
    return records


def _take_turn(request: ImportRequest, *, resumed: bool) -> bool:
    """Reserve the account's next WorkSpaces call, and wait for it here only if it is close.
    A later turn is a scheduled retry (TryAgain); False: another worker holds the import now."""
    if resumed and request.waiting.get("reason") == "rate":
        return True  # the turn reserved before this retry was scheduled is now
    wait = aws.reserve_turn(request.target)
    if wait <= INLINE_TURN_SECONDS:
        time.sleep(wait)
        return True
    due_at = timezone.now() + timedelta(seconds=wait)
    waiting = {
        **request.waiting,
        "reason": "rate",
        "message": MSG_WAITING_FOR_TURN,
        "next_attempt_at": due_at.isoformat(),
    }
    held = workflow.wait_for_turn(
        request_id=request.pk,
        lease_token=request.lease_token,
        due_at=due_at,
        lease_seconds=settings.PORTAL_IMPORT_LEASE_SECONDS,
        waiting=waiting,
    )
    if held:
        raise TryAgain(wait, request.lease_token, due_at)
    return False


def _approved_parameters(request: ImportRequest) -> dict[str, Any] | None:
    """The parameters of the latest approval, which must still be the request's own."""
    approval = workflow.latest_approval(request)
    approved = approval.data.get("parameters") if approval else None
    if approved != request.aws_parameters():
        return None
    return aws.with_portal_tags(
        approved,
        reference=request.reference,
        requester=request.requester.get_username(),
        approver=request.approver.get_username() if request.approver else "",
    )


def _call_aws(request: ImportRequest, parameters: dict[str, Any], checks: list[dict[str, Any]]) -> None:
    token = request.lease_token
    try:
        called = workflow.record_import_call(
            request_id=request.pk, lease_token=token, parameters=parameters, checks=checks
        )
    except workflow.Conflict as lost:
        logger.info("import of %s not sent: %s", request.pk, lost.message)
        return
    try:
        result = aws.import_image(request.target, parameters=parameters, identity=request.reference)
    except aws.AlreadyExists as error:
        if not _reconcile(called, after_call=True):
            _refuse(called, _failure(error), sent=True)
        return
    _record(
        workflow.record_import_accepted,
        called,
        aws_image_id=result.image_id,
        data={"aws_request_id": result.request_id},
    )


def _wait_for_aws(request: ImportRequest, lease_token: str, error: aws.AwsError, *, calls_before: int) -> None:
    """Schedule the next attempt, or give up once the retry budget is spent."""
    called_now = request.import_calls > calls_before
    wait = wait_for_aws(error, waiting=request.waiting, called_now=called_now, call_pending=request.import_call_pending)
    if wait is None:
        message = MSG_GAVE_UP.format(reason=gave_up_message(error))
        _refuse(request, {**error.as_record(), "message": message, "next_step": "retry"}, sent=called_now)
        return
    try:
        waits = workflow.schedule_import_retry(
            request_id=request.pk,
            lease_token=lease_token,
            error=error.as_record(),
            retry_in=wait.seconds,
            lease_seconds=settings.PORTAL_IMPORT_LEASE_SECONDS,
            outcome_unknown=wait.outcome_unknown,
            waiting=wait.waiting,
        )
    except workflow.Conflict as lost:
        logger.info("import of %s not rescheduled: %s", request.pk, lost.message)
        return
    raise TryAgain(wait.seconds, lease_token, waits.next_attempt_at)


def _refuse(request: ImportRequest, failure: dict[str, Any], *, sent: bool) -> None:
    """End the attempt as failed: refused by AWS (`sent`: its answer to our call), or stopped by
    the portal before anything was sent."""
    _record(workflow.record_import_refused, request, failure=failure, data={}, sent=sent)


def _record(verb: Any, request: ImportRequest, **kwargs: Any) -> None:
    """A worker's final word on an attempt, unless another worker took the import over meanwhile."""
    try:
        verb(request_id=request.pk, lease_token=request.lease_token, **kwargs)
    except workflow.Conflict as lost:
        logger.info("outcome for %s not recorded: %s", request.pk, lost.message)


def _reconcile(request: ImportRequest, *, after_call: bool = False) -> bool:
    """An earlier attempt may have reached AWS: find the image by name, and take it over if this
    request made it (its portal tag says so). Returns whether the request is settled."""
    image = aws.find_owned_image(request.target, name=request.image_name)
    if image is None:
        return False
    tags = aws.image_tags(request.target, image.image_id)
    if tags.get(rules.PORTAL_TAG_KEYS[0]) != request.reference:
        message = MSG_NAME_TAKEN_IN_AWS.format(name=request.image_name, image_id=image.image_id)
        _refuse(request, {"message": message, "next_step": "revise"}, sent=after_call)
        return True
    if image.state == "ERROR" and _older_than_this_attempt(request, image):
        # Ours, failed, from before this attempt: clean it up and carry on.
        if not workflow.mark_stale_image(
            request_id=request.pk, lease_token=request.lease_token, image_id=image.image_id
        ):
            return True  # taken over meanwhile
        request.stale_image_id = image.image_id
        return not _delete_stale_image(request)
    _record(
        workflow.record_import_accepted,
        request,
        aws_image_id=image.image_id,
        data={"adopted": True, "image": image.as_record()},
    )
    return True


def _older_than_this_attempt(request: ImportRequest, image: aws.ImageStatus) -> bool:
    claim = request.events.filter(action="claim").order_by("-seq").first()
    try:
        created = datetime.fromisoformat(image.created)
    except ValueError:
        return False
    return claim is not None and created < claim.created_at


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
            statuses = aws.describe_images(target, [r.aws_image_id for r in batch])
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
            _apply_status(request, statuses.get(request.aws_image_id), report)
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


def _apply_status(request: ImportRequest, status: aws.ImageStatus | None, report: PollReport) -> None:
    now = timezone.now()
    started = request.import_started_at or request.updated_at
    try:
        if status is None:
            if now - started > VANISHED_AFTER:
                workflow.record_image_failed(
                    request_id=request.pk,
                    failure={"message": MSG_IMAGE_VANISHED.format(image_id=request.aws_image_id), "next_step": "retry"},
                    data={},
                )
                report.failed += 1
        elif status.state == "AVAILABLE":
            workflow.record_image_available(request_id=request.pk, data={"image": status.as_record()})
            report.available += 1
        elif status.state == "ERROR":
            # An image AWS could not import needs a changed request (a new AMI), never the same again.
            failure = {
                **image_errors.explain_image_error(
                    error_code=status.error_code, error_message=status.error_message, details=status.error_details
                ),
                "next_step": "revise",
            }
            workflow.record_image_failed(request_id=request.pk, failure=failure, data={"image": status.as_record()})
            report.failed += 1
        elif request.stalled_at is None and now - started > timedelta(hours=settings.PORTAL_STALLED_AFTER_HOURS):
            hours = (now - started).total_seconds() / 3600
            workflow.record_image_stalled(request_id=request.pk, running_for_hours=hours)
            report.stalled += 1
    except workflow.Conflict:
        pass  # someone else recorded it first


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
    from imports.steps.engine import lost_steps  # the step engine builds on this module

    for step_id in lost_steps(now, unsent_since=_unsent_since):
        dispatch.publish("run_step", (step_id,), step_id=step_id)
        report.steps += 1
