"""The rollout after an import: bundles, copies to other regions and sharing with other accounts.

moto 5.2.5 has no CreateWorkspaceBundle, DescribeWorkspaceBundles, DeleteWorkspaceBundle or
CopyWorkspaceImage (NotImplementedError, HTTP 500). It has UpdateWorkspaceImagePermission and
DescribeWorkspaceImagePermissions, but answers them too loosely to test against: an unknown image
is a KeyError (HTTP 500) or an empty grant list, nothing is validated (any SharedAccountId, a
missing AllowCopyImage revokes), a PENDING image or another account's image can be shared, an
id longer than nine characters is a ValidationException the model does not have, and nothing is
paginated. The sandbox answers all six itself, with botocore's model for the shapes,
constraints and error codes and AWS's documentation for the rules in prose; each rule below says
whether AWS documents it or the sandbox chose it.

Bundles live on moto's WorkSpaces backend next to the images (``workspaces.bundles_of``); a copy
is an image in the destination region's backend, PENDING for the import delay, then AVAILABLE.
"""

import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from moto.workspaces.models import WorkspaceImage, workspaces_backends

from .validation import (
    MAX_RESULTS,
    copy_request_problems,
    create_bundle_request_problems,
    delete_bundle_request_problems,
    describe_bundles_request_problems,
    describe_permissions_request_problems,
    update_permission_request_problems,
)
from .workspaces import (
    _IMAGES_LOCK,
    ImportedWorkspaceImage,
    ImportSettings,
    WorkSpacesError,
    _owner_elsewhere,
    _page_start,
    _page_token,
    _refuse_duplicate_name,
    _refuse_over_quota,
    _refuse_without_byol,
    _workspaces_backend,
    bundles_of,
    invalid_parameters,
)

_ID_ALPHABET = string.ascii_lowercase + string.digits

# --- compute types per image ---------------------------------------------------------------
# The model's IngestionProcess documentation: "For non-GPU-enabled bundles (bundles other than
# Graphics or GraphicsPro), specify BYOL_REGULAR, BYOL_REGULAR_WSP, or BYOL_REGULAR_BYOP", so an
# image's ingestion process (ImportWorkspaceImage) or compute type (ImportCustomWorkspaceImage)
# decides which bundles it can make. AWS publishes no table from ingestion process to
# ComputeType.Name; this one is the sandbox's, by name: a regular image makes only the non-GPU
# types, a _G4DN image only the G4dn types, a legacy GRAPHICS / GRAPHICSPRO image only its own
# type, and an Image Builder image of GRAPHICS_G6 / GRAPHICS_G7 only that family's sizes.
# An image moto made (CreateWorkspaceImage) carries neither attribute and counts as regular.
REGULAR_COMPUTE = (
    "VALUE",
    "STANDARD",
    "PERFORMANCE",
    "POWER",
    "POWERPRO",
    "GENERALPURPOSE_4XLARGE",
    "GENERALPURPOSE_8XLARGE",
)
G4DN_COMPUTE = ("GRAPHICS_G4DN", "GRAPHICSPRO_G4DN")
G6_COMPUTE = (
    "GRAPHICS_G6_XLARGE",
    "GRAPHICS_G6_2XLARGE",
    "GRAPHICS_G6_4XLARGE",
    "GRAPHICS_G6_8XLARGE",
    "GRAPHICS_G6_16XLARGE",
    "GRAPHICS_GR6_4XLARGE",
    "GRAPHICS_GR6_8XLARGE",
    "GRAPHICS_G6F_LARGE",
    "GRAPHICS_G6F_XLARGE",
    "GRAPHICS_G6F_2XLARGE",
    "GRAPHICS_G6F_4XLARGE",
    "GRAPHICS_GR6F_4XLARGE",
)
G7_COMPUTE = ("GRAPHICS_G7_2XLARGE", "GRAPHICS_G7_4XLARGE", "GRAPHICS_G7_8XLARGE", "GRAPHICS_G7_12XLARGE")
COMPUTE_BY_INGESTION_PROCESS = {
    "BYOL_REGULAR": REGULAR_COMPUTE,
    "BYOL_REGULAR_WSP": REGULAR_COMPUTE,
    "BYOL_REGULAR_BYOP": REGULAR_COMPUTE,
    "BYOL_GRAPHICS": ("GRAPHICS",),
    "BYOL_GRAPHICSPRO": ("GRAPHICSPRO",),
    "BYOL_GRAPHICS_G4DN": G4DN_COMPUTE,
    "BYOL_GRAPHICS_G4DN_WSP": G4DN_COMPUTE,
    "BYOL_GRAPHICS_G4DN_BYOP": G4DN_COMPUTE,
}
COMPUTE_BY_IMAGE_COMPUTE_TYPE = {
    "BASE": REGULAR_COMPUTE,
    "GRAPHICS_G4DN": G4DN_COMPUTE,
    "GRAPHICS_G6": G6_COMPUTE,
    "GRAPHICS_G7": G7_COMPUTE,
}

