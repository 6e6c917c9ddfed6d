"""Doing the import: the steps between the workflow verbs and AWS that the Celery tasks run.

Never inside a database transaction: each workflow verb commits on its own, AWS is called
between them (claim, commit, call, record). Every function takes ids, re-reads the rows and
returns quietly when the world has moved on.
"""

import logging
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from imports import aws, dispatch, image_errors, rules, workflow
from imports.models import AwsTarget, ImportRequest

logger = logging.getLogger(__name__)
State = ImportRequest.State

MSG_PREFLIGHT_FAILED_AT_IMPORT = (
    "The pre-flight checks failed just before the import, so nothing was sent to AWS: {failures} "
    "Fix the problem, then ask an approver to retry the import."
)
MSG_NAME_TAKEN_IN_AWS = (
    "An image called {name} already exists in WorkSpaces and was not made by this request ({image_id}). "
    "Ask for the image to be renamed or deleted, or file a new request with another image name."
)
MSG_OLD_ERROR_IMAGE = (
    "A failed image called {name} from an earlier attempt still exists in WorkSpaces ({image_id}). "
    "Delete it in the WorkSpaces console, then ask an approver to retry the import."
)
MSG_PARAMETERS_CHANGED = (
    "The request's parameters no longer match the ones approved, so nothing was sent to AWS. "
    "Ask the requester to file the request again."
)
MSG_GAVE_UP = "AWS kept failing after {calls} attempts, so the portal stopped trying: {reason} An approver can retry."
MSG_IMAGE_VANISHED = "AWS no longer knows the image {image_id}: it was deleted while it was being imported."

# After being accepted, an image id may take a moment to show in DescribeWorkspaceImages.
VANISHED_AFTER = timedelta(minutes=30)


class TryAgain(Exception):
    """The import waits: run it again in `seconds`, resuming the lease it holds."""

    def __init__(self, seconds: float, lease: datetime | None) -> None:
        super().__init__(f"try again in {seconds:.0f} s")
        self.seconds = seconds
        self.lease = lease


