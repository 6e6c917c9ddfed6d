"""What a valid import request is: the parameter rules of ImportWorkspaceImage and the
cross-field rules of the WorkSpaces admin guide. Pure Python, no Django models, no I/O.

Sources: https://docs.aws.amazon.com/workspaces/latest/api/API_ImportWorkspaceImage.html
and botocore's service model (botocore/data/workspaces/*/service-2.json.gz), whose patterns
and lengths are copied into the constants below.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Protocol(StrEnum):
    PCOIP = "PCoIP"
    WSP = "WSP (DCV)"
    BYOP = "BYOP"


@dataclass(frozen=True)
class IngestionProcess:
    value: str
    protocol: Protocol
    compute: str
    gpu: bool
    end_of_life: bool = False

    @property
    def byop(self) -> bool:
        return self.protocol is Protocol.BYOP

    @property
    def g4dn(self) -> bool:
        return "_G4DN" in self.value

    @property
    def label(self) -> str:
        suffix = " (end-of-life bundle)" if self.end_of_life else ""
        return f"{self.protocol} protocol, {self.compute} bundles{suffix}"


# Values ending _WSP use WSP (now DCV), _BYOP bring-your-own-protocol, the rest PCoIP.
INGESTION_PROCESSES: dict[str, IngestionProcess] = {
    p.value: p
    for p in (
        IngestionProcess("BYOL_REGULAR", Protocol.PCOIP, "regular (non-GPU)", gpu=False),
        IngestionProcess("BYOL_GRAPHICS", Protocol.PCOIP, "Graphics", gpu=True, end_of_life=True),
        IngestionProcess("BYOL_GRAPHICSPRO", Protocol.PCOIP, "GraphicsPro", gpu=True, end_of_life=True),
        IngestionProcess("BYOL_GRAPHICS_G4DN", Protocol.PCOIP, "Graphics.g4dn", gpu=True),
        IngestionProcess("BYOL_REGULAR_WSP", Protocol.WSP, "regular (non-GPU)", gpu=False),
        IngestionProcess("BYOL_GRAPHICS_G4DN_WSP", Protocol.WSP, "Graphics.g4dn", gpu=True),
        IngestionProcess("BYOL_REGULAR_BYOP", Protocol.BYOP, "regular (non-GPU)", gpu=False),
        IngestionProcess("BYOL_GRAPHICS_G4DN_BYOP", Protocol.BYOP, "Graphics.g4dn", gpu=True),
    )
}

OFFICE_2016 = "Microsoft_Office_2016"
OFFICE_2019 = "Microsoft_Office_2019"
OFFICE_CHOICES = [("", "No Office"), (OFFICE_2016, "Microsoft Office 2016"), (OFFICE_2019, "Microsoft Office 2019")]
WINDOWS_CHOICES = [("10", "Windows 10"), ("11", "Windows 11")]

EC2_IMAGE_ID_RE = re.compile(r"^ami-([a-f0-9]{8}|[a-f0-9]{17})$")
IMAGE_NAME_RE = re.compile(r"^[a-zA-Z0-9_./()\-]+$")
IMAGE_NAME_MAX = 64
IMAGE_DESCRIPTION_RE = re.compile(r"^[a-zA-Z0-9_./() \-]+$")
IMAGE_DESCRIPTION_MAX = 256
# AWS tag character set: letters, digits and spaces, and + - = . _ : / @ (Unicode letters too).
TAG_TEXT_RE = re.compile(r"^[\w +\-=.:/@]*$")
TAG_KEY_MAX = 127
TAG_VALUE_MAX = 255
MAX_TAGS = 50
# Tags the portal adds to every image it imports, so that an image can be traced to its request.
PORTAL_TAG_PREFIX = "byol-portal:"
PORTAL_TAG_KEYS = ("byol-portal:request", "byol-portal:requested-by", "byol-portal:approved-by")
MAX_USER_TAGS = MAX_TAGS - len(PORTAL_TAG_KEYS)

MSG_AMI_FORMAT = "Enter an AMI id like ami-0123456789abcdef0: 'ami-' followed by 8 or 17 lowercase hex digits."
MSG_IMAGE_NAME_FORMAT = "Use only letters, digits and _ . / ( ) - in the image name (no spaces), at most 64 characters."
MSG_IMAGE_DESCRIPTION_FORMAT = (
    "Use only letters, digits, spaces and _ . / ( ) - in the description, at most 256 characters."
)
MSG_TAG_KEY_REQUIRED = "Give this tag a key, or remove the row."
MSG_TAG_KEY_LENGTH = f"Shorten the tag key to at most {TAG_KEY_MAX} characters."
MSG_TAG_VALUE_LENGTH = f"Shorten the tag value to at most {TAG_VALUE_MAX} characters."
MSG_TAG_CHARACTERS = "Tags may use only letters, digits, spaces and + - = . _ : / @."
MSG_TAG_SPACES = "Remove the spaces at the start or end of the tag."
MSG_TAG_AWS_PREFIX = "Tag keys starting with 'aws:' are reserved by AWS: choose another key."
MSG_TAG_PORTAL_PREFIX = (
    f"Tag keys starting with '{PORTAL_TAG_PREFIX}' are added by the portal itself: choose another key."
)
MSG_TAG_DUPLICATE = "Each tag key may appear only once: remove or rename the duplicate '{key}'."
MSG_TOO_MANY_TAGS = (
    f"Use at most {MAX_USER_TAGS} tags: AWS allows {MAX_TAGS} per image and the portal adds "
    f"{len(PORTAL_TAG_KEYS)} of its own."
)
MSG_BYOP_NOT_ALLOWED = (
    "This AWS target is not allow-listed for bring-your-own-protocol (WorkSpaces Core): "
    "choose a PCoIP or WSP process, or ask an admin to enable BYOP for the target."
)
MSG_WIN11_NO_PCOIP = "Windows 11 does not support PCoIP: choose a WSP (DCV) or BYOP ingestion process."
MSG_WIN11_WSP_REGULAR_OFFICE = (
    "Windows 11 with a non-GPU WSP process supports only Microsoft Office 2019: pick Office 2019 or no Office."
)
MSG_WIN11_WSP_GPU_OFFICE = "Windows 11 with a GPU WSP process cannot include Office: choose 'No Office'."
# A warning, not a rule: no AWS page found says Graphics.g4dn images take only Office 2019 (the API
# reference restricts Office only for Windows 11 with WSP). Searched: the ImportWorkspaceImage API
# reference and the BYOL pages of the WorkSpaces admin guide.
MSG_G4DN_OFFICE_2016 = (
    "AWS publishes nothing on Microsoft Office 2016 with Graphics.g4dn images, which the portal used to refuse: "
    "if the import fails, try Office 2019 or no Office."
)
# https://learn.microsoft.com/en-us/deployoffice/endofsupport/resources and
# https://support.microsoft.com/office/end-of-support-for-office-2016-and-office-2019-818c68bc-d5e5-47e5-b52f-ddf636cf8e16
OFFICE_END_OF_SUPPORT = "14 October 2025"
MSG_OFFICE_END_OF_SUPPORT = (
    "Microsoft ended support for {office} on "
    + OFFICE_END_OF_SUPPORT
    + ": it gets no more security updates. Consider 'No Office' here and Microsoft 365 Apps on the image instead."
)
MSG_END_OF_LIFE = (
    "{process} imports into Graphics or GraphicsPro bundles, which AWS has retired: "
    "consider a Graphics.g4dn process instead."
)


@dataclass(frozen=True)
class Violation:
    field: str
    message: str


def tag_violations(tags: Iterable[Mapping[str, str]]) -> list[Violation]:
    """Rules for the set of tags as a whole; each tag's own text is checked by tag_text_violation."""
    violations = []
    seen: set[str] = set()
    count = 0
    for tag in tags:
        count += 1
        key = tag["Key"]
        if key in seen:
            violations.append(Violation("tags", MSG_TAG_DUPLICATE.format(key=key)))
        seen.add(key)
    if count > MAX_USER_TAGS:
        violations.append(Violation("tags", MSG_TOO_MANY_TAGS))
    return violations