# --- volumes -------------------------------------------------------------------------------
# https://docs.aws.amazon.com/workspaces/latest/adminguide/modify-workspaces.html ("Modify volume
# sizes"): root and user volumes come in set groups, [root GB, user GB]: [80, 10], [80, 50],
# [80, 100] and [175 to 2000, 100 to 2000]. The sandbox holds a bundle's pair to the same groups.
# https://docs.aws.amazon.com/workspaces/latest/adminguide/create-custom-bundle.html: "Custom
# bundle storage volumes can't be smaller than image storage volumes"; a BYOL image's root volume
# is at most 80 GB, so every allowed pair passes that.
ROOT_WITH_SMALL_USER = 80
SMALL_USER_SIZES = (10, 50, 100)
LARGE_ROOT = (175, 2000)
LARGE_USER = (100, 2000)
# RootStorage is optional in the model; AWS does not say what it defaults to. The sandbox's
# choice: 80 GB, the smallest root any group allows.
DEFAULT_ROOT_CAPACITY = "80"
# https://docs.aws.amazon.com/workspaces/latest/adminguide/workspaces-limits.html: "Bundles | 50 |
# The maximum number of bundles in this account in the current Region" (custom bundles; not adjustable).
BUNDLE_QUOTA = 50
# DescribeWorkspaceBundles has NextToken but no MaxResults in the model; the page size is the
# sandbox's choice, the model's usual Limit maximum.
BUNDLE_PAGE_SIZE = 25
# DescribeWorkspaceBundles' Owner for the bundles AWS provides; the sandbox has none of those.
AMAZON_OWNER = "AMAZON"


def new_bundle_id() -> str:
    return "wsb-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


def allowed_compute_types(image: WorkspaceImage) -> tuple[str, ...]:
    compute_type = getattr(image, "compute_type", None)
    if compute_type:
        return COMPUTE_BY_IMAGE_COMPUTE_TYPE.get(compute_type, REGULAR_COMPUTE)
    return COMPUTE_BY_INGESTION_PROCESS.get(getattr(image, "ingestion_process", "") or "", REGULAR_COMPUTE)


def _gigabytes(name: str, capacity: str) -> int:
    if not capacity.isascii() or not capacity.isdigit():
        raise invalid_parameters(f'{name}.Capacity {capacity!r} must be a whole number of GB, such as "80".')
    return int(capacity)


def _refuse_volume_pair(root: int, user: int) -> None:
    if root == ROOT_WITH_SMALL_USER and user in SMALL_USER_SIZES:
        return
    if LARGE_ROOT[0] <= root <= LARGE_ROOT[1] and LARGE_USER[0] <= user <= LARGE_USER[1]:
        return
    raise invalid_parameters(
        f"A root volume of {root} GB with a user volume of {user} GB is not a size pair WorkSpaces offers: "
        f"use root {ROOT_WITH_SMALL_USER} GB with user {', '.join(map(str, SMALL_USER_SIZES))} GB, or root "
        f"{LARGE_ROOT[0]}-{LARGE_ROOT[1]} GB with user {LARGE_USER[0]}-{LARGE_USER[1]} GB."
    )


def _unavailable(resource_id: str, message: str) -> WorkSpacesError:
    return WorkSpacesError("ResourceUnavailableException", message, extra={"ResourceId": resource_id})


def _not_found(resource_id: str, message: str) -> WorkSpacesError:
    return WorkSpacesError("ResourceNotFoundException", message, extra={"ResourceId": resource_id})


@dataclass
class WorkspaceBundle:
    """A custom bundle made by CreateWorkspaceBundle; AVAILABLE as soon as it is made (the
    sandbox's choice: AWS publishes no time a custom bundle takes)."""

    bundle_id: str
    name: str
    description: str
    owner: str
    image_id: str
    compute_type: str
    root_capacity: str
    user_capacity: str
    tags: list[dict[str, str]] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        return {
            "BundleId": self.bundle_id,
            "Name": self.name,
            "Owner": self.owner,
            "Description": self.description,
            "ImageId": self.image_id,
            "RootStorage": {"Capacity": self.root_capacity},
            "UserStorage": {"Capacity": self.user_capacity},
            "ComputeType": {"Name": self.compute_type},
            "LastUpdatedTime": self.created,
            "CreationTime": self.created,
            "State": "AVAILABLE",
            "BundleType": "REGULAR",
        }


