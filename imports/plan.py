"""What a valid delivery plan is: the bundle, the copies to other regions and the shares with
other accounts that follow the import (ImportRequest.delivery_plan). Pure Python, no Django
models, no I/O, like imports.rules.

The plan, as JSON; every key optional, {} when nothing; lists in the order given, no repeats:

    {"bundle": {"name", "description", "compute_type", "root_gb", "user_gb"},
     "copies": [{"region", "bundle": bool}],       # named as the image; bundle: the same bundle there
     "shares": [{"account_id", "region"}]}         # region: the target's, or a copy's

Sources: botocore's service model (botocore/data/workspaces/*/service-2.json.gz), whose patterns,
lengths and enum are copied into the constants below under the shape's name, and the pages of
the WorkSpaces admin guide linked above the rules that come from them. Violations are keyed by
the request form's field names (imports.forms.PLAN_FIELDS), as the form shows them.
"""

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from imports import rules

# --- constants from the service model --------------------------------------------------------

# WorkspaceBundleName: 1-64, ^[a-zA-Z0-9_./()\\-]+$. The model's "\\-" is an escaped hyphen
# written for Java, as in WorkspaceImageName: the portal reads it as rules.IMAGE_NAME_RE does.
BUNDLE_NAME_RE = re.compile(r"^[a-zA-Z0-9_./()\-]+$")
BUNDLE_NAME_MAX = 64
# WorkspaceBundleDescription: 1-255 (one less than an image's description).
BUNDLE_DESCRIPTION_RE = re.compile(r"^[a-zA-Z0-9_./() -]+$")
BUNDLE_DESCRIPTION_MAX = 255
# Compute (ComputeType.Name), the enum in its model order.
COMPUTE_TYPES = (
    "VALUE",
    "STANDARD",
    "PERFORMANCE",
    "POWER",
    "GRAPHICS",
    "POWERPRO",
    "GENERALPURPOSE_4XLARGE",
    "GENERALPURPOSE_8XLARGE",
    "GRAPHICSPRO",
    "GRAPHICS_G4DN",
    "GRAPHICSPRO_G4DN",
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
    "GRAPHICS_G7_2XLARGE",
    "GRAPHICS_G7_4XLARGE",
    "GRAPHICS_G7_8XLARGE",
    "GRAPHICS_G7_12XLARGE",
)
# Region (CopyWorkspaceImage.SourceRegion): 1-31 of [-0-9a-z]; and the form of a region code,
# as AwsTarget.region takes it.
REGION_RE = re.compile(r"^[-0-9a-z]{1,31}$")
REGION_CODE_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
# AwsAccount (UpdateWorkspaceImagePermission.SharedAccountId): ^\d{12}$, ASCII digits only.
ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")

# The partitions' region patterns, from botocore/data/partitions.json: an image is copied and
# shared only within its partition.
PARTITIONS = {
    "aws": re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$", re.ASCII),
    "aws-cn": re.compile(r"^cn\-\w+\-\d+$", re.ASCII),
    "aws-us-gov": re.compile(r"^us\-gov\-\w+\-\d+$", re.ASCII),
    "aws-iso": re.compile(r"^us\-iso\-\w+\-\d+$", re.ASCII),
    "aws-iso-b": re.compile(r"^us\-isob\-\w+\-\d+$", re.ASCII),
    "aws-iso-e": re.compile(r"^eu\-isoe\-\w+\-\d+$", re.ASCII),
    "aws-iso-f": re.compile(r"^us\-isof\-\w+\-\d+$", re.ASCII),
}
CHINA, GOVCLOUD = "aws-cn", "aws-us-gov"

# --- the compute types a bundle of the image may have ----------------------------------------

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
G6_COMPUTE = tuple(c for c in COMPUTE_TYPES if c.startswith(("GRAPHICS_G6", "GRAPHICS_GR6")))
G7_COMPUTE = tuple(c for c in COMPUTE_TYPES if c.startswith("GRAPHICS_G7"))
# The classic import: the ingestion process names the kind of bundle the image is for
# (rules.INGESTION_PROCESSES).
BUNDLE_COMPUTE_BY_PROCESS = {
    "BYOL_REGULAR": REGULAR_COMPUTE,
    "BYOL_REGULAR_WSP": REGULAR_COMPUTE,
    "BYOL_REGULAR_BYOP": REGULAR_COMPUTE,
    "BYOL_GRAPHICS": ("GRAPHICS",),
    "BYOL_GRAPHICSPRO": ("GRAPHICSPRO",),
    "BYOL_GRAPHICS_G4DN": G4DN_COMPUTE,
    "BYOL_GRAPHICS_G4DN_WSP": G4DN_COMPUTE,
    "BYOL_GRAPHICS_G4DN_BYOP": G4DN_COMPUTE,
}
# The Image Builder import: its compute type does (rules.COMPUTE_TYPE_CHOICES).
BUNDLE_COMPUTE_BY_IMAGE_COMPUTE = {
    "BASE": REGULAR_COMPUTE,
    "GRAPHICS_G4DN": G4DN_COMPUTE,
    "GRAPHICS_G6": G6_COMPUTE,
    "GRAPHICS_G7": G7_COMPUTE,
}

