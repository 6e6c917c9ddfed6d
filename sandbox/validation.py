"""Server-side parameter checks for the WorkSpaces operations the sandbox answers itself.

The constraints are those of botocore's service model for WorkSpaces 2015-04-08
(``botocore/data/workspaces/2015-04-08/service-2.json.gz``) plus the limits its documentation
states in prose (50 tags, one application). boto3 checks the model client-side, but a client
built with ``Config(parameter_validation=False)``, or any other SDK, relies on the server, as it
does on AWS. Each check returns the problems it found as sentences; none means valid.
"""

import re
from typing import Any

EC2_IMAGE_ID = re.compile(r"^ami\-([a-f0-9]{8}|[a-f0-9]{17})$")
IMAGE_NAME = re.compile(r"^[a-zA-Z0-9_./()\-]+$")
IMAGE_DESCRIPTION = re.compile(r"^[a-zA-Z0-9_./() -]+$")
WORKSPACE_IMAGE_ID = re.compile(r"wsi-[0-9a-z]{9,63}$")

INGESTION_PROCESSES = (
    "BYOL_REGULAR",
    "BYOL_GRAPHICS",
    "BYOL_GRAPHICSPRO",
    "BYOL_GRAPHICS_G4DN",
    "BYOL_REGULAR_WSP",
    "BYOL_GRAPHICS_G4DN_WSP",
    "BYOL_REGULAR_BYOP",
    "BYOL_GRAPHICS_G4DN_BYOP",
)
APPLICATIONS = ("Microsoft_Office_2016", "Microsoft_Office_2019")
IMAGE_TYPES = ("OWNED", "SHARED")

# "Each WorkSpaces resource can have a maximum of 50 tags." (ImportWorkspaceImage, Tags)
MAX_TAGS = 50
# "Although this parameter is an array, only one item is allowed at this time." (Applications)
MAX_APPLICATIONS = 1
# WorkspaceImageIdList and Limit in the model: max 25.
MAX_IMAGE_IDS = 25
MAX_RESULTS = 25

IMPORT_REQUIRED = ("Ec2ImageId", "IngestionProcess", "ImageName", "ImageDescription")


def _check_string(
    name: str, value: Any, *, min_len: int, max_len: int, pattern: re.Pattern[str] | None = None
) -> list[str]:
    if not isinstance(value, str):
        return [f"{name} must be a string, not {type(value).__name__}"]
    if not min_len <= len(value) <= max_len:
        return [f"{name} must be {min_len} to {max_len} characters long, not {len(value)}"]
    if pattern is not None and not pattern.match(value):
        return [f"{name} {value!r} does not match the pattern {pattern.pattern}"]
    return []


