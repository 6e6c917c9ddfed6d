"""ImportWorkspaceImage (or ImportCustomWorkspaceImage on the Image Builder path): the import
itself, run by the engine like every step, kept on its request (imports.steps.ledger.Requests).

What it adds to the engine's call, just before it:
- the failed image of an earlier attempt, if this request made it, is deleted first, so that its
  name and its slot of the image quota are free;
- the parameters must still be the approved ones;
- what can have changed since approval is checked again (credentials, the AMI, BYOL), with STS,
  EC2 and a cache, never the account's WorkSpaces rate;
- the call spends the account's WorkSpaces rate: its turn is reserved at the limiter, and a turn
  further off than a moment is waited for as a scheduled retry, not by a busy worker.
After a call whose outcome is unknown, the image is looked for by name: taken over if its portal
tag names this request, a clash if not.
"""

import time
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from imports import aws, image_errors, rules, workflow
from imports.models import ImportRequest
from imports.retry import TryAgain
from imports.steps.base import DONE, FAILED, WORKING, Made, NotOurs, Operation, Stop

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
MSG_TURN_LOST = "another worker holds the import now"
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
# A turn at most this far off is waited for by the worker itself; a later one is a scheduled retry.
INLINE_TURN_SECONDS = 1.0


def image_builder_source(request: ImportRequest) -> aws.ImageBuilderSource | None:
    """The Image Builder path's source and infrastructure, or None on the classic path."""
    if not request.via_image_builder:
        return None
    return aws.ImageBuilderSource(
        kind=request.source_kind,
        value=request.source_value,
        infrastructure_configuration_arn=request.infrastructure_configuration_arn,
    )


def approved_parameters(request: ImportRequest) -> dict[str, Any] | None:
    """The parameters of the latest approval, with the portal's tags; None when they are no
    longer the request's own."""
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


def _failure(error: aws.AwsError, **overrides: Any) -> dict[str, Any]:
    next_step = next((step for kind, step in NEXT_STEP_BY_ERROR.items() if isinstance(error, kind)), "retry")
    return {**error.as_record(), "next_step": next_step, **overrides}


class ImportImage(Operation):
    kind = "import"
    title = "Import"
    permission = "workspaces:ImportWorkspaceImage"

    def parameters(self, request: ImportRequest) -> dict[str, Any] | None:
        return approved_parameters(request)

    def before_call(
        self, request: ImportRequest, parameters: dict[str, Any] | None, *, resumed: bool
    ) -> dict[str, Any]:
        if request.stale_image_id:
            _delete_stale_image(request)
        if parameters is None:
            raise Stop({"message": MSG_PARAMETERS_CHANGED, "next_step": "revise"})
        checks = _checks_before_import(request)
        _take_turn(request, resumed=resumed)
        return {"checks": checks}

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        result = aws.import_image(where, parameters=parameters, identity=identity)
        return Made(result.image_id, "PENDING", WORKING, record={"aws_request_id": result.request_id})

    def find(self, where: aws.Target, request: ImportRequest, parameters: dict[str, Any] | None) -> Made | None:
        """The image an earlier attempt may have made, by name; a failed one of this request from
        before this attempt is deleted (None: carry on), someone else's is a clash."""
        image = aws.find_owned_image(where, name=request.image_name)
        if image is None:
            return None
        if aws.image_tags(where, image.image_id).get(rules.PORTAL_TAG_KEYS[0]) != request.reference:
            raise NotOurs(MSG_NAME_TAKEN_IN_AWS.format(name=request.image_name, image_id=image.image_id))
        if image.state == "ERROR" and _older_than_this_attempt(request, image):
            if not workflow.mark_stale_image(
                request_id=request.pk, lease_token=request.lease_token, image_id=image.image_id
            ):
                raise workflow.Conflict(MSG_TURN_LOST)
            request.stale_image_id = image.image_id
            _delete_stale_image(request)
            return None
        return made(image)

    def read_many(self, where: aws.Target, requests: list[ImportRequest]) -> dict[int, Made | None]:
        """The images of up to 25 requests in one DescribeWorkspaceImages call, by request: the
        import's poller (imports.execution) asks per account, in batches, within AWS's rate."""
        images = aws.describe_images(where, [r.aws_image_id for r in requests])
        return {r.pk: made(images[r.aws_image_id]) if r.aws_image_id in images else None for r in requests}

    def failure(self, request: ImportRequest, error: aws.AwsError) -> dict[str, Any]:
        return _failure(error)

    def clash(self, request: ImportRequest, message: str) -> dict[str, Any]:
        return {"message": message, "next_step": "revise"}

    def gave_up(self, request: ImportRequest, message: str, error: aws.AwsError) -> dict[str, Any]:
        return {**error.as_record(), "message": MSG_GAVE_UP.format(reason=message), "next_step": "retry"}

    def vanished(self, request: ImportRequest, resource_id: str) -> dict[str, Any]:
        return {"message": MSG_IMAGE_VANISHED.format(image_id=resource_id), "next_step": "retry"}