def tag_text_violation(text: str, *, is_key: bool) -> str | None:
    """The message for one tag key or value, or None when it is fine."""
    limit, length_message = (TAG_KEY_MAX, MSG_TAG_KEY_LENGTH) if is_key else (TAG_VALUE_MAX, MSG_TAG_VALUE_LENGTH)
    if is_key and not text:
        return MSG_TAG_KEY_REQUIRED
    if len(text) > limit:
        return length_message
    if not TAG_TEXT_RE.fullmatch(text):  # fullmatch: `$` alone would let a final newline through
        return MSG_TAG_CHARACTERS
    if text != text.strip(" "):
        return MSG_TAG_SPACES
    if is_key and text.lower().startswith("aws:"):
        return MSG_TAG_AWS_PREFIX
    if is_key and text.lower().startswith(PORTAL_TAG_PREFIX):
        return MSG_TAG_PORTAL_PREFIX
    return None


def combination_violations(
    *, windows_version: str, ingestion_process: str, office: str, byop_allowed: bool
) -> list[Violation]:
    """Cross-field rules between Windows version, ingestion process, Office and the target."""
    process = INGESTION_PROCESSES.get(ingestion_process)
    if process is None:
        return []
    violations = []
    if process.byop and not byop_allowed:
        violations.append(Violation("ingestion_process", MSG_BYOP_NOT_ALLOWED))
    if windows_version == "11" and process.protocol is Protocol.PCOIP:
        violations.append(Violation("ingestion_process", MSG_WIN11_NO_PCOIP))
    if windows_version == "11" and process.protocol is Protocol.WSP and office:
        if process.gpu:
            violations.append(Violation("office", MSG_WIN11_WSP_GPU_OFFICE))
        elif office != OFFICE_2019:
            violations.append(Violation("office", MSG_WIN11_WSP_REGULAR_OFFICE))
    return violations


