"""The WorkSpaces operations moto 5.2.5 lacks or answers too loosely for the BYOL import flow.

moto has no ImportWorkspaceImage, DescribeAccount or DeleteWorkspaceImage, its
DescribeWorkspaceImages neither validates nor paginates, and its DescribeTags fails with HTTP 500
on an unknown id. The sandbox answers those five itself (``operations.py`` lists every operation
it answers; the Image Builder import is in ``custom_import.py``, bundles, copies and sharing in
``rollout.py``) and leaves every other
WorkSpaces operation to moto. Imported images
are stored in moto's own WorkSpaces backend (``workspace_images``), so moto's tag store,
CreateWorkspaceImage's name check, UpdateWorkspaceImagePermission and ``/moto-api/reset`` all
see them, with no second store to keep in step.

An import runs for ``import_delay`` seconds: its state is worked out from the clock whenever
it is read (PENDING until ``ready_at``, then AVAILABLE or ERROR), so no timer thread exists and
nothing is lost if a request thread dies. As on AWS, an image stays, whatever its state, and
counts against the image quota until DeleteWorkspaceImage removes it.
"""

import base64
import binascii
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

from moto.ec2 import ec2_backends
from moto.workspaces.models import WorkspaceImage, WorkSpacesBackend, workspaces_backends

from .seed import ERROR_DETAILS_TAG, UPDATE_AVAILABLE_TAG
from .validation import (
    MAX_RESULTS,
    delete_image_request_problems,
    describe_images_request_problems,
    import_request_problems,
)

# DescribeAccount when BYOL is on; a /16 from the ranges ListAvailableManagementCidrRanges offers.
MANAGEMENT_CIDR_RANGE = "10.0.0.0/16"
# The ErrorCode AWS sets on an image whose BYOL validation failed; the reasons are in ErrorDetails.
VALIDATION_FAILED = "ValidationFailed"
# DescribeAccount's Message while BYOL is off ("the text message to describe the status of BYOL").
# AWS publishes no example of its text; this one is the sandbox's own.
BYOL_DISABLED_MESSAGE = "BYOL is not enabled for this account in this Region."
# Updates of an image that has none; moto's own images say the same.
NO_UPDATES = {"UpdateAvailable": False, "Description": "This WorkSpace image does not have updates available"}

ERROR_DETAIL_MESSAGES = {
    "OfficeInstalled": "Microsoft Office is installed on the image. Uninstall it and subscribe through Applications.",
    "DiskSizeExceeded": "The image's root volume is larger than the 80 GB that BYOL import allows.",
    "AdditionalDrivesAttached": "The image has drives besides the root volume. Detach them before creating the AMI.",
    # The local Windows user WorkSpaces_BYOL on the VM, not the AWS account's BYOL setting.
    "WorkspacesBYOLAccountDisabled": "The local user account WorkSpaces_BYOL is disabled.",
    "OSNotSupported": "The image's Windows version is not supported for BYOL import.",
}

_ID_ALPHABET = string.ascii_lowercase + string.digits
# moto's backends are process-wide, so the lock that makes "check the name, then add" atomic is too.
_IMAGES_LOCK = threading.Lock()


