"""Everything that talks to AWS, with boto3 only: no Django models in here.

Callers pass a `Target` (anything with the attributes of imports.models.AwsTarget that matter
here) and get back plain dataclasses, or one of a few domain errors, each carrying a message
written for people plus the raw AWS code, message and request id for the audit history.
"""

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.parsers import ResponseParserError

from imports import rules

# The session name for calls that serve no single request (polling, listing AMIs).
PORTAL_IDENTITY = "byol-portal"
# https://docs.aws.amazon.com/workspaces/latest/api/API_DescribeWorkspaceImages.html: ImageIds
# takes at most 25 ids, and MaxResults is at most 25.
DESCRIBE_BATCH = 25
# AWS's default quota of WorkSpaces images per region; warn when an account is close to it.
# https://docs.aws.amazon.com/workspaces/latest/adminguide/workspaces-limits.html
IMAGE_QUOTA = 40
IMAGE_QUOTA_WARNING_AT = 36
# AWS's BYOL checker script (https://tools.amazonworkspaces.com/BYOLChecker.zip, linked from
# https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html) fails a drive
# over 80 GB ($MaxDriveSize, Test-BYOL_DriveLessThan80GB); the admin guide used to say 70 GB, so
# a root volume between the two still passes, with a warning.
MAX_ROOT_VOLUME_GB = 80
ROOT_VOLUME_WARNING_GB = 70
ASSUMED_ROLE_SECONDS = 3600


class Target(Protocol):
    account_id: str
    region: str
    credentials: str
    role_arn: str
    external_id: str
    endpoint_url: str


class RateLimiter(Protocol):
    def reserve(self, key: str) -> float:
        """Take the account's next turn, free or not; the seconds until it comes."""

    def acquire(self, key: str, *, max_wait: float) -> float:
        """Wait for a free turn and return 0, or return at once the seconds still to wait when
        that is more than `max_wait`."""


# --- errors ----------------------------------------------------------------------------------

MSG_ACCESS_DENIED = (
    "AWS refused access. The portal's IAM identity for this target lacks a permission it needs "
    "(workspaces:ImportWorkspaceImage, ec2:DescribeImages, ec2:ModifyImageAttribute): ask an admin "
    "to check the target's role and its policy."
)
MSG_INVALID_PARAMETERS = (
    "AWS refused the request's parameters. Read the AWS message, correct the request, and submit it again."
)
MSG_RESOURCE_NOT_FOUND = (
    "AWS could not find something the import needs, usually the source AMI: check that the AMI exists "
    "in the target's account and region."
)
MSG_NOT_SUPPORTED = (
    "AWS does not support this import for the account: BYOL may not be enabled in this region, or the "
    "ingestion process is not allowed for it (BYOP needs WorkSpaces Core allow-listing)."
)
MSG_ALREADY_EXISTS = "An image with this name already exists in WorkSpaces: choose another image name."
MSG_IMAGE_IN_USE = (
    "AWS will not delete the image while bundles are made from it or it is shared with other accounts: "
    "delete those bundles and unshare the image in the WorkSpaces console, then try again."
)
MSG_INVALID_STATE = "AWS cannot do this while the image is in its current state. Wait a few minutes and try again."
MSG_UNAVAILABLE = "AWS says what this needs is not ready yet. The portal tries again shortly."
MSG_LIMIT_EXCEEDED = (
    "The account has reached a WorkSpaces limit (images, or imports running at once). "
    "The portal waits and tries again later."
)
MSG_THROTTLED = "AWS asked the portal to slow down. The portal tries again shortly."
MSG_RATE_BUSY = (
    "The portal is keeping to AWS's rate of WorkSpaces calls for this account, and other work is ahead. "
    "It tries again shortly."
)
MSG_NETWORK = "The portal could not reach AWS ({detail}). It tries again shortly."
MSG_SERVER_ERROR = "AWS had an internal error. The portal tries again shortly."
MSG_NO_CREDENTIALS = (
    "The portal found no AWS credentials for this target: an admin must configure the default credential "
    "chain (environment, instance or task role) or give the target a role to assume."
)
MSG_BAD_CREDENTIALS = (
    "AWS did not accept the portal's credentials for this target (expired, unknown or wrongly signed): "
    "an admin must renew or fix them."
)
MSG_UNKNOWN = "AWS answered with an error the portal does not know ({code}). The AWS message is kept in the history."
MSG_GARBLED = (
    "The target's endpoint answered with something that is not an AWS response. If the target has an "
    "endpoint URL, an admin must check it; otherwise the portal tries again shortly."
)
MSG_ENDPOINT_REFUSED = "The target's endpoint URL is not allowed: {problem} An admin must fix the target."

CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
        "SignatureDoesNotMatch",
    }
)
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)