# --- volume sizes -----------------------------------------------------------------------------
# https://docs.aws.amazon.com/workspaces/latest/adminguide/modify-workspaces.html ("Modify volume
# sizes"): [root, user] in GB is [80, 10], [80, 50], [80, 100] or [175-2000, 100-2000].
SMALL_ROOT_GB = 80
SMALL_ROOT_USER_GB = (10, 50, 100)
LARGE_ROOT_GB = range(175, 2001)
LARGE_ROOT_USER_GB = range(100, 2001)

# The portal's own limits, not AWS's: one approval should stay readable, and each copy and share
# is a step the engine runs and someone may have to retry.
MAX_COPIES = 10
MAX_SHARE_ACCOUNTS = 25

# --- messages ---------------------------------------------------------------------------------

MSG_PLAN_DAMAGED = "The plan after the import is damaged: reload the page and fill in 'After the import' again."
MSG_BUNDLE_NAME = (
    f"Use only letters, digits and _ . / ( ) - in the bundle name (no spaces), at most {BUNDLE_NAME_MAX} characters."
)
MSG_BUNDLE_DESCRIPTION = (
    "Use only letters, digits, spaces and _ . / ( ) - in the bundle description, "
    f"at most {BUNDLE_DESCRIPTION_MAX} characters."
)
MSG_BUNDLE_COMPUTE_UNKNOWN = "Choose the bundle's compute type from the list."
MSG_BUNDLE_COMPUTE_FOR_IMAGE = "A {compute} bundle cannot be made from this image ({what} {image}): choose {allowed}."
MSG_SIZE_NUMBER = "Enter the size as a whole number of GB."
MSG_ROOT_SIZE = "Choose a root volume of 80 GB, or of 175 to 2000 GB: AWS offers no other sizes."
MSG_USER_SIZE_SMALL_ROOT = "With an 80 GB root volume, choose a user volume of 10, 50 or 100 GB."
MSG_USER_SIZE_LARGE_ROOT = "With a root volume of 175 GB or more, choose a user volume of 100 to 2000 GB."
MSG_COPY_REGION_FORMAT = (
    "'{region}' is not a region code: write codes like eu-central-1, separated by commas or spaces."
)
MSG_COPY_TARGET_REGION = "{region} is the target's own region, where the image is imported: leave it out."
MSG_COPY_DUPLICATE = "{region} is listed more than once: list each region once."
MSG_COPY_UNKNOWN_PARTITION = "{region} is not in any AWS partition the portal knows: check the region code."
MSG_COPY_OTHER_PARTITION = (
    "{region} is in the {partition} partition and the target in {target_partition}: "
    "an image can be copied only within its partition."
)
MSG_COPY_CHINA = (
    "In the China (Ningxia) Region AWS copies images only within the same Region: "
    "leave the regions empty for this target."
)
MSG_COPY_GOVCLOUD = (
    "In AWS GovCloud (US), images are copied to and from other Regions only through AWS Support: "
    "leave the regions empty and ask AWS Support for the copies."
)
MSG_TOO_MANY_COPIES = f"List at most {MAX_COPIES} regions: the portal's limit for one request."
MSG_COPY_BUNDLE_WITHOUT_BUNDLE = (
    "A copy's bundle takes the bundle's settings: tick 'Make a bundle from the image' and fill them in, or untick this."
)
MSG_SHARE_ACCOUNT_FORMAT = (
    "'{account}' is not an AWS account id: write 12 digits like 210987654321, one per line or separated by commas."
)
MSG_SHARE_OWN_ACCOUNT = "{account} is the target's own account, which owns the image: leave it out."
MSG_SHARE_DUPLICATE = "{account} is listed more than once: list each account once."
MSG_SHARE_REGION = (
    "The share with {account} is in {region}, where the plan makes no image: "
    "share in the target's region or in a copy's."
)
MSG_SHARE_GOVCLOUD = (
    "AWS does not support sharing BYOL images across accounts in AWS GovCloud (US): "
    "leave the accounts empty and ask AWS Support to share the image."
)
MSG_TOO_MANY_SHARE_ACCOUNTS = f"List at most {MAX_SHARE_ACCOUNTS} accounts: the portal's limit for one request."
# A warning: https://docs.aws.amazon.com/workspaces/latest/adminguide/share-custom-image.html
# The portal has no credentials in the receiving accounts, so it cannot check them.
MSG_SHARE_NEEDS_BYOL_ACCOUNTS = (
    "AWS shares a BYOL image only with accounts that are enabled for BYOL and in your organization "
    "(under the same payer account). The portal cannot check {accounts}: confirm it with their owners, "
    "or the share steps fail."
)