def _refuse(problems: list[str], operation: str) -> None:
    if problems:
        raise invalid_parameters(f"Invalid {operation} request: " + "; ".join(problems) + ".")


def create_workspace_bundle(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    _refuse(create_bundle_request_problems(params), "CreateWorkspaceBundle")
    root_capacity = (params.get("RootStorage") or {}).get("Capacity") or DEFAULT_ROOT_CAPACITY
    user_capacity = params["UserStorage"]["Capacity"]
    _refuse_volume_pair(_gigabytes("RootStorage", root_capacity), _gigabytes("UserStorage", user_capacity))
    image_id, compute = params["ImageId"], params["ComputeType"]["Name"]
    backend = _workspaces_backend(account_id, region)
    with _IMAGES_LOCK:
        image = backend.workspace_images.get(image_id)
        if image is None:
            # A shared image makes no bundle until it is copied ("You can then use your copies of
            # the shared images to create bundles", share-custom-image.html), so only the
            # caller's own images count.
            raise _not_found(image_id, f"The image {image_id} was not found in {region} for account {account_id}.")
        if image.state != "AVAILABLE":
            raise _unavailable(
                image_id, f"The image {image_id} is {image.state}: only an AVAILABLE image makes a bundle."
            )
        allowed = allowed_compute_types(image)
        if compute not in allowed:
            kind = (
                getattr(image, "compute_type", None) or getattr(image, "ingestion_process", None) or "a regular image"
            )
            raise invalid_parameters(
                f"The image {image_id} ({kind}) cannot run on compute type {compute}: use one of {', '.join(allowed)}."
            )
        bundles = bundles_of(backend)
        for bundle in bundles.values():
            if bundle.name == params["BundleName"]:
                raise WorkSpacesError(
                    "ResourceAlreadyExistsException",
                    f"A bundle named {bundle.name!r} already exists in {region} ({bundle.bundle_id}). "
                    "Choose another name.",
                )
        if len(bundles) >= BUNDLE_QUOTA:
            raise WorkSpacesError(
                "ResourceLimitExceededException",
                f"The account has {len(bundles)} custom bundles in {region}, "
                f"the most WorkSpaces allows ({BUNDLE_QUOTA}).",
            )
        bundle = WorkspaceBundle(
            bundle_id=new_bundle_id(),
            name=params["BundleName"],
            description=params["BundleDescription"],
            owner=account_id,
            image_id=image_id,
            compute_type=compute,
            root_capacity=root_capacity,
            user_capacity=user_capacity,
            tags=list(params.get("Tags") or []),
        )
        bundles[bundle.bundle_id] = bundle
    return {"WorkspaceBundle": bundle.describe()}


def describe_workspace_bundles(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    _refuse(describe_bundles_request_problems(params), "DescribeWorkspaceBundles")
    owner = params.get("Owner")
    with _IMAGES_LOCK:
        bundles = list(bundles_of(_workspaces_backend(account_id, region)).values())
    if owner is not None and owner != account_id:
        # AMAZON asks for AWS's public bundles, which the sandbox does not have; another
        # account's bundles are not visible to the caller (the sandbox's choice).
        bundles = []
    if params.get("BundleIds"):
        wanted = set(params["BundleIds"])
        bundles = [bundle for bundle in bundles if bundle.bundle_id in wanted]
    bundles.sort(key=lambda bundle: (bundle.created, bundle.bundle_id))
    start = _page_start(params.get("NextToken"), "DescribeWorkspaceBundles")
    end = start + BUNDLE_PAGE_SIZE
    result: dict[str, Any] = {"Bundles": [bundle.describe() for bundle in bundles[start:end]]}
    if end < len(bundles):
        result["NextToken"] = _page_token(end)
    return result


def delete_workspace_bundle(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    _refuse(delete_bundle_request_problems(params), "DeleteWorkspaceBundle")
    bundle_id = params["BundleId"]
    backend = _workspaces_backend(account_id, region)
    with _IMAGES_LOCK:
        bundles = bundles_of(backend)
        if bundle_id not in bundles:
            raise _not_found(bundle_id, f"The bundle {bundle_id} was not found in {region} for account {account_id}.")
        # https://docs.aws.amazon.com/workspaces/latest/adminguide/delete_bundle.html: a bundle
        # WorkSpaces still use cannot be deleted; moto's WorkSpaces keep their BundleId.
        users = sorted(ws.workspace_id for ws in backend.workspaces.values() if ws.bundle_id == bundle_id)
        if users:
            raise WorkSpacesError(
                "ResourceAssociatedException",
                f"The bundle {bundle_id} is used by WorkSpaces {', '.join(users)}: terminate them first.",
            )
        del bundles[bundle_id]
    return {}


# --- CopyWorkspaceImage --------------------------------------------------------------------


class CopiedWorkspaceImage(ImportedWorkspaceImage):
    """A copy made by CopyWorkspaceImage in the destination region: PENDING for the import
    delay, then AVAILABLE (a copy of an AVAILABLE image does not fail in the sandbox). It keeps
    the source's ingestion process and compute type, so it makes the same bundles."""

    def __init__(
        self,
        *,
        source: WorkspaceImage,
        source_region: str,
        params: dict[str, Any],
        account_id: str,
        region: str,
        import_delay: float,
    ) -> None:
        super().__init__(
            params={
                "ImageName": params["Name"],
                # The sandbox's choice: a copy without a Description keeps the source's.
                "ImageDescription": params.get("Description") or source.description,
                "Tags": params.get("Tags"),
                "Ec2ImageId": getattr(source, "source_ami_id", ""),
                "IngestionProcess": getattr(source, "ingestion_process", ""),
                "Applications": getattr(source, "applications", None),
            },
            account_id=account_id,
            region=region,
            import_delay=import_delay,
            error_detail_codes=(),
        )
        self.source_image_id = source.image_id
        self.source_region = source_region
        self.compute_type: str | None = getattr(source, "compute_type", None)
        if source.operating_system:
            self.operating_system = dict(source.operating_system)
        self.required_tenancy = source.required_tenancy
        self.updates = dict(source.updates)

    def summary(self) -> dict[str, Any]:
        return super().summary() | {
            "CopiedFrom": {"ImageId": self.source_image_id, "Region": self.source_region},
            "ComputeType": self.compute_type,
        }


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _refuse_copy_between(source_region: str, region: str) -> None:
    if source_region == region:
        return
    # The model (CopyWorkspaceImage): "In the China (Ningxia) Region, you can copy images only
    # within the same Region. In Amazon Web Services GovCloud (US), to copy images to and from
    # other Regions, contact Amazon Web Services Support."
    if "cn-northwest-1" in (source_region, region):
        raise WorkSpacesError(
            "OperationNotSupportedException",
            "In the China (Ningxia) Region, images can be copied only within the same Region.",
        )
    if _partition(source_region) == "aws-us-gov" or _partition(region) == "aws-us-gov":
        raise WorkSpacesError(
            "OperationNotSupportedException",
            "In AWS GovCloud (US), copying images to and from other Regions needs AWS Support.",
        )
    if _partition(source_region) != _partition(region):
        raise WorkSpacesError(
            "OperationNotSupportedException", f"Images cannot be copied from {source_region} to {region}."
        )


def _copy_source(image_id: str, *, account_id: str, source_region: str) -> WorkspaceImage:
    """The caller's image in the source region, or one another account shared with it there
    ("If images are shared with you, you can copy them", share-custom-image.html)."""
    own = workspaces_backends[account_id][source_region].workspace_images.get(image_id)
    if own is not None:
        return own
    grant = {"SharedAccountId": account_id}
    for owner_id, per_region in list(workspaces_backends.items()):
        backend = per_region.get(source_region) if owner_id != account_id else None
        image = backend.workspace_images.get(image_id) if backend is not None else None
        if image is not None and grant in image.image_permissions:
            return image
    raise _not_found(
        image_id, f"The image {image_id} was not found in {source_region} for account {account_id}, owned or shared."
    )


def copy_workspace_image(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    """Called in the destination region, with SourceRegion and SourceImageId
    (https://docs.aws.amazon.com/workspaces/latest/api/API_CopyWorkspaceImage.html)."""
    _refuse(copy_request_problems(params), "CopyWorkspaceImage")
    source_region, source_id = params["SourceRegion"], params["SourceImageId"]
    _refuse_copy_between(source_region, region)
    destination = _workspaces_backend(account_id, region)
    with _IMAGES_LOCK:
        source = _copy_source(source_id, account_id=account_id, source_region=source_region)
        if source.state != "AVAILABLE":
            raise _unavailable(
                source_id, f"The image {source_id} is {source.state}: only an AVAILABLE image is copied."
            )
        if source.required_tenancy == "DEDICATED":
            # A BYOL image runs only where BYOL is enabled: the destination region's setting.
            _refuse_without_byol(settings, region)
        _refuse_duplicate_name(destination, params["Name"], region)
        _refuse_over_quota(destination, settings.image_quota, region)
        image = CopiedWorkspaceImage(
            source=source,
            source_region=source_region,
            params=params,
            account_id=account_id,
            region=region,
            import_delay=settings.import_delay,
        )
        destination.workspace_images[image.image_id] = image
    return {"ImageId": image.image_id}


# --- UpdateWorkspaceImagePermission / DescribeWorkspaceImagePermissions -------------------


def _owned_image(image_id: str, *, account_id: str, region: str, action: str) -> WorkspaceImage:
    image = _workspaces_backend(account_id, region).workspace_images.get(image_id)
    if image is not None:
        return image
    owner = _owner_elsewhere(image_id, account_id=account_id, region=region)
    if owner is not None:
        raise WorkSpacesError(
            "AccessDeniedException",
            f"The image {image_id} belongs to account {owner}: only the owning account can {action}.",
        )
    raise _not_found(image_id, f"The image {image_id} was not found in {region} for account {account_id}.")


def update_workspace_image_permission(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    _refuse(update_permission_request_problems(params), "UpdateWorkspaceImagePermission")
    image_id, shared_with, allow = params["ImageId"], params["SharedAccountId"], params["AllowCopyImage"]
    if shared_with == account_id:
        # The sandbox's choice: an owner already has every permission on its image.
        raise invalid_parameters(f"The image {image_id} is yours: share it with another account, not {account_id}.")
    grant = {"SharedAccountId": shared_with}
    with _IMAGES_LOCK:
        image = _owned_image(image_id, account_id=account_id, region=region, action="share it")
        if not allow:
            # The model: "This permission can be revoked only after an image has been shared."
            if grant not in image.image_permissions:
                raise invalid_parameters(f"The image {image_id} is not shared with {shared_with}: nothing to revoke.")
            image.image_permissions.remove(grant)
            return {}
        byol = image.required_tenancy == "DEDICATED"
        # The model: "Sharing Bring Your Own License (BYOL) images across Amazon Web Services
        # accounts isn't supported at this time in Amazon Web Services GovCloud (US)."
        if byol and _partition(region) == "aws-us-gov":
            raise WorkSpacesError(
                "OperationNotSupportedException",
                "Sharing BYOL images across accounts is not supported in AWS GovCloud (US): contact AWS Support.",
            )
        # AWS does not say which states it refuses; the sandbox refuses an image still PENDING
        # (nothing to share yet). An ERROR image can still be shared, as moto lets it be, so a
        # failed image can be made undeletable in tests of what the portal does then.
        if image.state == "PENDING":
            raise _unavailable(image_id, f"The image {image_id} is PENDING: share it once it is AVAILABLE.")
        # https://docs.aws.amazon.com/workspaces/latest/adminguide/share-custom-image.html: "You can
        # share BYOL images only with AWS accounts that are enabled for BYOL." The sandbox's one
        # BYOL switch stands for every account, the receiving one included.
        if byol and not settings.byol_enabled:
            raise WorkSpacesError(
                "OperationNotSupportedException",
                f"BYOL is not enabled for account {shared_with} in {region}: a BYOL image is shared only with "
                "accounts enabled for BYOL.",
            )
        if grant not in image.image_permissions:
            image.image_permissions.append(grant)
    return {}


def describe_workspace_image_permissions(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    _refuse(describe_permissions_request_problems(params), "DescribeWorkspaceImagePermissions")
    image_id = params["ImageId"]
    with _IMAGES_LOCK:
        image = _owned_image(image_id, account_id=account_id, region=region, action="see whom it is shared with")
        grants = [dict(grant) for grant in image.image_permissions]
    start = _page_start(params.get("NextToken"), "DescribeWorkspaceImagePermissions")
    end = start + (params.get("MaxResults") or MAX_RESULTS)
    result: dict[str, Any] = {"ImageId": image_id, "ImagePermissions": grants[start:end]}
    if end < len(grants):
        result["NextToken"] = _page_token(end)
    return result