def office_label(office: str) -> str:
    return dict(OFFICE_CHOICES).get(office, office)


def warnings_for(*, ingestion_process: str, office: str = "") -> list[str]:
    """Advice that does not block a request."""
    process = INGESTION_PROCESSES.get(ingestion_process)
    warnings = []
    if process is not None and process.end_of_life:
        warnings.append(MSG_END_OF_LIFE.format(process=process.value))
    if office in (OFFICE_2016, OFFICE_2019):
        warnings.append(MSG_OFFICE_END_OF_SUPPORT.format(office=office_label(office)))
    if process is not None and process.g4dn and office == OFFICE_2016:
        warnings.append(MSG_G4DN_OFFICE_2016)
    return warnings


# --- the Image Builder path: ImportCustomWorkspaceImage -----------------------------------------
# https://docs.aws.amazon.com/workspaces/latest/api/API_ImportCustomWorkspaceImage.html and the
# operation's shapes in botocore's service model (patterns copied below).


class ImportPath(StrEnum):
    CLASSIC = "classic"
    IMAGE_BUILDER = "image_builder"


IMPORT_PATH_CHOICES = [
    (ImportPath.CLASSIC.value, "Classic import (ImportWorkspaceImage)"),
    (ImportPath.IMAGE_BUILDER.value, "Through EC2 Image Builder (ImportCustomWorkspaceImage)"),
]
COMPUTE_TYPE_CHOICES = [
    ("BASE", "Base (no GPU)"),
    ("GRAPHICS_G4DN", "Graphics.g4dn (GPU)"),
    ("GRAPHICS_G6", "Graphics.g6 (GPU)"),
    ("GRAPHICS_G7", "Graphics.g7 (GPU)"),
]
PROTOCOL_CHOICES = [("DCV", "DCV (formerly WSP)"), ("PCOIP", "PCoIP"), ("BYOP", "Bring your own protocol (BYOP)")]
SOURCE_AMI, SOURCE_IMPORT_TASK, SOURCE_IMAGE_VERSION = "ami", "import_task", "image_version"
SOURCE_CHOICES = [
    (SOURCE_AMI, "An AMI (Ec2ImageId)"),
    (SOURCE_IMPORT_TASK, "A completed VM import task (Ec2ImportTaskId)"),
    (SOURCE_IMAGE_VERSION, "An EC2 Image Builder image version (ImageBuildVersionArn)"),
]
VALIDATION_MODE_CHOICES = [
    ("", "AWS's default"),
    ("CUSTOMER_MANAGED", "Customer managed: you validated the image"),
    ("SERVICE_MANAGED", "Service managed: AWS validates the image"),
]
# G6 and G7 compute streams with DCV only, as their WorkSpaces bundles do; the portal's rule,
# from AWS's announcements of these bundles (not stated on the API reference page).
DCV_ONLY_COMPUTE = ("GRAPHICS_G6", "GRAPHICS_G7")

EC2_IMPORT_TASK_ID_RE = re.compile(r"^import-ami\-([a-zA-Z0-9]{8}|[a-zA-Z0-9]{17})$")
IMAGE_BUILD_VERSION_ARN_RE = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/"
    r"(?:(?:([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x))|(?:[0-9]+\.[0-9]+\.[0-9]+/[0-9]+))$"
)
INFRASTRUCTURE_CONFIGURATION_ARN_RE = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):infrastructure-configuration/[a-z0-9-_]+$"
)
ARN_MAX = 2048