class WorkSpacesError(Exception):
    """An error answered as the JSON protocol does: HTTP 400 and ``{"__type", "message"}``."""

    def __init__(self, code: str, message: str, status: int = 400, extra: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        # Members the model gives the error shape besides its message, e.g. ResourceId.
        self.extra = dict(extra or {})


def invalid_parameters(message: str) -> WorkSpacesError:
    return WorkSpacesError("InvalidParameterValuesException", message)


@dataclass(frozen=True)
class ImportSettings:
    """The sandbox's run-time knobs that shape an import."""

    import_delay: float
    byol_enabled: bool
    image_quota: int | None


def new_workspace_image_id() -> str:
    return "wsi-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


class ImportedWorkspaceImage(WorkspaceImage):
    """A WorkSpaces image made by ImportWorkspaceImage, whose state follows the clock."""

    def __init__(
        self,
        *,
        params: dict[str, Any],
        account_id: str,
        region: str,
        import_delay: float,
        error_detail_codes: tuple[str, ...],
        update_description: str = "",
    ) -> None:
        super().__init__(
            name=params["ImageName"],
            description=params["ImageDescription"],
            tags=list(params.get("Tags") or []),
            account_id=account_id,
        )
        self.image_id = new_workspace_image_id()
        self.region = region
        self.source_ami_id: str = params["Ec2ImageId"]
        self.ingestion_process: str = params["IngestionProcess"]
        self.applications: list[str] = list(params.get("Applications") or [])
        # BYOL images run on dedicated hardware and are always Windows:
        # https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html
        self.operating_system = {"Type": "WINDOWS"}
        self.required_tenancy = "DEDICATED"
        self.created = time.time()
        self.ready_at = self.created + import_delay
        self.error_detail_codes = error_detail_codes
        # moto's WorkspaceImage keeps DescribeWorkspaceImages' Updates here.
        self.updates = (
            {"UpdateAvailable": True, "Description": update_description} if update_description else NO_UPDATES
        )

    @property  # type: ignore[override]
    def state(self) -> str:
        return self.state_at(time.time())

    @state.setter
    def state(self, value: str) -> None:
        # moto's WorkspaceImage.__init__ assigns state = "AVAILABLE" (its images are instant);
        # an import's state comes from the clock, so that assignment is dropped.
        pass

    def state_at(self, now: float) -> str:
        if now < self.ready_at:
            return "PENDING"
        return "ERROR" if self.error_detail_codes else "AVAILABLE"

    def describe(self, now: float) -> dict[str, Any]:
        state = self.state_at(now)
        described: dict[str, Any] = {
            "ImageId": self.image_id,
            "Name": self.name,
            "Description": self.description,
            "OperatingSystem": self.operating_system,
            "State": state,
            "RequiredTenancy": self.required_tenancy,
            "Created": self.created,
            "OwnerAccountId": self.owner_account,
        }
        if state == "ERROR":
            described["ErrorCode"] = VALIDATION_FAILED
            described["ErrorMessage"] = (
                f"The image failed BYOL validation ({len(self.error_detail_codes)} checks): see ErrorDetails."
            )
            described["ErrorDetails"] = [
                {"ErrorCode": code, "ErrorMessage": ERROR_DETAIL_MESSAGES.get(code, f"The {code} check failed.")}
                for code in self.error_detail_codes
            ]
        if state == "AVAILABLE":
            described["Updates"] = dict(self.updates)
        return described

    def to_desc_dict(self) -> dict[str, Any]:
        return self.describe(time.time())

    def summary(self) -> dict[str, Any]:
        """One line of ``GET /_sandbox/images``."""
        return {
            "ImageId": self.image_id,
            "Name": self.name,
            "State": self.state,
            "AccountId": self.owner_account,
            "Region": self.region,
            "Ec2ImageId": self.source_ami_id,
            "IngestionProcess": self.ingestion_process,
            "Applications": self.applications,
            "Created": self.created,
            "ReadyAt": self.ready_at,
            "ErrorDetailCodes": list(self.error_detail_codes),
            "UpdateAvailable": self.updates["UpdateAvailable"],
        }


def _workspaces_backend(account_id: str, region: str) -> WorkSpacesBackend:
    return workspaces_backends[account_id][region]


def bundles_of(backend: WorkSpacesBackend) -> dict[str, Any]:
    """The custom bundles (CreateWorkspaceBundle, in ``rollout.py``) of one account and region.

    moto has no bundles; they are kept on moto's own backend object, so ``/moto-api/reset``,
    which rebuilds the backends, clears them with the images they were made from.
    """
    bundles: dict[str, Any] = backend.__dict__.setdefault("sandbox_bundles", {})
    return bundles


def _source_ami(ami_id: str, *, account_id: str, region: str) -> Any:
    """The AMI to import, if AWS would accept it: it exists, is ours, is available, is Windows."""
    ami = ec2_backends[account_id][region].amis.get(ami_id)
    if ami is None:
        raise WorkSpacesError(
            "ResourceNotFoundException",
            f"The EC2 image {ami_id} was not found in {region} for account {account_id}.",
        )
    if ami.owner_id != account_id:
        raise invalid_parameters(
            f"The EC2 image {ami_id} is owned by account {ami.owner_id}, not {account_id}: "
            "only an image that your account owns can be imported."
        )
    if ami.state != "available":
        raise invalid_parameters(f"The EC2 image {ami_id} is {ami.state}, not available: wait for it or pick another.")
    if ami.platform != "windows":
        raise WorkSpacesError(
            "OperationNotSupportedException",
            f"The EC2 image {ami_id} is not a Windows image: only Windows 10 and 11 images can be imported as BYOL.",
        )
    return ami


def _ami_tags(ami: Any, *, account_id: str, region: str) -> dict[str, str]:
    return dict(ec2_backends[account_id][region].tags.get(ami.id, {}))


def _error_detail_codes(ami: Any, *, account_id: str, region: str) -> tuple[str, ...]:
    tags = _ami_tags(ami, account_id=account_id, region=region)
    return tuple(code.strip() for code in tags.get(ERROR_DETAILS_TAG, "").split(",") if code.strip())


def _refuse_without_byol(settings: ImportSettings, region: str) -> None:
    # AWS does not document the answer for an account without BYOL; OperationNotSupportedException
    # is the sandbox's choice. (WorkspacesBYOLAccountDisabled, which it used to set, names the
    # VM's local WorkSpaces_BYOL user, not the account's BYOL setting.)
    if not settings.byol_enabled:
        raise WorkSpacesError(
            "OperationNotSupportedException",
            f"BYOL is not enabled for this account in {region}: enable it in the WorkSpaces console or with "
            "ModifyAccount, then import again.",
        )


def _refuse_duplicate_name(backend: WorkSpacesBackend, name: str, region: str) -> None:
    for image in backend.workspace_images.values():
        if image.name == name:
            raise WorkSpacesError(
                "ResourceAlreadyExistsException",
                f"A WorkSpaces image named {name!r} already exists in {region} ({image.image_id}). "
                "Choose another name.",
            )


def _refuse_over_quota(backend: WorkSpacesBackend, quota: int | None, region: str) -> None:
    # Every image counts, ERROR ones too: on AWS they stay in the account until deleted.
    if quota is not None and len(backend.workspace_images) >= quota:
        raise WorkSpacesError(
            "ResourceLimitExceededException",
            f"The account has {len(backend.workspace_images)} WorkSpaces images in {region}, its quota is {quota}.",
        )


def import_workspace_image(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    problems = import_request_problems(params)
    if problems:
        raise invalid_parameters("Invalid ImportWorkspaceImage request: " + "; ".join(problems) + ".")
    _refuse_without_byol(settings, region)
    ami = _source_ami(params["Ec2ImageId"], account_id=account_id, region=region)
    codes = _error_detail_codes(ami, account_id=account_id, region=region)
    backend = _workspaces_backend(account_id, region)
    with _IMAGES_LOCK:
        _refuse_duplicate_name(backend, params["ImageName"], region)
        _refuse_over_quota(backend, settings.image_quota, region)
        image = ImportedWorkspaceImage(
            params=params,
            account_id=account_id,
            region=region,
            import_delay=settings.import_delay,
            error_detail_codes=codes,
            update_description=_ami_tags(ami, account_id=account_id, region=region).get(UPDATE_AVAILABLE_TAG, ""),
        )
        backend.workspace_images[image.image_id] = image
    return {"ImageId": image.image_id}


def _shared_with(account_id: str, region: str) -> list[WorkspaceImage]:
    """Images other accounts shared with this one through UpdateWorkspaceImagePermission."""
    grant = {"SharedAccountId": account_id}
    shared: list[WorkspaceImage] = []
    for owner_id, per_region in list(workspaces_backends.items()):
        backend = per_region.get(region) if owner_id != account_id else None
        if backend is not None:
            shared += [image for image in list(backend.workspace_images.values()) if grant in image.image_permissions]
    return shared


def _visible_images(account_id: str, region: str, image_type: str | None) -> list[WorkspaceImage]:
    owned = list(_workspaces_backend(account_id, region).workspace_images.values())
    if image_type == "OWNED":
        return owned
    shared = _shared_with(account_id, region)
    return shared if image_type == "SHARED" else owned + shared


def _describe_image(image: WorkspaceImage, now: float) -> dict[str, Any]:
    if isinstance(image, ImportedWorkspaceImage):
        return image.describe(now)
    # moto's own images (CreateWorkspaceImage) carry empty ErrorCode/ErrorMessage/ErrorDetails
    # that AWS would leave out.
    return {key: value for key, value in image.to_desc_dict().items() if value not in ("", [], None)}


def _page_start(next_token: str | None, operation: str = "DescribeWorkspaceImages") -> int:
    if next_token is None:
        return 0
    try:
        prefix, _, offset = base64.urlsafe_b64decode(next_token.encode()).decode().partition(":")
        if prefix == "offset" and offset.isdigit():
            return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid_parameters(f"NextToken {next_token!r} is not a token that {operation} returned.")


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def describe_workspace_images(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    problems = describe_images_request_problems(params)
    if problems:
        raise invalid_parameters("Invalid DescribeWorkspaceImages request: " + "; ".join(problems) + ".")
    with _IMAGES_LOCK:
        images = _visible_images(account_id, region, params.get("ImageType"))
    if params.get("ImageIds"):
        wanted = set(params["ImageIds"])
        images = [image for image in images if image.image_id in wanted]
    images.sort(key=lambda image: (image.created, image.image_id))
    # AWS does not document a default page size; using the model's maximum means a caller that
    # forgets NextToken finds out here rather than against a busy production account.
    start = _page_start(params.get("NextToken"))
    end = start + (params.get("MaxResults") or MAX_RESULTS)
    now = time.time()
    result: dict[str, Any] = {"Images": [_describe_image(image, now) for image in images[start:end]]}
    if end < len(images):
        result["NextToken"] = _page_token(end)
    return result


def describe_account(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    if not settings.byol_enabled:
        return {"DedicatedTenancySupport": "DISABLED", "Message": BYOL_DISABLED_MESSAGE}
    return {"DedicatedTenancySupport": "ENABLED", "DedicatedTenancyManagementCidrRange": MANAGEMENT_CIDR_RANGE}


def _tagged_resources(backend: WorkSpacesBackend, resource_id: str) -> dict[str, Any]:
    """The moto store that holds a resource of this id's kind (directory, WorkSpace, image)."""
    if resource_id.startswith("wsi-"):
        return backend.workspace_images
    if resource_id.startswith("wsb-"):
        return bundles_of(backend)
    if resource_id.startswith("ws-"):
        return backend.workspaces
    if resource_id.startswith("d-"):
        return backend.workspace_directories
    return {}


def describe_tags(params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings) -> dict[str, Any]:
    # moto answers an unknown id with a KeyError (HTTP 500, which boto3 retries); AWS says
    # ResourceNotFoundException, which the portal can act on.
    resource_id = params.get("ResourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise invalid_parameters("Invalid DescribeTags request: ResourceId is required.")
    backend = _workspaces_backend(account_id, region)
    resources = _tagged_resources(backend, resource_id)
    if resource_id not in resources:
        raise WorkSpacesError("ResourceNotFoundException", f"The resource {resource_id} was not found in {region}.")
    if resource_id.startswith("wsb-"):
        # moto's describe_tags knows no bundles.
        return {"TagList": list(resources[resource_id].tags)}
    return {"TagList": backend.describe_tags(resource_id)}


def _owner_elsewhere(image_id: str, *, account_id: str, region: str) -> str | None:
    """The other account that owns an image of this id in the region, if one does."""
    for owner_id, per_region in list(workspaces_backends.items()):
        backend = per_region.get(region) if owner_id != account_id else None
        if backend is not None and image_id in backend.workspace_images:
            return str(owner_id)
    return None


def delete_workspace_image(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    """DeleteWorkspaceImage, with the errors the service model gives it (ResourceAssociatedException,
    InvalidResourceStateException, AccessDeniedException). An id no account knows is answered
    like a delete that already happened: the model has no not-found error for this operation."""
    problems = delete_image_request_problems(params)
    if problems:
        raise invalid_parameters("Invalid DeleteWorkspaceImage request: " + "; ".join(problems) + ".")
    image_id = params["ImageId"]
    with _IMAGES_LOCK:
        image = _workspaces_backend(account_id, region).workspace_images.get(image_id)
        if image is None:
            owner = _owner_elsewhere(image_id, account_id=account_id, region=region)
            if owner is not None:
                raise WorkSpacesError(
                    "AccessDeniedException",
                    f"The image {image_id} belongs to account {owner}: only the owning account can delete it.",
                )
            return {}
        # https://docs.aws.amazon.com/workspaces/latest/api/API_DeleteWorkspaceImage.html: "you must
        # first delete any bundles that are associated with the image and unshare the image".
        bundles = sorted(
            bundle.bundle_id
            for bundle in bundles_of(_workspaces_backend(account_id, region)).values()
            if bundle.image_id == image_id
        )
        if bundles:
            raise WorkSpacesError(
                "ResourceAssociatedException",
                f"The image {image_id} has bundles ({', '.join(bundles)}): delete them before deleting it.",
            )
        if image.image_permissions:
            shared = ", ".join(grant["SharedAccountId"] for grant in image.image_permissions)
            raise WorkSpacesError(
                "ResourceAssociatedException",
                f"The image {image_id} is shared with {shared}: unshare it before deleting it.",
            )
        # AWS does not say which states it refuses; an import still running is the sandbox's case.
        if image.state == "PENDING":
            raise WorkSpacesError(
                "InvalidResourceStateException",
                f"The image {image_id} is PENDING: wait until its import ends, then delete it.",
            )
        del _workspaces_backend(account_id, region).workspace_images[image_id]
    return {}


def imported_images() -> list[ImportedWorkspaceImage]:
    """Every imported image in every account and region, oldest first."""
    with _IMAGES_LOCK:
        images = [
            image
            for _account, per_region in list(workspaces_backends.items())
            for backend in list(per_region.values())
            for image in list(backend.workspace_images.values())
            if isinstance(image, ImportedWorkspaceImage)
        ]
    return sorted(images, key=lambda image: (image.created, image.image_id))