def made(image: aws.ImageStatus) -> Made:
    """An image as AWS describes it. An image AWS could not import needs a changed request (a new
    AMI), never the same again."""
    record = {"image": image.as_record()}
    if image.state == "AVAILABLE":
        return Made(image.image_id, image.state, DONE, record=record)
    if image.state == "ERROR":
        explained = image_errors.explain_image_error(
            error_code=image.error_code, error_message=image.error_message, details=image.error_details
        )
        return Made(image.image_id, image.state, FAILED, failure={**explained, "next_step": "revise"}, record=record)
    return Made(image.image_id, image.state, WORKING, record=record)


IMPORT = ImportImage()


def _delete_stale_image(request: ImportRequest) -> None:
    """Delete the failed image of an earlier attempt, only if its portal tag names this request
    (an image AWS no longer knows is gone already). Stop when AWS will not delete it."""
    image_id = request.stale_image_id
    tags = _tags_or_none(request.target, image_id)
    if tags is not None and tags.get(rules.PORTAL_TAG_KEYS[0]) == request.reference:
        try:
            aws.delete_image(request.target, image_id, identity=request.reference)
        except aws.AwsError as error:
            if error.retryable:
                raise
            reason = f"{error.message} (AWS: {error.aws_message})" if error.aws_message else error.message
            raise Stop(_failure(error, message=MSG_STALE_IMAGE_KEPT.format(image_id=image_id, reason=reason))) from None
    workflow.record_image_deleted(request_id=request.pk, lease_token=request.lease_token, image_id=image_id)
    request.stale_image_id = ""


def _tags_or_none(target: Any, image_id: str) -> dict[str, str] | None:
    """The image's tags, or None when AWS no longer knows the image (nothing left to delete)."""
    try:
        return aws.image_tags(target, image_id)
    except aws.ResourceNotFound:
        return None


def _checks_before_import(request: ImportRequest) -> list[dict[str, Any]]:
    """The checks of what can have changed since approval; Stop when one failed. A check that
    could not be made raises a retryable AwsError."""
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
        raise Stop(
            {
                "message": MSG_PREFLIGHT_FAILED_AT_IMPORT.format(failures=" ".join(c.message for c in failed)),
                "checks": records,
                "next_step": "fix_target" if all(c.key in TARGET_CHECKS for c in failed) else "revise",
            }
        )
    return records


def _take_turn(request: ImportRequest, *, resumed: bool) -> None:
    """Reserve the account's next WorkSpaces call, and wait for it here only if it is close; a
    later turn is a scheduled retry (TryAgain)."""
    if resumed and request.waiting.get("reason") == "rate":
        return  # the turn reserved before this retry was scheduled is now
    wait = aws.reserve_turn(request.target)
    if wait <= INLINE_TURN_SECONDS:
        time.sleep(wait)
        return
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
    if not held:
        raise workflow.Conflict(MSG_TURN_LOST)
    raise TryAgain(wait, request.lease_token, due_at)


def _older_than_this_attempt(request: ImportRequest, image: aws.ImageStatus) -> bool:
    claim = request.events.filter(action="claim").order_by("-seq").first()
    try:
        created = datetime.fromisoformat(image.created)
    except ValueError:
        return False
    return claim is not None and created < claim.created_at