def _check_enum(name: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    if value not in allowed:
        return [f"{name} {value!r} is not one of {', '.join(allowed)}"]
    return []


def _check_tag(index: int, tag: Any) -> list[str]:
    where = f"Tags[{index}]"
    if not isinstance(tag, dict):
        return [f"{where} must be an object with Key and Value"]
    if "Key" not in tag:
        return [f"{where}.Key is required"]
    problems = _check_string(f"{where}.Key", tag["Key"], min_len=1, max_len=127)
    if not problems and tag["Key"].lower().startswith("aws:"):
        # "aws:" is reserved for AWS in every service's tags:
        # https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html
        problems.append(f"{where}.Key {tag['Key']!r} uses the reserved prefix aws:")
    if "Value" in tag:
        problems += _check_string(f"{where}.Value", tag["Value"], min_len=0, max_len=255)
    return problems


def _check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        return ["Tags must be a list of {Key, Value} objects"]
    if len(tags) > MAX_TAGS:
        return [f"Tags has {len(tags)} tags; a WorkSpaces resource can have at most {MAX_TAGS}"]
    return [problem for index, tag in enumerate(tags) for problem in _check_tag(index, tag)]


def _check_applications(applications: Any) -> list[str]:
    if not isinstance(applications, list) or not 1 <= len(applications) <= MAX_APPLICATIONS:
        return [f"Applications must be a list of exactly {MAX_APPLICATIONS} item when given (only one is allowed)"]
    return [
        p for index, app in enumerate(applications) for p in _check_enum(f"Applications[{index}]", app, APPLICATIONS)
    ]


def import_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with an ImportWorkspaceImage request, in the order of the model's members."""
    problems = [f"{key} is required" for key in IMPORT_REQUIRED if params.get(key) is None]
    if params.get("Ec2ImageId") is not None:
        problems += _check_string("Ec2ImageId", params["Ec2ImageId"], min_len=1, max_len=21, pattern=EC2_IMAGE_ID)
    if params.get("IngestionProcess") is not None:
        problems += _check_enum("IngestionProcess", params["IngestionProcess"], INGESTION_PROCESSES)
    if params.get("ImageName") is not None:
        problems += _check_string("ImageName", params["ImageName"], min_len=1, max_len=64, pattern=IMAGE_NAME)
    if params.get("ImageDescription") is not None:
        problems += _check_string(
            "ImageDescription", params["ImageDescription"], min_len=1, max_len=256, pattern=IMAGE_DESCRIPTION
        )
    if params.get("Tags") is not None:
        problems += _check_tags(params["Tags"])
    if params.get("Applications") is not None:
        problems += _check_applications(params["Applications"])
    return problems


def _check_image_ids(image_ids: Any) -> list[str]:
    if not isinstance(image_ids, list) or not 1 <= len(image_ids) <= MAX_IMAGE_IDS:
        count = len(image_ids) if isinstance(image_ids, list) else "no list"
        return [f"ImageIds must hold 1 to {MAX_IMAGE_IDS} image ids, not {count}"]
    return [
        problem
        for index, image_id in enumerate(image_ids)
        for problem in _check_string(f"ImageIds[{index}]", image_id, min_len=1, max_len=67, pattern=WORKSPACE_IMAGE_ID)
    ]


def _check_max_results(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
        return [f"MaxResults must be a whole number from 1 to {MAX_RESULTS}, not {value!r}"]
    return []


def describe_images_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with a DescribeWorkspaceImages request."""
    problems: list[str] = []
    if params.get("ImageIds") is not None:
        problems += _check_image_ids(params["ImageIds"])
    if params.get("ImageType") is not None:
        problems += _check_enum("ImageType", params["ImageType"], IMAGE_TYPES)
    if params.get("MaxResults") is not None:
        problems += _check_max_results(params["MaxResults"])
    if params.get("NextToken") is not None:
        problems += _check_string("NextToken", params["NextToken"], min_len=1, max_len=2048)
    return problems


def delete_image_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with a DeleteWorkspaceImage request: ImageId is required and a WorkspaceImageId."""
    if params.get("ImageId") is None:
        return ["ImageId is required"]
    return _check_string("ImageId", params["ImageId"], min_len=1, max_len=67, pattern=WORKSPACE_IMAGE_ID)


# --- ImportCustomWorkspaceImage and DescribeCustomWorkspaceImageImport ------------------------

COMPUTE_TYPES = ("BASE", "GRAPHICS_G4DN", "GRAPHICS_G6", "GRAPHICS_G7")
PROTOCOLS = ("PCOIP", "DCV", "BYOP")
PLATFORMS = ("WINDOWS",)
OS_VERSIONS = ("Windows_10", "Windows_11")
VALIDATION_MODES = ("CUSTOMER_MANAGED", "SERVICE_MANAGED")
INFRASTRUCTURE_CONFIGURATION_ARN = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):infrastructure-configuration/[a-z0-9-_]+$"
)
EC2_IMPORT_TASK_ID = re.compile(r"^import-ami\-([a-zA-Z0-9]{8}|[a-zA-Z0-9]{17})$")
IMAGE_BUILD_VERSION_ARN = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/"
    r"(?:(?:([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x))|(?:[0-9]+\.[0-9]+\.[0-9]+/[0-9]+))$"
)
CUSTOM_IMPORT_REQUIRED = (
    "ImageName",
    "ImageDescription",
    "ComputeType",
    "Protocol",
    "ImageSource",
    "InfrastructureConfigurationArn",
    "Platform",
    "OsVersion",
)
IMAGE_SOURCE_MEMBERS = ("Ec2ImportTaskId", "ImageBuildVersionArn", "Ec2ImageId")