class AwsError(Exception):
    """A failed AWS call, explained. `retryable`: trying again later may work."""

    retryable = False

    def __init__(self, message: str, *, code: str = "", aws_message: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.aws_message = aws_message
        self.request_id = request_id

    def as_record(self) -> dict[str, str]:
        """What the audit history keeps of this error."""
        return {
            "kind": type(self).__name__,
            "message": self.message,
            "code": self.code,
            "aws_message": self.aws_message,
            "aws_request_id": self.request_id,
        }


class Refused(AwsError):
    """AWS said no to this request; trying again unchanged will not help."""


class AccessDenied(Refused):
    pass


class InvalidParameters(Refused):
    pass


class ResourceNotFound(Refused):
    pass


class NotSupported(Refused):
    pass


class AlreadyExists(Refused):
    pass


class ImageInUse(Refused):
    pass


class InvalidState(Refused):
    pass


class Unavailable(AwsError):
    """The resource is not ready for this yet (an image still PENDING, say): later may work."""

    retryable = True


class LimitExceeded(AwsError):
    retryable = True


class Throttled(AwsError):
    retryable = True


class ServerError(AwsError):
    retryable = True


class RateBusy(AwsError):
    """The portal's own limiter had no turn free in time: nothing was sent."""

    retryable = True


class NetworkError(AwsError):
    """No answer. `maybe_sent`: the request may have reached AWS, so its outcome is unknown."""

    retryable = True

    def __init__(self, message: str, *, maybe_sent: bool, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.maybe_sent = maybe_sent


class UnknownAwsError(AwsError):
    pass


class Garbled(AwsError):
    """An answer that is not an AWS response (a proxy's error page, a wrong endpoint)."""

    retryable = True


class EndpointRefused(Refused):
    """The portal will not send a request to this target's endpoint."""


_BY_CODE: dict[str, tuple[type[AwsError], str]] = {
    "AccessDeniedException": (AccessDenied, MSG_ACCESS_DENIED),
    "AccessDenied": (AccessDenied, MSG_ACCESS_DENIED),
    "UnauthorizedOperation": (AccessDenied, MSG_ACCESS_DENIED),
    "InvalidParameterValuesException": (InvalidParameters, MSG_INVALID_PARAMETERS),
    "ValidationException": (InvalidParameters, MSG_INVALID_PARAMETERS),
    "ResourceNotFoundException": (ResourceNotFound, MSG_RESOURCE_NOT_FOUND),
    "OperationNotSupportedException": (NotSupported, MSG_NOT_SUPPORTED),
    "ResourceAlreadyExistsException": (AlreadyExists, MSG_ALREADY_EXISTS),
    "ResourceAssociatedException": (ImageInUse, MSG_IMAGE_IN_USE),
    "InvalidResourceStateException": (InvalidState, MSG_INVALID_STATE),
    "ResourceLimitExceededException": (LimitExceeded, MSG_LIMIT_EXCEEDED),
    "ResourceUnavailableException": (Unavailable, MSG_UNAVAILABLE),
}


def translate(exc: Exception) -> AwsError:
    """Turn a botocore exception into the portal's error for it."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        details = {
            "code": str(error.get("Code", "")),
            "aws_message": str(error.get("Message", "")),
            "request_id": str(meta.get("RequestId", "")),
        }
        code = details["code"]
        if code in THROTTLING_CODES:
            return Throttled(MSG_THROTTLED, **details)
        if code in CREDENTIAL_CODES:
            return AccessDenied(MSG_BAD_CREDENTIALS, **details)
        if code in _BY_CODE:
            error_class, message = _BY_CODE[code]
            return error_class(message, **details)
        if int(meta.get("HTTPStatusCode", 0)) >= 500:
            return ServerError(MSG_SERVER_ERROR, **details)
        return UnknownAwsError(MSG_UNKNOWN.format(code=code or "no code"), **details)
    if isinstance(exc, ResponseParserError):
        return Garbled(MSG_GARBLED, aws_message=str(exc)[:500])
    if isinstance(exc, NoCredentialsError):
        return AccessDenied(MSG_NO_CREDENTIALS, code="NoCredentials", aws_message=str(exc))
    if isinstance(exc, ParamValidationError):
        return InvalidParameters(MSG_INVALID_PARAMETERS, code="ParamValidation", aws_message=str(exc))
    # Order matters: a read timeout is also a botocore ConnectionError, but the request went out.
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return NetworkError(MSG_NETWORK.format(detail="no answer in time"), maybe_sent=True, aws_message=str(exc))
    if isinstance(exc, BotocoreConnectionError):
        # Endpoint, proxy or connect-timeout errors: no connection, so nothing was sent.
        return NetworkError(MSG_NETWORK.format(detail="no connection"), maybe_sent=False, aws_message=str(exc))
    if isinstance(exc, HTTPClientError):
        return NetworkError(MSG_NETWORK.format(detail="the connection failed"), maybe_sent=True, aws_message=str(exc))
    return UnknownAwsError(MSG_UNKNOWN.format(code=type(exc).__name__), aws_message=str(exc))


@contextmanager
def _explained() -> Iterator[None]:
    try:
        yield
    # ResponseParserError is botocore's, but no BotoCoreError: an answer that is not AWS's.
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise translate(exc) from exc


# --- clients ---------------------------------------------------------------------------------

_rate_limiter: RateLimiter | None = None
# Says what is wrong with an endpoint URL, or "" (imports.endpoints, set when Django starts).
_endpoint_guard: Callable[[str], str] | None = None
# botocore sessions are not safe to create clients from in several threads at once.
_creating = threading.Lock()


def use_endpoint_guard(guard: Callable[[str], str] | None) -> None:
    """No client is made for a target whose endpoint URL `guard` finds a problem with."""
    global _endpoint_guard
    _endpoint_guard = guard


def use_rate_limiter(limiter: RateLimiter | None) -> None:
    """Every WorkSpaces call (each retry included) first asks `limiter` for room."""
    global _rate_limiter
    _rate_limiter = limiter


# How long a WorkSpaces call may wait for a free turn of the limiter before it gives up and
# its caller tries again later (kept well inside a task's time limits).
RATE_WAIT_SECONDS = 20.0
# Describe calls answer in well under a second; the import call may take longer. Short
# timeouts keep every step of a worker short, so a warm shutdown finishes quickly.
READ_TIMEOUT_SECONDS = 10
IMPORT_READ_TIMEOUT_SECONDS = 20


def _config(*, attempts: int, read_timeout: int = READ_TIMEOUT_SECONDS) -> Config:
    # Explicit retry mode and budget, and timeouts, rather than botocore's defaults (legacy
    # retries, 60 s read timeout). https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=3,
        read_timeout=read_timeout,
        user_agent_appid="byol-portal",
    )


@dataclass(frozen=True)
class _Spec:
    """What of a target decides its clients; hashable, so clients can be cached by it."""

    account_id: str
    region: str
    credentials: str
    role_arn: str
    external_id: str
    endpoint_url: str

    @classmethod
    def of(cls, target: Target) -> "_Spec":
        return cls(**{f.name: getattr(target, f.name) for f in fields(cls)})


@functools.lru_cache(maxsize=64)
def _session(spec: _Spec, identity: str) -> boto3.Session:
    """A session per target, and for an assumed role per identity too: the role session is named
    after the request and carries it as SourceIdentity, so CloudTrail joins the audit history.
    Bounded, as every request has its own identity."""
    if spec.credentials == "assume_role":
        return _assumed_role_session(spec, identity)
    return boto3.Session()


def _assumed_role_session(target: Target, identity: str) -> boto3.Session:
    sts = boto3.Session().client(
        "sts", region_name=target.region, endpoint_url=target.endpoint_url or None, config=_config(attempts=3)
    )

    def fetch() -> dict[str, str]:
        # https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
        params: dict[str, Any] = {
            "RoleArn": target.role_arn,
            "RoleSessionName": identity,
            "SourceIdentity": identity,
            "DurationSeconds": ASSUMED_ROLE_SECONDS,
        }
        if target.external_id:
            params["ExternalId"] = target.external_id
        with _explained():
            credentials = sts.assume_role(**params)["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    # Refreshed by botocore ahead of expiry (15 minutes advisory, 10 mandatory). botocore has no
    # public setter for refreshable credentials; this is the attribute its own providers fill.
    core = botocore.session.get_session()
    core._credentials = DeferredRefreshableCredentials(refresh_using=fetch, method="sts-assume-role")
    return boto3.Session(botocore_session=core)


def client(
    target: Target, service: str, *, identity: str = PORTAL_IDENTITY, attempts: int = 4, paced: bool = True
) -> Any:
    """A cached boto3 client for `service` on `target` (its endpoint URL applies to every service).
    `paced`: each WorkSpaces call it sends (each retry included) first waits for a free turn of
    the limiter; an unpaced client's caller reserves its turns itself (`reserve_turn`)."""
    spec = _Spec.of(target)
    # Checked at every use, not only when the target was saved: a row written before the rules, or
    # by hand, must not send signed requests anywhere either.
    problem = _endpoint_guard(spec.endpoint_url) if _endpoint_guard and spec.endpoint_url else ""
    if problem:
        raise EndpointRefused(MSG_ENDPOINT_REFUSED.format(problem=problem), code="EndpointRefused")
    # Default-chain targets share one session whatever the identity (it names nothing there).
    return _client(spec, identity if spec.credentials == "assume_role" else "", service, attempts, paced)


@functools.lru_cache(maxsize=256)
def _client(spec: _Spec, identity: str, service: str, attempts: int, paced: bool = True) -> Any:
    read_timeout = READ_TIMEOUT_SECONDS if paced else IMPORT_READ_TIMEOUT_SECONDS
    with _creating:
        made = _session(spec, identity).client(
            service,
            region_name=spec.region,
            endpoint_url=spec.endpoint_url or None,
            config=_config(attempts=attempts, read_timeout=read_timeout),
        )
    if service == "workspaces" and paced:
        account = spec.account_id
        made.meta.events.register("before-send.workspaces", lambda **_: _take_free_turn(account))
    return made


def _take_free_turn(account_id: str) -> None:
    if _rate_limiter is None:
        return
    still_to_wait = _rate_limiter.acquire(account_id, max_wait=RATE_WAIT_SECONDS)
    if still_to_wait:
        raise RateBusy(MSG_RATE_BUSY, aws_message=f"the next free turn is {still_to_wait:.0f} s away")


def reserve_turn(target: Target) -> float:
    """Reserve the account's next WorkSpaces call for an import: the seconds until its turn.
    The call itself (`import_image`) then takes no further turn."""
    return _rate_limiter.reserve(target.account_id) if _rate_limiter is not None else 0.0


def forget_clients() -> None:
    """Drop cached sessions, clients and BYOL results (between tests)."""
    _client.cache_clear()
    _session.cache_clear()
    with _byol_lock:
        _byol_passed.clear()


# --- WorkSpaces images -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    image_id: str
    request_id: str


@dataclass(frozen=True)
class ImageStatus:
    image_id: str
    name: str
    state: str
    error_code: str = ""
    error_message: str = ""
    error_details: list[dict[str, str]] = field(default_factory=list)
    created: str = ""
    # https://docs.aws.amazon.com/workspaces/latest/api/API_UpdateResult.html: newer drivers or
    # other components are available for the image.
    update_available: bool = False
    update_description: str = ""

    @classmethod
    def from_aws(cls, image: dict[str, Any]) -> "ImageStatus":
        created = image.get("Created")
        updates = image.get("Updates") or {}
        return cls(
            image_id=image["ImageId"],
            name=image.get("Name", ""),
            state=image.get("State", ""),
            error_code=image.get("ErrorCode", ""),
            error_message=image.get("ErrorMessage", ""),
            error_details=[
                {"ErrorCode": d.get("ErrorCode", ""), "ErrorMessage": d.get("ErrorMessage", "")}
                for d in image.get("ErrorDetails", [])
            ],
            created=created.isoformat() if isinstance(created, datetime) else str(created or ""),
            update_available=bool(updates.get("UpdateAvailable", False)),
            update_description=updates.get("Description", ""),
        )

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def with_portal_tags(parameters: dict[str, Any], *, reference: str, requester: str, approver: str) -> dict[str, Any]:
    """The import parameters plus the portal's own tags, which tie the image to its request."""
    own = dict(zip(rules.PORTAL_TAG_KEYS, (reference, requester, approver), strict=True))
    tags = [t for t in parameters.get("Tags", []) if t["Key"] not in own]
    return {**parameters, "Tags": [*tags, *({"Key": k, "Value": v} for k, v in own.items())]}


def import_image(target: Target, *, parameters: dict[str, Any], identity: str) -> ImportResult:
    """One import call, in the turn the caller reserved (`reserve_turn`), never retried by
    botocore: after a timeout the outcome is unknown, and the caller must look for the image
    before it tries again. ImportCustomWorkspaceImage (the Image Builder path) when the
    parameters name an ImageSource, ImportWorkspaceImage otherwise."""
    workspaces = client(target, "workspaces", identity=identity, attempts=1, paced=False)
    with _explained():
        if "ImageSource" in parameters:
            response = workspaces.import_custom_workspace_image(**parameters)
        else:
            response = workspaces.import_workspace_image(**parameters)
    request_id = response.get("ResponseMetadata", {}).get("RequestId", "")
    return ImportResult(image_id=response["ImageId"], request_id=request_id)


@dataclass(frozen=True)
class ImportProgress:
    """DescribeCustomWorkspaceImageImport's answer: the stage, its message, the percentage."""

    stage: str
    message: str
    progress: int | None
    error_details: list[dict[str, str]] = field(default_factory=list)


# A progress call waits at most this long for a free turn: the rate's own pace (2 calls/s), but
# not behind imports, whose reserved turns put the next free one further off.
PROGRESS_WAIT_SECONDS = 1.0


def import_progress(target: Target, image_id: str) -> ImportProgress:
    """The progress of an Image Builder import; one image per call (AWS has no batch form). Only
    in a free turn of the account's rate, at most PROGRESS_WAIT_SECONDS away (RateBusy
    otherwise): progress is worth a call only when imports and status checks leave one."""
    if _rate_limiter is not None:
        still_to_wait = _rate_limiter.acquire(target.account_id, max_wait=PROGRESS_WAIT_SECONDS)
        if still_to_wait:
            raise RateBusy(MSG_RATE_BUSY, aws_message=f"the next free turn is {still_to_wait:.0f} s away")
    workspaces = client(target, "workspaces", paced=False)
    with _explained():
        answer = workspaces.describe_custom_workspace_image_import(ImageId=image_id)
    return ImportProgress(
        stage=answer.get("State", ""),
        message=answer.get("StateMessage", ""),
        progress=answer.get("ProgressPercentage"),
        error_details=[
            {"ErrorCode": d.get("ErrorCode", ""), "ErrorMessage": d.get("ErrorMessage", "")}
            for d in answer.get("ErrorDetails", [])
        ],
    )


def describe_images(target: Target, image_ids: list[str]) -> dict[str, ImageStatus]:
    """The status of each image AWS still knows, asking at most 25 ids per call."""
    workspaces = client(target, "workspaces")
    found: dict[str, ImageStatus] = {}
    for start in range(0, len(image_ids), DESCRIBE_BATCH):
        batch = image_ids[start : start + DESCRIBE_BATCH]
        with _explained():
            response = workspaces.describe_workspace_images(ImageIds=batch)
        for image in response.get("Images", []):
            status = ImageStatus.from_aws(image)
            found[status.image_id] = status
    return found


def owned_images(target: Target, *, identity: str = PORTAL_IDENTITY) -> Iterator[ImageStatus]:
    """Every image the account owns in the target's region, page by page."""
    paginator = client(target, "workspaces", identity=identity).get_paginator("describe_workspace_images")
    with _explained():
        for page in paginator.paginate(ImageType="OWNED", PaginationConfig={"PageSize": DESCRIBE_BATCH}):
            for image in page.get("Images", []):
                yield ImageStatus.from_aws(image)


def find_owned_image(target: Target, *, name: str, identity: str = PORTAL_IDENTITY) -> ImageStatus | None:
    return next((image for image in owned_images(target, identity=identity) if image.name == name), None)


def delete_image(target: Target, image_id: str, *, identity: str = PORTAL_IDENTITY) -> None:
    """DeleteWorkspaceImage. AWS refuses while the image is shared or has bundles; an image that
    is already gone counts as deleted."""
    workspaces = client(target, "workspaces", identity=identity)
    try:
        with _explained():
            workspaces.delete_workspace_image(ImageId=image_id)
    except ResourceNotFound:
        return


def image_tags(target: Target, image_id: str) -> dict[str, str]:
    workspaces = client(target, "workspaces")
    with _explained():
        response = workspaces.describe_tags(ResourceId=image_id)
    return {tag["Key"]: tag.get("Value", "") for tag in response.get("TagList", [])}


# --- the rollout: bundles, copies, sharing -------------------------------------------------------


def in_region(target: Target, region: str) -> Target:
    """The target's account in another of its regions: the same credentials and endpoint."""
    return replace(_Spec.of(target), region=region)


@dataclass(frozen=True)
class Bundle:
    bundle_id: str
    name: str
    state: str
    image_id: str = ""
    compute_type: str = ""
    error: str = ""

    @classmethod
    def from_aws(cls, bundle: dict[str, Any]) -> "Bundle":
        return cls(
            bundle_id=bundle["BundleId"],
            name=bundle.get("Name", ""),
            # A bundle with no State is one AWS made before states existed: usable.
            state=bundle.get("State", "AVAILABLE"),
            image_id=bundle.get("ImageId", ""),
            compute_type=(bundle.get("ComputeType") or {}).get("Name", ""),
        )


def create_bundle(target: Target, *, parameters: dict[str, Any], identity: str) -> Bundle:
    """CreateWorkspaceBundle, sent once (attempts=1): after a lost answer the caller looks for the
    bundle by name before it sends again."""
    workspaces = client(target, "workspaces", identity=identity, attempts=1)
    with _explained():
        return Bundle.from_aws(workspaces.create_workspace_bundle(**parameters)["WorkspaceBundle"])


def owned_bundles(target: Target) -> Iterator[Bundle]:
    """The account's own bundles in the target's region (no Owner: "the bundles that belong to
    your account"), page by page."""
    paginator = client(target, "workspaces").get_paginator("describe_workspace_bundles")
    with _explained():
        for page in paginator.paginate():
            for bundle in page.get("Bundles", []):
                yield Bundle.from_aws(bundle)


def find_bundle(target: Target, *, name: str) -> Bundle | None:
    return next((bundle for bundle in owned_bundles(target) if bundle.name == name), None)


def describe_bundle(target: Target, bundle_id: str) -> Bundle | None:
    workspaces = client(target, "workspaces")
    with _explained():
        bundles = workspaces.describe_workspace_bundles(BundleIds=[bundle_id]).get("Bundles", [])
    return Bundle.from_aws(bundles[0]) if bundles else None


def copy_image(destination: Target, *, parameters: dict[str, Any], identity: str) -> str:
    """CopyWorkspaceImage, called in the destination region (SourceRegion names the source);
    sent once, as an import is. The copy's image id."""
    workspaces = client(destination, "workspaces", identity=identity, attempts=1)
    with _explained():
        return workspaces.copy_workspace_image(**parameters)["ImageId"]


def share_image(target: Target, *, image_id: str, account_id: str, identity: str, allow: bool = True) -> None:
    """UpdateWorkspaceImagePermission for one account (AllowCopyImage: the account may copy it,
    which is how it makes bundles of it). Granting twice grants once, so it may be retried."""
    workspaces = client(target, "workspaces", identity=identity)
    with _explained():
        workspaces.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=allow, SharedAccountId=account_id)


def image_shared_with(target: Target, image_id: str) -> set[str]:
    """The accounts the image is shared with, page by page (no paginator in botocore)."""
    workspaces = client(target, "workspaces")
    accounts: set[str] = set()
    token: dict[str, str] = {}
    while True:
        with _explained():
            page = workspaces.describe_workspace_image_permissions(ImageId=image_id, MaxResults=DESCRIBE_BATCH, **token)
        accounts.update(grant["SharedAccountId"] for grant in page.get("ImagePermissions", []))
        if not page.get("NextToken"):
            return accounts
        token = {"NextToken": page["NextToken"]}


# --- EC2 images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ami:
    image_id: str
    name: str
    created: str


def list_windows_amis(target: Target) -> list[Ami]:
    """The account's own available Windows AMIs in the target's region, newest first."""
    ec2 = client(target, "ec2")
    with _explained():
        response = ec2.describe_images(
            Owners=["self"],
            Filters=[{"Name": "platform", "Values": ["windows"]}, {"Name": "state", "Values": ["available"]}],
        )
    amis = [
        Ami(image_id=i["ImageId"], name=i.get("Name", ""), created=i.get("CreationDate", ""))
        for i in response.get("Images", [])
    ]
    return sorted(amis, key=lambda ami: ami.created, reverse=True)


# --- pre-flight checks -----------------------------------------------------------------------

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    outcome: str
    message: str
    aws: dict[str, str] = field(default_factory=dict)
    # The check could not be made for a passing reason (throttling, a network error): running
    # it again later may well pass.
    retryable: bool = False


@dataclass(frozen=True)
class ImageBuilderSource:
    """Where an Image Builder import starts from: `kind` is rules.SOURCE_AMI, SOURCE_IMPORT_TASK or
    SOURCE_IMAGE_VERSION and `value` the AMI id, the VM import task id or the image version ARN;
    and the infrastructure configuration Image Builder builds with."""

    kind: str
    value: str
    infrastructure_configuration_arn: str


def run_preflight(
    target: Target,
    *,
    ami_id: str,
    image_name: str,
    identity: str,
    windows_version: str = "",
    replacing_image_id: str = "",
    image_builder: ImageBuilderSource | None = None,
) -> list[Check]:
    """PRODUCT.md section 6, in full. Each check stands alone: one failing does not hide the others.
    `windows_version` ("10" or "11", as the requester declared it) is what the AMI's boot mode must
    fit; without it the boot mode is not checked. `replacing_image_id`: the failed image of an
    earlier attempt, which the portal deletes before it imports, so its name is no clash.
    `image_builder`: the Image Builder path's source and infrastructure configuration, checked
    instead of `ami_id`."""
    checks = [_check_credentials(target, identity), _check_byol(target, identity)]
    if image_builder is None:
        checks += _checks_on_ami(target, ami_id, identity, windows_version)
    else:
        checks += _checks_on_source(target, image_builder, identity, windows_version)
        checks.append(_check_infrastructure(target, image_builder.infrastructure_configuration_arn, identity))
    checks += _checks_on_images(target, image_name, identity, replacing_image_id)
    return checks


def run_plan_checks(target: Target, *, plan: dict[str, Any], image_name: str, identity: str) -> list[Check]:
    """The delivery plan's checks before approval (imports.plan has the rules of its fields):
    BYOL enabled and the image name free in each region a copy goes to, the bundle's name free
    in each region it is made in. About an account the image is shared with the portal can
    check nothing (it has no credentials there): the request warns of it (plan.plan_warnings)."""
    checks: list[Check] = []
    bundle = plan.get("bundle")
    copy_regions = [copy["region"] for copy in plan.get("copies", [])]
    for region in copy_regions:
        elsewhere = in_region(target, region)
        checks.append(_in(region, _check_byol(elsewhere, identity)))
        checks += [_in(region, check) for check in _checks_on_images(elsewhere, image_name, identity)]
    if bundle:
        bundled = [target.region, *(c["region"] for c in plan.get("copies", []) if c.get("bundle"))]
        checks += [_check_bundle_name(in_region(target, region), bundle["name"]) for region in bundled]
    return checks


def _in(region: str, check: Check) -> Check:
    """A check of another region, named for it."""
    return replace(check, key=f"{check.key}:{region}", title=f"{check.title} in {region}")


def _check_bundle_name(target: Target, name: str) -> Check:
    title = f"No bundle is called {name} in {target.region}"
    try:
        clash = find_bundle(target, name=name)
    except AwsError as error:
        return _failed_to_check(f"bundle_name:{target.region}", title, error)
    if clash is not None:
        message = (
            f"WorkSpaces already has a bundle called {name} in {target.region} ({clash.bundle_id}): "
            "choose another bundle name."
        )
        return Check(f"bundle_name:{target.region}", title, FAIL, message)
    return Check(f"bundle_name:{target.region}", title, PASS, f"No bundle is called {name} in {target.region} yet.")


class ChecksInterrupted(AwsError):
    """A check just before the import could not be made for a passing reason."""

    retryable = True


def run_import_checks(
    target: Target,
    *,
    ami_id: str,
    identity: str,
    byol_cache_seconds: float,
    windows_version: str = "",
    image_builder: ImageBuilderSource | None = None,
) -> list[Check]:
    """What can have changed since approval, re-checked without spending the account's WorkSpaces
    call budget: credentials (STS) and the source (EC2, Image Builder) are asked again, BYOL comes
    from a cache, and a name clash is what the import call itself reports. Raises
    ChecksInterrupted (retryable) instead of returning a check that could not be made."""
    if image_builder is None:
        source_checks = _checks_on_ami(target, ami_id, identity, windows_version, attempts=1)
    else:
        source_checks = [
            *_checks_on_source(target, image_builder, identity, windows_version, attempts=1),
            _check_infrastructure(target, image_builder.infrastructure_configuration_arn, identity, attempts=1),
        ]
    checks = [
        # One attempt each: the engine retries, with a budget, and its steps stay short.
        _check_credentials(target, identity, attempts=1),
        _byol_cached(target, identity, byol_cache_seconds),
        *source_checks,
    ]
    interrupted = next((c for c in checks if c.retryable), None)
    if interrupted is not None:
        raise ChecksInterrupted(interrupted.aws.get("message", interrupted.message), **_error_fields(interrupted.aws))
    return checks


def _error_fields(record: dict[str, str]) -> dict[str, str]:
    return {
        "code": record.get("code", ""),
        "aws_message": record.get("aws_message", ""),
        "request_id": record.get("aws_request_id", ""),
    }


# Passing BYOL checks per target spec, with when they expire: BYOL is switched on once per
# account and region and hardly ever off again.
_byol_passed: dict["_Spec", float] = {}
_byol_lock = threading.Lock()


def _byol_cached(target: Target, identity: str, seconds: float) -> Check:
    spec = _Spec.of(target)
    with _byol_lock:
        fresh = _byol_passed.get(spec, 0.0) > time.monotonic()
    if fresh:
        return Check("byol", "BYOL is enabled", PASS, MSG_BYOL_ENABLED.format(region=target.region))
    check = _check_byol(target, identity, attempts=1)
    if check.outcome == PASS:
        with _byol_lock:
            _byol_passed[spec] = time.monotonic() + seconds
    return check


def _failed_to_check(key: str, title: str, error: AwsError) -> Check:
    return Check(
        key, title, FAIL, f"The portal could not check this: {error.message}", error.as_record(), error.retryable
    )


def _check_credentials(target: Target, identity: str, *, attempts: int = 4) -> Check:
    title = "Credentials belong to the target account"
    try:
        with _explained():
            account = client(target, "sts", identity=identity, attempts=attempts).get_caller_identity()["Account"]
    except AwsError as error:
        return _failed_to_check("credentials", title, error)
    if account != target.account_id:
        return Check(
            "credentials",
            title,
            FAIL,
            f"The portal's credentials belong to account {account}, not to the target's account "
            f"{target.account_id}: an admin must fix the target's role or account id.",
        )
    return Check("credentials", title, PASS, f"The portal's credentials work in account {account}.")


# An account enables BYOL itself, in the WorkSpaces console's account settings or with ModifyAccount:
# https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html
# https://docs.aws.amazon.com/workspaces/latest/api/API_ModifyAccount.html
MSG_BYOL_DISABLED = (
    "BYOL is not enabled for WorkSpaces in {region}. An administrator of the AWS account can enable it in "
    "the WorkSpaces console (Account settings, Bring your own license) or with the ModifyAccount API; "
    "then run the checks again."
)
MSG_BYOL_ENABLED = "BYOL is enabled for WorkSpaces in {region}."
# DescribeAccount's Message, "the text message to describe the status of BYOL":
# https://docs.aws.amazon.com/workspaces/latest/api/API_DescribeAccount.html
MSG_AWS_SAYS = " AWS says: {message}"


def _check_byol(target: Target, identity: str, *, attempts: int = 4) -> Check:
    title = "BYOL is enabled"
    try:
        with _explained():
            account = client(target, "workspaces", identity=identity, attempts=attempts).describe_account()
    except AwsError as error:
        return _failed_to_check("byol", title, error)
    said = MSG_AWS_SAYS.format(message=account["Message"]) if account.get("Message") else ""
    if account.get("DedicatedTenancySupport") != "ENABLED":
        return Check("byol", title, FAIL, MSG_BYOL_DISABLED.format(region=target.region) + said)
    return Check("byol", title, PASS, MSG_BYOL_ENABLED.format(region=target.region) + said)


def _checks_on_ami(
    target: Target, ami_id: str, identity: str, windows_version: str = "", *, attempts: int = 4
) -> list[Check]:
    title = "Source AMI is a Windows image the account owns"
    try:
        with _explained():
            ec2 = client(target, "ec2", identity=identity, attempts=attempts)
            images = ec2.describe_images(ImageIds=[ami_id]).get("Images", [])
    except AwsError as error:
        # EC2 answers InvalidAMIID.NotFound or InvalidAMIID.Malformed for an id it does not know.
        if not error.code.startswith("InvalidAMIID"):
            return [_failed_to_check("ami", title, error)]
        images = []
    if not images:
        return [Check("ami", title, FAIL, f"{ami_id} does not exist in {target.region}: check the AMI id and region.")]
    image = images[0]
    problem = _ami_problem(image, target)
    if problem:
        return [Check("ami", title, FAIL, problem), *ami_property_checks(image, windows_version)]
    passed = f"{ami_id} ({image.get('Name', 'no name')}) is an available Windows image"
    fits = windows_version in BOOT_MODES_FOR_WINDOWS and boot_mode(image) in BOOT_MODES_FOR_WINDOWS[windows_version]
    if fits:
        passed += f" that boots with {_boot_mode_words(image)}, as Windows {windows_version} needs"
    return [Check("ami", title, PASS, passed + "."), *ami_property_checks(image, windows_version)]


# --- the Image Builder path's source and infrastructure ------------------------------------------
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImportImageTasks.html
# https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_GetImage.html
# https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_GetInfrastructureConfiguration.html


def _checks_on_source(
    target: Target, source: ImageBuilderSource, identity: str, windows_version: str, *, attempts: int = 4
) -> list[Check]:
    """The source of an Image Builder import, and the AMI behind it, which AWS checks as it does
    for the classic import."""
    if source.kind == rules.SOURCE_IMPORT_TASK:
        check, ami_id = _check_import_task(target, source.value, identity, attempts=attempts)
    elif source.kind == rules.SOURCE_IMAGE_VERSION:
        check, ami_id = _check_image_version(target, source.value, identity, attempts=attempts)
    else:
        return _checks_on_ami(target, source.value, identity, windows_version, attempts=attempts)
    if not ami_id:
        return [check]
    return [check, *_checks_on_ami(target, ami_id, identity, windows_version, attempts=attempts)]


def _check_import_task(target: Target, task_id: str, identity: str, *, attempts: int) -> tuple[Check, str]:
    title = "The VM import task has finished"
    try:
        with _explained():
            ec2 = client(target, "ec2", identity=identity, attempts=attempts)
            tasks = ec2.describe_import_image_tasks(ImportTaskIds=[task_id]).get("ImportImageTasks", [])
    except AwsError as error:
        if not error.code.startswith("InvalidConversionTaskId"):
            return _failed_to_check("source", title, error), ""
        tasks = []
    if not tasks:
        return Check("source", title, FAIL, f"{task_id} is not a VM import task in {target.region}."), ""
    task = tasks[0]
    status, ami_id = task.get("Status", ""), task.get("ImageId", "")
    if status != "completed" or not ami_id:
        detail = f" ({task['StatusMessage']})" if task.get("StatusMessage") else ""
        message = f"{task_id} is {status or 'in an unknown state'}{detail}, not completed: wait for it to finish."
        return Check("source", title, FAIL, message), ""
    return Check("source", title, PASS, f"{task_id} completed and made {ami_id}."), ami_id


def _check_image_version(target: Target, arn: str, identity: str, *, attempts: int) -> tuple[Check, str]:
    title = "The Image Builder image version is available"
    try:
        with _explained():
            builder = client(target, "imagebuilder", identity=identity, attempts=attempts)
            image = builder.get_image(imageBuildVersionArn=arn).get("image", {})
    except AwsError as error:
        if isinstance(error, ResourceNotFound):
            return Check("source", title, FAIL, f"{arn} does not exist in {target.region}."), ""
        return _failed_to_check("source", title, error), ""
    status = (image.get("state") or {}).get("status", "")
    if status != "AVAILABLE":
        return Check("source", title, FAIL, f"The image version is {status or 'not ready'}, not AVAILABLE."), ""
    amis = [a for a in (image.get("outputResources") or {}).get("amis", []) if a.get("region") == target.region]
    if not amis:
        message = f"The image version made no AMI in {target.region}: distribute it to the target's region."
        return Check("source", title, FAIL, message), ""
    return Check("source", title, PASS, f"The image version is available as {amis[0]['image']}."), amis[0]["image"]


def _check_infrastructure(target: Target, arn: str, identity: str, *, attempts: int = 4) -> Check:
    title = "The Image Builder infrastructure configuration exists"
    try:
        with _explained():
            builder = client(target, "imagebuilder", identity=identity, attempts=attempts)
            builder.get_infrastructure_configuration(infrastructureConfigurationArn=arn)
    except AwsError as error:
        if isinstance(error, ResourceNotFound):
            return Check("infrastructure", title, FAIL, f"{arn} does not exist in {target.region}.")
        return _failed_to_check("infrastructure", title, error)
    return Check("infrastructure", title, PASS, f"{arn.rpartition('/')[2]} exists in {target.region}.")


def _ami_problem(image: dict[str, Any], target: Target) -> str:
    ami_id = image["ImageId"]
    if image.get("OwnerId") != target.account_id:
        return (
            f"{ami_id} belongs to account {image.get('OwnerId')}, not {target.account_id}: "
            "AWS imports only AMIs the account owns, so copy it into the account first."
        )
    if image.get("State") != "available":
        return f"{ami_id} is {image.get('State')}, not available: wait until it is, then run the checks again."
    if image.get("Platform") != "windows":
        return f"{ami_id} is not a Windows image: choose a licensed Windows 10 or 11 AMI."
    return ""


# The boot modes each Windows version can be imported with. Windows 10: AWS's BYOL checker fails
# Windows 10 booted with UEFI (UEFINotSupported, in https://tools.amazonworkspaces.com/BYOLChecker.zip).
# Windows 11: Microsoft requires UEFI firmware,
# https://learn.microsoft.com/en-us/windows/whats-new/windows-11-requirements; an AMI that is
# uefi-preferred boots with UEFI wherever the instance type has it.
BOOT_MODES_FOR_WINDOWS = {"10": frozenset({"legacy-bios"}), "11": frozenset({"uefi", "uefi-preferred"})}
BOOT_MODE_WORDS = {"legacy-bios": "legacy BIOS", "uefi": "UEFI", "uefi-preferred": "UEFI (uefi-preferred)"}
MSG_BOOT_MODE_WINDOWS_10 = (
    "{ami_id} boots with {boot_mode}, but WorkSpaces imports Windows 10 only from an image that boots with "
    "legacy BIOS. Create the AMI from a Windows 10 VM that boots with legacy BIOS (import it with boot mode "
    "legacy-bios) and choose it; or, if the AMI holds Windows 11, choose Windows 11 in the request."
)
MSG_BOOT_MODE_WINDOWS_11 = (
    "{ami_id} boots with {boot_mode}, but Windows 11 needs UEFI. Create the AMI from a Windows 11 VM that "
    "boots with UEFI (import it with boot mode uefi) and choose it; or, if the AMI holds Windows 10, choose "
    "Windows 10 in the request."
)
MSG_NO_BOOT_MODE = "legacy BIOS (the AMI sets no boot mode, and EC2 then uses the Intel and AMD default)"
# https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html: "Importing a VM
# with an encrypted disk is not supported. If you've opted in to default encryption for Amazon EBS
# volumes, you must deselect that option before importing your VM."
MSG_ENCRYPTED = (
    "{ami_id} has encrypted volumes ({devices}), and WorkSpaces cannot import an encrypted image. Import the "
    "VM again with EBS encryption by default turned off for the region, then choose the new, unencrypted AMI."
)
MSG_ROOT_VOLUME_TOO_LARGE = (
    "The root volume of {ami_id} is {size} GB; AWS's BYOL checks fail a drive over {limit} GB, so the import "
    "would end in ERROR. Shrink the VM's disk to at most {limit} GB, create a new AMI and choose it."
)
MSG_ROOT_VOLUME_LARGE = (
    "The root volume of {ami_id} is {size} GB. AWS's BYOL checks allow up to {limit} GB, but AWS's older "
    "guidance says {warn_at} GB: if the import fails with DiskSizeExceeded, shrink the disk to {warn_at} GB."
)
MSG_SEVERAL_VOLUMES = (
    "{ami_id} has {count} volumes; a BYOL image must be a single volume, so the import is likely to fail. "
    "Create the AMI from the system volume alone."
)


def boot_mode(image: dict[str, Any]) -> str:
    """The boot mode EC2 starts the AMI with. Without a BootMode, an instance boots with the
    instance type's default, UEFI on Graviton and legacy BIOS on Intel and AMD:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-boot-mode.html"""
    if image.get("BootMode"):
        return str(image["BootMode"])
    return "uefi" if image.get("Architecture") == "arm64" else "legacy-bios"


def _boot_mode_words(image: dict[str, Any]) -> str:
    if not image.get("BootMode") and boot_mode(image) == "legacy-bios":
        return MSG_NO_BOOT_MODE
    return BOOT_MODE_WORDS.get(boot_mode(image), boot_mode(image))


def ami_property_checks(image: dict[str, Any], windows_version: str = "") -> list[Check]:
    """What AWS will refuse or may refuse about the AMI itself, one check per problem; none when
    it is fine. The boot mode is checked only against a known Windows version."""
    return [
        *_check_boot_mode(image, windows_version),
        *_check_encryption(image),
        *_checks_on_volumes(image),
    ]


def _check_boot_mode(image: dict[str, Any], windows_version: str) -> list[Check]:
    needed = BOOT_MODES_FOR_WINDOWS.get(windows_version)
    if needed is None or image.get("Platform") != "windows" or boot_mode(image) in needed:
        return []
    message = MSG_BOOT_MODE_WINDOWS_10 if windows_version == "10" else MSG_BOOT_MODE_WINDOWS_11
    words = _boot_mode_words(image)
    return [
        Check(
            "boot_mode",
            f"Boot mode fits Windows {windows_version}",
            FAIL,
            message.format(ami_id=image["ImageId"], boot_mode=words),
        )
    ]


def _ebs_mappings(image: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in image.get("BlockDeviceMappings", []) if "Ebs" in m]


def _check_encryption(image: dict[str, Any]) -> list[Check]:
    encrypted = [m.get("DeviceName", "?") for m in _ebs_mappings(image) if m["Ebs"].get("Encrypted")]
    if not encrypted:
        return []
    message = MSG_ENCRYPTED.format(ami_id=image["ImageId"], devices=", ".join(encrypted))
    return [Check("encryption", "Source AMI is not encrypted", FAIL, message)]


def _checks_on_volumes(image: dict[str, Any]) -> list[Check]:
    mappings = _ebs_mappings(image)
    root = next((m for m in mappings if m.get("DeviceName") == image.get("RootDeviceName")), None)
    size = (root or (mappings[0] if mappings else {"Ebs": {}}))["Ebs"].get("VolumeSize", 0)
    facts = {"ami_id": image["ImageId"], "size": size, "limit": MAX_ROOT_VOLUME_GB, "warn_at": ROOT_VOLUME_WARNING_GB}
    checks = []
    if size > MAX_ROOT_VOLUME_GB:
        checks.append(Check("root_volume", "Root volume size", FAIL, MSG_ROOT_VOLUME_TOO_LARGE.format(**facts)))
    elif size > ROOT_VOLUME_WARNING_GB:
        checks.append(Check("root_volume", "Root volume size", WARN, MSG_ROOT_VOLUME_LARGE.format(**facts)))
    if len(mappings) > 1:
        message = MSG_SEVERAL_VOLUMES.format(ami_id=image["ImageId"], count=len(mappings))
        checks.append(Check("volumes", "Source AMI's volumes", WARN, message))
    return checks


MSG_NAME_OF_REPLACED_IMAGE = (
    "Only the failed image of an earlier attempt ({image_id}) is called {image_name}; the portal deletes it "
    "before the import."
)


def _checks_on_images(target: Target, image_name: str, identity: str, replacing_image_id: str = "") -> list[Check]:
    title = "No WorkSpaces image has this name"
    try:
        owned = list(owned_images(target, identity=identity))
    except AwsError as error:
        return [_failed_to_check("name", title, error)]
    checks = []
    named = [image for image in owned if image.name == image_name]
    clash = next((image for image in named if image.image_id != replacing_image_id), None)
    if named and not clash:
        message = MSG_NAME_OF_REPLACED_IMAGE.format(image_id=replacing_image_id, image_name=image_name)
        checks.append(Check("name", title, PASS, message))
    elif clash:
        checks.append(
            Check(
                "name",
                title,
                FAIL,
                f"WorkSpaces already has an image called {image_name} ({clash.image_id}): choose another image name.",
            )
        )
    else:
        checks.append(Check("name", title, PASS, f"No WorkSpaces image is called {image_name} yet."))
    if len(owned) >= IMAGE_QUOTA_WARNING_AT:
        checks.append(
            Check(
                "quota",
                "Room under the image quota",
                WARN,
                f"The account has {len(owned)} WorkSpaces images in {target.region}; the default quota is "
                f"{IMAGE_QUOTA}. Delete unused images or ask AWS for a higher quota.",
            )
        )
    return checks