PLAN_KEYS = frozenset({"bundle", "copies", "shares"})
BUNDLE_KEYS = frozenset({"name", "description", "compute_type", "root_gb", "user_gb"})


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to, or "" when none matches."""
    return next((name for name, pattern in PARTITIONS.items() if pattern.fullmatch(region)), "")


def allowed_bundle_compute_types(import_path: str, ingestion_process: str, compute_type: str) -> tuple[str, ...]:
    """The compute types a bundle of this image may have; () while the image's kind is unknown."""
    if import_path == rules.ImportPath.IMAGE_BUILDER:
        return BUNDLE_COMPUTE_BY_IMAGE_COMPUTE.get(compute_type, ())
    return BUNDLE_COMPUTE_BY_PROCESS.get(ingestion_process, ())


def compute_label(compute_type: str) -> str:
    """STANDARD -> Standard, GRAPHICS_G4DN -> Graphics.g4dn, GRAPHICS_G6_2XLARGE -> Graphics.g6.2xlarge."""
    if compute_type.startswith("GENERALPURPOSE_"):
        return "General purpose " + compute_type.removeprefix("GENERALPURPOSE_").lower()
    head, _, rest = compute_type.partition("_")
    label = {"POWERPRO": "PowerPro", "GRAPHICSPRO": "GraphicsPro"}.get(head, head.capitalize())
    return f"{label}.{rest.lower().replace('_', '.')}" if rest else label


def plan_violations(
    plan: Any,
    *,
    target_region: str,
    target_account_id: str,
    import_path: str,
    ingestion_process: str,
    compute_type: str,
) -> dict[str, list[str]]:
    """Every rule the plan breaks, as messages by form field; {} when it is fine."""
    violations: dict[str, list[str]] = {}
    if not _well_formed(plan):
        return {"__all__": [MSG_PLAN_DAMAGED]}

    def add(field: str, message: str) -> None:
        violations.setdefault(field, []).append(message)

    bundle = plan.get("bundle")
    if bundle is not None:
        allowed = allowed_bundle_compute_types(import_path, ingestion_process, compute_type)
        for field, message in _bundle_violations(
            bundle, allowed=allowed, image=_image_kind(import_path, ingestion_process, compute_type)
        ):
            add(field, message)
    copies = plan.get("copies", [])
    for message in _copy_violations(copies, target_region=target_region):
        add("copy_regions", message)
    if any(copy["bundle"] for copy in copies) and bundle is None:
        add("copy_bundles", MSG_COPY_BUNDLE_WITHOUT_BUNDLE)
    image_regions = {target_region, *(copy["region"] for copy in copies)}
    for message in _share_violations(
        plan.get("shares", []), target_account_id=target_account_id, image_regions=image_regions
    ):
        add("share_accounts", message)
    return violations


def plan_warnings(plan: Mapping[str, Any]) -> list[str]:
    """Advice that does not block the plan: what the portal cannot check about the receivers."""
    accounts = list(dict.fromkeys(share["account_id"] for share in plan.get("shares", [])))
    if not accounts:
        return []
    return [MSG_SHARE_NEEDS_BYOL_ACCOUNTS.format(accounts=_words(accounts))]


# --- the rules, part by part ------------------------------------------------------------------


def _well_formed(plan: Any) -> bool:
    """The plan's JSON shape: the form always builds it right; a hand-made one may not be."""
    if not isinstance(plan, dict) or not set(plan) <= PLAN_KEYS:
        return False
    bundle = plan.get("bundle")
    if bundle is not None and not (isinstance(bundle, dict) and set(bundle) == BUNDLE_KEYS):
        return False
    copies, shares = plan.get("copies", []), plan.get("shares", [])
    return (
        isinstance(copies, list)
        and all(_has_keys(copy, {"region": str, "bundle": bool}) for copy in copies)
        and isinstance(shares, list)
        and all(_has_keys(share, {"account_id": str, "region": str}) for share in shares)
    )


def _has_keys(item: Any, types: dict[str, type]) -> bool:
    return (
        isinstance(item, dict)
        and set(item) == set(types)
        and all(isinstance(item[key], kind) for key, kind in types.items())
    )


def _image_kind(import_path: str, ingestion_process: str, compute_type: str) -> tuple[str, str]:
    """What decides the image's bundles, in words: (the value, the field's name)."""
    if import_path == rules.ImportPath.IMAGE_BUILDER:
        return compute_type, "compute type"
    return ingestion_process, "ingestion process"