def _check_image_source(source: Any) -> list[str]:
    # ImageSourceIdentifier is a union in the model: exactly one member is set.
    if not isinstance(source, dict):
        return ["ImageSource must be an object with one of " + ", ".join(IMAGE_SOURCE_MEMBERS)]
    unknown = sorted(set(source) - set(IMAGE_SOURCE_MEMBERS))
    if unknown:
        return [f"ImageSource has unknown members {unknown}"]
    given = [key for key in IMAGE_SOURCE_MEMBERS if source.get(key) is not None]
    if len(given) != 1:
        return [f"ImageSource must set exactly one of {', '.join(IMAGE_SOURCE_MEMBERS)}, not {len(given)}"]
    key = given[0]
    if key == "Ec2ImportTaskId":
        return _check_string(
            "ImageSource.Ec2ImportTaskId", source[key], min_len=19, max_len=28, pattern=EC2_IMPORT_TASK_ID
        )
    if key == "ImageBuildVersionArn":
        return _check_string(
            "ImageSource.ImageBuildVersionArn", source[key], min_len=1, max_len=2048, pattern=IMAGE_BUILD_VERSION_ARN
        )
    return _check_string("ImageSource.Ec2ImageId", source[key], min_len=1, max_len=21, pattern=EC2_IMAGE_ID)


def custom_import_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with an ImportCustomWorkspaceImage request, in the order of the model's members."""
    problems = [f"{key} is required" for key in CUSTOM_IMPORT_REQUIRED if params.get(key) is None]
    if params.get("ImageName") is not None:
        problems += _check_string("ImageName", params["ImageName"], min_len=1, max_len=64, pattern=IMAGE_NAME)
    if params.get("ImageDescription") is not None:
        problems += _check_string(
            "ImageDescription", params["ImageDescription"], min_len=1, max_len=256, pattern=IMAGE_DESCRIPTION
        )
    for name, allowed in (
        ("ComputeType", COMPUTE_TYPES),
        ("Protocol", PROTOCOLS),
        ("Platform", PLATFORMS),
        ("OsVersion", OS_VERSIONS),
        ("ImageValidationMode", VALIDATION_MODES),
    ):
        if params.get(name) is not None:
            problems += _check_enum(name, params[name], allowed)
    if params.get("ImageSource") is not None:
        problems += _check_image_source(params["ImageSource"])
    if params.get("InfrastructureConfigurationArn") is not None:
        problems += _check_string(
            "InfrastructureConfigurationArn",
            params["InfrastructureConfigurationArn"],
            min_len=1,
            max_len=2048,
            pattern=INFRASTRUCTURE_CONFIGURATION_ARN,
        )
    if params.get("Tags") is not None:
        problems += _check_tags(params["Tags"])
    return problems


def describe_custom_import_request_problems(params: dict[str, Any]) -> list[str]:
    if params.get("ImageId") is None:
        return ["ImageId is required"]
    return _check_string("ImageId", params["ImageId"], min_len=1, max_len=67, pattern=WORKSPACE_IMAGE_ID)


# --- The rollout: bundles, copies and sharing ---------------------------------------------