MSG_IMPORT_TASK_FORMAT = "Enter a VM import task id like import-ami-0123456789abcdef0."
MSG_IMAGE_VERSION_FORMAT = (
    "Enter an Image Builder image version ARN like "
    "arn:aws:imagebuilder:eu-west-1:123456789012:image/byol-windows-11/1.0.0/1."
)
MSG_INFRASTRUCTURE_FORMAT = (
    "Enter an Image Builder infrastructure configuration ARN like "
    "arn:aws:imagebuilder:eu-west-1:123456789012:infrastructure-configuration/byol-import."
)
MSG_SOURCE_REQUIRED = "Enter the {source} to import from."
MSG_WIN11_NO_PCOIP_PROTOCOL = "Windows 11 does not support PCoIP: choose DCV or BYOP."
MSG_BYOP_PROTOCOL_NOT_ALLOWED = (
    "This AWS target is not allow-listed for bring-your-own-protocol (WorkSpaces Core): choose DCV or PCoIP, "
    "or ask an admin to enable BYOP for the target."
)
MSG_DCV_ONLY_COMPUTE = "{compute} streams with DCV only: choose DCV, or another compute type."
MSG_ARN_ELSEWHERE = (
    "This {what} is in {region}, account {account}; the target is {target_region}, account {target_account}: "
    "use one in the target's region and account."
)
MSG_VERSION_ELSEWHERE = "This image version is in {region}; the target is in {target_region}: use one in its region."


def arn_region_and_account(arn: str) -> tuple[str, str]:
    parts = arn.split(":", 5)
    return (parts[3], parts[4]) if len(parts) == 6 else ("", "")


def image_builder_violations(
    *,
    windows_version: str,
    compute_type: str,
    protocol: str,
    source_kind: str,
    source_value: str,
    infrastructure_configuration_arn: str,
    target_region: str,
    target_account: str,
    byop_allowed: bool,
) -> list[Violation]:
    """Cross-field rules of the Image Builder path, one message per field."""
    violations = []
    if protocol == "PCOIP" and windows_version == "11":
        violations.append(Violation("protocol", MSG_WIN11_NO_PCOIP_PROTOCOL))
    elif protocol == "BYOP" and not byop_allowed:
        violations.append(Violation("protocol", MSG_BYOP_PROTOCOL_NOT_ALLOWED))
    elif compute_type in DCV_ONLY_COMPUTE and protocol and protocol != "DCV":
        compute = dict(COMPUTE_TYPE_CHOICES)[compute_type]
        violations.append(Violation("protocol", MSG_DCV_ONLY_COMPUTE.format(compute=compute)))
    if infrastructure_configuration_arn and target_region:
        region, account = arn_region_and_account(infrastructure_configuration_arn)
        if (region, account) != (target_region, target_account):
            message = MSG_ARN_ELSEWHERE.format(
                what="infrastructure configuration",
                region=region,
                account=account,
                target_region=target_region,
                target_account=target_account,
            )
            violations.append(Violation("infrastructure_configuration_arn", message))
    if source_kind == SOURCE_IMAGE_VERSION and source_value and target_region:
        region, _ = arn_region_and_account(source_value)
        if region != target_region:
            message = MSG_VERSION_ELSEWHERE.format(region=region, target_region=target_region)
            violations.append(Violation("image_build_version_arn", message))
    return violations


# DescribeCustomWorkspaceImageImport's stages, in plain words, in the order an import passes them.
IMPORT_STAGES = {
    "PENDING": "Waiting to start",
    "IN_PROGRESS": "Started",
    "PROCESSING_SOURCE_IMAGE": "Processing the source image",
    "IMAGE_TESTING_START": "Starting the image tests",
    "UPDATING_OPERATING_SYSTEM": "Updating Windows",
    "IMAGE_COMPATIBILITY_CHECKING": "Checking compatibility with WorkSpaces",
    "IMAGE_TESTING_GENERALIZATION": "Testing generalization (Sysprep)",
    "CREATING_TEST_INSTANCE": "Creating a test instance",
    "INSTALLING_COMPONENTS": "Installing the WorkSpaces components",
    "GENERALIZING": "Generalizing the image",
    "VALIDATING": "Validating the image",
    "PUBLISHING": "Publishing the WorkSpaces image",
    "COMPLETED": "Completed",
    "ERROR": "Failed",
}


def stage_label(stage: str) -> str:
    return IMPORT_STAGES.get(stage, stage.replace("_", " ").capitalize())


# --- the delivery plan's rollout ---------------------------------------------------------------


class Rollout(StrEnum):
    """How a request's delivery plan stands (ImportRequest.rollout)."""

    NONE = ""
    RUNNING = "running"
    DONE = "done"
    INCOMPLETE = "incomplete"


ROLLOUT_CHOICES = [
    (Rollout.NONE.value, "No rollout"),
    (Rollout.RUNNING.value, "Rollout running"),
    (Rollout.DONE.value, "Rollout done"),
    (Rollout.INCOMPLETE.value, "Rollout incomplete"),
]


# The most approvers a target's policy may ask for (AwsTarget.approvals_required).
MAX_APPROVALS_REQUIRED = 5