def _bundle_violations(
    bundle: Mapping[str, Any], *, allowed: tuple[str, ...], image: tuple[str, str]
) -> Iterable[tuple[str, str]]:
    name, description = bundle["name"], bundle["description"]
    if not _matches(name, BUNDLE_NAME_RE, BUNDLE_NAME_MAX):
        yield "bundle_name", MSG_BUNDLE_NAME
    if not _matches(description, BUNDLE_DESCRIPTION_RE, BUNDLE_DESCRIPTION_MAX):
        yield "bundle_description", MSG_BUNDLE_DESCRIPTION
    compute = bundle["compute_type"]
    if compute not in COMPUTE_TYPES:
        yield "bundle_compute_type", MSG_BUNDLE_COMPUTE_UNKNOWN
    elif allowed and compute not in allowed:
        message = MSG_BUNDLE_COMPUTE_FOR_IMAGE.format(
            compute=compute_label(compute),
            what=image[1],
            image=image[0],
            allowed=_words([compute_label(c) for c in allowed], last="or"),
        )
        yield "bundle_compute_type", message
    yield from _volume_violations(bundle["root_gb"], bundle["user_gb"])


def _volume_violations(root: Any, user: Any) -> Iterable[tuple[str, str]]:
    """[root, user] must be one of AWS's pairs: the root's size says which user sizes fit."""
    if not _whole_number(root):
        yield "bundle_root_gb", MSG_SIZE_NUMBER
    elif root != SMALL_ROOT_GB and root not in LARGE_ROOT_GB:
        yield "bundle_root_gb", MSG_ROOT_SIZE
    if not _whole_number(user):
        yield "bundle_user_gb", MSG_SIZE_NUMBER
    elif root == SMALL_ROOT_GB and user not in SMALL_ROOT_USER_GB:
        yield "bundle_user_gb", MSG_USER_SIZE_SMALL_ROOT
    elif _whole_number(root) and root in LARGE_ROOT_GB and user not in LARGE_ROOT_USER_GB:
        yield "bundle_user_gb", MSG_USER_SIZE_LARGE_ROOT


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _copy_violations(copies: list[dict[str, Any]], *, target_region: str) -> Iterable[str]:
    if not copies:
        return
    target_partition = partition_of(target_region)
    # https://docs.aws.amazon.com/workspaces/latest/api/API_CopyWorkspaceImage.html
    if target_partition == CHINA:
        yield MSG_COPY_CHINA
        return
    if target_partition == GOVCLOUD:
        yield MSG_COPY_GOVCLOUD
        return
    if len(copies) > MAX_COPIES:
        yield MSG_TOO_MANY_COPIES
    seen: set[str] = set()
    for copy in copies:
        region = copy["region"]
        if region in seen:
            yield MSG_COPY_DUPLICATE.format(region=region)
            continue
        seen.add(region)
        if not (REGION_RE.fullmatch(region) and REGION_CODE_RE.fullmatch(region)):
            yield MSG_COPY_REGION_FORMAT.format(region=region)
        elif region == target_region:
            yield MSG_COPY_TARGET_REGION.format(region=region)
        elif not partition_of(region):
            yield MSG_COPY_UNKNOWN_PARTITION.format(region=region)
        elif partition_of(region) != target_partition:
            yield MSG_COPY_OTHER_PARTITION.format(
                region=region, partition=partition_of(region), target_partition=target_partition
            )


def _share_violations(
    shares: list[dict[str, str]], *, target_account_id: str, image_regions: set[str]
) -> Iterable[str]:
    if not shares:
        return
    # https://docs.aws.amazon.com/workspaces/latest/api/API_UpdateWorkspaceImagePermission.html
    if any(partition_of(region) == GOVCLOUD for region in image_regions):
        yield MSG_SHARE_GOVCLOUD
        return
    accounts = list(dict.fromkeys(share["account_id"] for share in shares))
    if len(accounts) > MAX_SHARE_ACCOUNTS:
        yield MSG_TOO_MANY_SHARE_ACCOUNTS
    for account in accounts:
        if not ACCOUNT_ID_RE.fullmatch(account):
            yield MSG_SHARE_ACCOUNT_FORMAT.format(account=account)
        elif account == target_account_id:
            yield MSG_SHARE_OWN_ACCOUNT.format(account=account)
    pairs = Counter((share["account_id"], share["region"]) for share in shares)
    for account in dict.fromkeys(account for (account, _), count in pairs.items() if count > 1):
        yield MSG_SHARE_DUPLICATE.format(account=account)
    for account, region in pairs:
        if region not in image_regions:
            yield MSG_SHARE_REGION.format(account=account, region=region)


def _matches(text: Any, pattern: re.Pattern[str], max_length: int) -> bool:
    # fullmatch: `$` alone would let a final newline through.
    return isinstance(text, str) and len(text) <= max_length and bool(pattern.fullmatch(text))


def _words(items: list[str], *, last: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"