def backoff(attempt: int, *, base: float = 5.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter: half the delay fixed, half random, so that workers that
    failed together do not retry together.
    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/"""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 -- jitter, not a secret


# --- pre-flight ------------------------------------------------------------------------------


def run_preflight_checks(request_id: int, version: int) -> ImportRequest | None:
    request = ImportRequest.objects.select_related("target").filter(pk=request_id).first()
    if request is None or request.version != version:
        return None
    if request.state not in workflow.TRANSITIONS[workflow.Action.PREFLIGHT].sources:
        return None
    return _check_and_record(request)


def _check_and_record(request: ImportRequest) -> ImportRequest | None:
    checks = aws.run_preflight(
        request.target, ami_id=request.ec2_image_id, image_name=request.image_name, identity=request.reference
    )
    try:
        return workflow.record_preflight(
            request_id=request.pk, version=request.version, checks=[asdict(c) for c in checks]
        )
    except workflow.Conflict:
        return None  # edited or decided meanwhile: these results are for a version nobody needs


# --- the import ------------------------------------------------------------------------------


def import_request(request_id: int, held_lease: datetime | None = None) -> None:
    """Claim, re-check, call AWS once, record. Raises TryAgain when AWS asks for patience."""
    request = _take(request_id, held_lease)
    if request is None:
        return
    if request.import_calls and _adopt_existing_image(request):
        return
    checked = _check_and_record(request)
    if checked is None or not checked.preflight_passed:
        checks = checked.preflight.get("checks", []) if checked else []
        failures = [c["message"] for c in checks if c["outcome"] == "fail"]
        _refuse(request, {"message": MSG_PREFLIGHT_FAILED_AT_IMPORT.format(failures=" ".join(failures))})
        return
    parameters = _approved_parameters(request)
    if parameters is None:
        _refuse(request, {"message": MSG_PARAMETERS_CHANGED})
        return
    _call_aws(request, parameters)


def _take(request_id: int, held_lease: datetime | None) -> ImportRequest | None:
    lease = settings.PORTAL_IMPORT_LEASE_SECONDS
    state = ImportRequest.objects.filter(pk=request_id).values_list("state", flat=True).first()
    try:
        if state == State.APPROVED:
            return workflow.claim_for_import(request_id=request_id, lease_seconds=lease)
        if state == State.SUBMITTING:
            return workflow.reclaim_import(request_id=request_id, lease_seconds=lease, held_lease=held_lease)
    except workflow.Conflict as lost:
        logger.info("import of %s not taken: %s", request_id, lost.message)
    return None


def _approved_parameters(request: ImportRequest) -> dict[str, Any] | None:
    """The parameters of the latest approval, which must still be the request's own."""
    approval = request.events.filter(action__in=["approve", "retry"]).order_by("-seq").first()
    approved = approval.data.get("parameters") if approval else None
    if approved != request.aws_parameters():
        return None
    return aws.with_portal_tags(
        approved,
        reference=request.reference,
        requester=request.requester.get_username(),
        approver=request.approver.get_username() if request.approver else "",
    )


def _call_aws(request: ImportRequest, parameters: dict[str, Any]) -> None:
    workflow.record_import_call(request_id=request.pk, parameters=parameters)
    calls = request.import_calls + 1
    try:
        result = aws.import_image(request.target, parameters=parameters, identity=request.reference)
    except aws.AlreadyExists as error:
        if not _adopt_existing_image(request):
            _refuse(request, error.as_record())
    except aws.LimitExceeded as error:
        _retry_later(request, error, settings.PORTAL_LIMIT_RETRY_SECONDS, calls)
    except (aws.Throttled, aws.ServerError, aws.NetworkError) as error:
        _retry_later(request, error, backoff(calls), calls)
    except aws.AwsError as error:
        _refuse(request, error.as_record())
    else:
        workflow.record_import_accepted(
            request_id=request.pk, aws_image_id=result.image_id, data={"aws_request_id": result.request_id}
        )


def _retry_later(request: ImportRequest, error: aws.AwsError, seconds: float, calls: int) -> None:
    if calls >= settings.PORTAL_MAX_IMPORT_CALLS:
        _refuse(request, {**error.as_record(), "message": MSG_GAVE_UP.format(calls=calls, reason=error.message)})
        return
    waiting = workflow.schedule_import_retry(request_id=request.pk, error=error.as_record(), retry_in=seconds)
    raise TryAgain(seconds, waiting.lease_expires_at)


def _refuse(request: ImportRequest, failure: dict[str, Any]) -> None:
    workflow.record_import_refused(request_id=request.pk, failure=failure, data={})


def _adopt_existing_image(request: ImportRequest) -> bool:
    """An earlier attempt may have reached AWS: find the image by name, and take it over if this
    request made it (its portal tag says so). Returns whether the request is settled."""
    image = aws.find_owned_image(request.target, name=request.image_name)
    if image is None:
        return False
    tags = aws.image_tags(request.target, image.image_id)
    if tags.get(rules.PORTAL_TAG_KEYS[0]) != request.reference:
        _refuse(request, {"message": MSG_NAME_TAKEN_IN_AWS.format(name=request.image_name, image_id=image.image_id)})
        return True
    if image.state == "ERROR" and _older_than_this_attempt(request, image):
        _refuse(request, {"message": MSG_OLD_ERROR_IMAGE.format(name=request.image_name, image_id=image.image_id)})
        return True
    workflow.record_import_accepted(
        request_id=request.pk, aws_image_id=image.image_id, data={"adopted": True, "image": image.as_record()}
    )
    return True


def _older_than_this_attempt(request: ImportRequest, image: aws.ImageStatus) -> bool:
    claim = request.events.filter(action="claim").order_by("-seq").first()
    try:
        created = datetime.fromisoformat(image.created)
    except ValueError:
        return False
    return claim is not None and created < claim.created_at


# --- tracking --------------------------------------------------------------------------------


@dataclass
class PollReport:
    requests: int = 0
    describe_calls: int = 0
    available: int = 0
    failed: int = 0
    stalled: int = 0
    errors: int = 0


def poll_importing_images() -> PollReport:
    """One pass over every `importing` request, grouped by target, 25 image ids per call."""
    report = PollReport()
    by_target: dict[int, list[ImportRequest]] = defaultdict(list)
    for request in ImportRequest.objects.filter(state=State.IMPORTING).select_related("target").order_by("pk"):
        by_target[request.target_id].append(request)
    for requests in by_target.values():
        _poll_target(requests[0].target, requests, report)
    return report


def _poll_target(target: AwsTarget, requests: list[ImportRequest], report: PollReport) -> None:
    report.requests += len(requests)
    ids = [r.aws_image_id for r in requests]
    report.describe_calls += -(-len(ids) // aws.DESCRIBE_BATCH)
    try:
        statuses = aws.describe_images(target, ids)
    except aws.AwsError as error:
        report.errors += 1
        logger.warning("could not poll %d images of %s: %s", len(ids), target, error.as_record())
        return
    for request in requests:
        _apply_status(request, statuses.get(request.aws_image_id), report)


def _apply_status(request: ImportRequest, status: aws.ImageStatus | None, report: PollReport) -> None:
    now = timezone.now()
    started = request.import_started_at or request.updated_at
    try:
        if status is None:
            if now - started > VANISHED_AFTER:
                workflow.record_image_failed(
                    request_id=request.pk,
                    failure={"message": MSG_IMAGE_VANISHED.format(image_id=request.aws_image_id)},
                    data={},
                )
                report.failed += 1
        elif status.state == "AVAILABLE":
            workflow.record_image_available(request_id=request.pk, data={"image": status.as_record()})
            report.available += 1
        elif status.state == "ERROR":
            failure = image_errors.explain_image_error(
                error_code=status.error_code, error_message=status.error_message, details=status.error_details
            )
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


def sweep_lost_work() -> SweepReport:
    """Re-queue work whose message was lost (broker down at approval, a worker that died)."""
    now = timezone.now()
    quiet_since = now - timedelta(seconds=settings.PORTAL_UNCLAIMED_AFTER_SECONDS)
    report = SweepReport()
    unclaimed = ImportRequest.objects.filter(state=State.APPROVED, updated_at__lt=quiet_since)
    for pk in unclaimed.values_list("pk", flat=True):
        dispatch.publish("import_request", (pk,))
        report.unclaimed += 1
    lost = ImportRequest.objects.filter(state=State.SUBMITTING, lease_expires_at__lt=now)
    for pk in lost.values_list("pk", flat=True):
        dispatch.publish("import_request", (pk,))
        report.lost_claims += 1
    waiting = ImportRequest.objects.filter(
        state__in=[State.SUBMITTED, State.CHANGES_REQUESTED], updated_at__lt=quiet_since
    ).only("pk", "version", "preflight")
    for request in waiting:
        if not request.preflight_is_current:
            dispatch.publish("run_preflight_checks", (request.pk, request.version))
            report.unchecked += 1
    return report