BUNDLE_NAME = re.compile(r"^[a-zA-Z0-9_./()\-]+$")
BUNDLE_DESCRIPTION = re.compile(r"^[a-zA-Z0-9_./() -]+$")
BUNDLE_ID = re.compile(r"^wsb-[0-9a-z]{8,63}$")
REGION = re.compile(r"^[-0-9a-z]{1,31}$")
AWS_ACCOUNT = re.compile(r"^[0-9]{12}$")
# The model's Compute enum (ComputeType.Name).
COMPUTE_NAMES = (
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
# BundleIdList: 1 to 25 ids.
MAX_BUNDLE_IDS = 25
CREATE_BUNDLE_REQUIRED = ("BundleName", "BundleDescription", "ImageId", "ComputeType", "UserStorage")
COPY_REQUIRED = ("Name", "SourceImageId", "SourceRegion")
PERMISSION_REQUIRED = ("ImageId", "AllowCopyImage", "SharedAccountId")


def _check_image_id(name: str, value: Any) -> list[str]:
    return _check_string(name, value, min_len=1, max_len=67, pattern=WORKSPACE_IMAGE_ID)


def _check_storage(name: str, storage: Any) -> list[str]:
    # RootStorage and UserStorage: {"Capacity": NonEmptyString}, Capacity required.
    if not isinstance(storage, dict):
        return [f"{name} must be an object with Capacity"]
    if storage.get("Capacity") is None:
        return [f"{name}.Capacity is required"]
    return _check_string(f"{name}.Capacity", storage["Capacity"], min_len=1, max_len=2048)


def create_bundle_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with a CreateWorkspaceBundle request, in the order of the model's members."""
    problems = [f"{key} is required" for key in CREATE_BUNDLE_REQUIRED if params.get(key) is None]
    if params.get("BundleName") is not None:
        problems += _check_string("BundleName", params["BundleName"], min_len=1, max_len=64, pattern=BUNDLE_NAME)
    if params.get("BundleDescription") is not None:
        problems += _check_string(
            "BundleDescription", params["BundleDescription"], min_len=1, max_len=255, pattern=BUNDLE_DESCRIPTION
        )
    if params.get("ImageId") is not None:
        problems += _check_image_id("ImageId", params["ImageId"])
    compute = params.get("ComputeType")
    if compute is not None:
        if not isinstance(compute, dict) or compute.get("Name") is None:
            # ComputeType's Name is optional in the model, but a bundle without a compute type means nothing.
            problems.append("ComputeType must be an object with a Name")
        else:
            problems += _check_enum("ComputeType.Name", compute["Name"], COMPUTE_NAMES)
    if params.get("UserStorage") is not None:
        problems += _check_storage("UserStorage", params["UserStorage"])
    if params.get("RootStorage") is not None:
        problems += _check_storage("RootStorage", params["RootStorage"])
    if params.get("Tags") is not None:
        problems += _check_tags(params["Tags"])
    return problems


def describe_bundles_request_problems(params: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    bundle_ids = params.get("BundleIds")
    if bundle_ids is not None:
        if not isinstance(bundle_ids, list) or not 1 <= len(bundle_ids) <= MAX_BUNDLE_IDS:
            count = len(bundle_ids) if isinstance(bundle_ids, list) else "no list"
            problems.append(f"BundleIds must hold 1 to {MAX_BUNDLE_IDS} bundle ids, not {count}")
        else:
            problems += [
                problem
                for index, bundle_id in enumerate(bundle_ids)
                for problem in _check_string(f"BundleIds[{index}]", bundle_id, min_len=1, max_len=67, pattern=BUNDLE_ID)
            ]
    if params.get("Owner") is not None:
        problems += _check_string("Owner", params["Owner"], min_len=1, max_len=2048)
    # "You can filter the results using either bundle ID or owner, but not both." (the model)
    if bundle_ids is not None and params.get("Owner") is not None:
        problems.append("BundleIds and Owner cannot be combined: filter by one of them")
    if params.get("NextToken") is not None:
        problems += _check_string("NextToken", params["NextToken"], min_len=1, max_len=2048)
    return problems


def delete_bundle_request_problems(params: dict[str, Any]) -> list[str]:
    # BundleId is optional in the model; a delete without one has nothing to delete.
    if params.get("BundleId") is None:
        return ["BundleId is required"]
    return _check_string("BundleId", params["BundleId"], min_len=1, max_len=67, pattern=BUNDLE_ID)


def copy_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with a CopyWorkspaceImage request, in the order of the model's members."""
    problems = [f"{key} is required" for key in COPY_REQUIRED if params.get(key) is None]
    if params.get("Name") is not None:
        problems += _check_string("Name", params["Name"], min_len=1, max_len=64, pattern=IMAGE_NAME)
    if params.get("Description") is not None:
        problems += _check_string(
            "Description", params["Description"], min_len=1, max_len=256, pattern=IMAGE_DESCRIPTION
        )
    if params.get("SourceImageId") is not None:
        problems += _check_image_id("SourceImageId", params["SourceImageId"])
    if params.get("SourceRegion") is not None:
        problems += _check_string("SourceRegion", params["SourceRegion"], min_len=1, max_len=31, pattern=REGION)
    if params.get("Tags") is not None:
        problems += _check_tags(params["Tags"])
    return problems


def update_permission_request_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with an UpdateWorkspaceImagePermission request."""
    problems = [f"{key} is required" for key in PERMISSION_REQUIRED if params.get(key) is None]
    if params.get("ImageId") is not None:
        problems += _check_image_id("ImageId", params["ImageId"])
    if params.get("AllowCopyImage") is not None and not isinstance(params["AllowCopyImage"], bool):
        problems.append(f"AllowCopyImage must be true or false, not {params['AllowCopyImage']!r}")
    if params.get("SharedAccountId") is not None:
        problems += _check_string(
            "SharedAccountId", params["SharedAccountId"], min_len=12, max_len=12, pattern=AWS_ACCOUNT
        )
    return problems


def describe_permissions_request_problems(params: dict[str, Any]) -> list[str]:
    problems = (
        ["ImageId is required"] if params.get("ImageId") is None else _check_image_id("ImageId", params["ImageId"])
    )
    if params.get("MaxResults") is not None:
        problems += _check_max_results(params["MaxResults"])
    if params.get("NextToken") is not None:
        problems += _check_string("NextToken", params["NextToken"], min_len=1, max_len=2048)
    return problems
