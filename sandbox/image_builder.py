"""The EC2 Image Builder lookups a pre-flight of ImportCustomWorkspaceImage makes, which moto lacks.

moto 5.2.5 has no Image Builder backend at all (its dispatcher answers every ``imagebuilder``
call with an HTML 500), so the sandbox answers GetInfrastructureConfiguration, GetImage and
ListInfrastructureConfigurations itself, from the seeds in ``seed.py``, for whichever account
and region call. Any other Image Builder operation is refused as not implemented.

Shapes, URIs and error shapes are those of botocore's model ``imagebuilder/2019-12-02`` (protocol
rest-json): GET with the ARN in the query string, POST with a JSON body, and errors as HTTP
status of the error shape plus ``x-amzn-ErrorType`` and a JSON ``{"message"}`` body.

Which error AWS sends when, as far as it is known:

* an ARN that does not match the model's pattern: InvalidParameterValueException (400), as AWS
  answers GetComponent (https://github.com/boto/boto3/issues/2224), though the model does not
  list it for these operations;
* an ARN of a resource that does not exist, or of another account or region:
  ResourceNotFoundException (404), with a message saying it "cannot be found", as the AWS
  provider for Terraform expects of GetInfrastructureConfiguration; not listed for these
  operations in the model either, but a shape of the service;
* a required parameter missing, or a body that is not a JSON object: InvalidRequestException
  (400), listed for all three; the sandbox's choice, AWS documents no case;
* a nextToken the sandbox did not issue: InvalidPaginationTokenException (400), listed for
  ListInfrastructureConfigurations.
"""

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from .seed import (
    SEED_IMAGE_BUILDER_VERSIONS,
    SEED_IMAGES,
    SEED_INFRASTRUCTURE_CONFIGURATIONS,
    SeedInfrastructure,
    SeedSource,
)

# Patterns of InfrastructureConfigurationArn and ImageVersionArnOrBuildVersionArn in the model.
INFRASTRUCTURE_CONFIGURATION_ARN = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):infrastructure-configuration/[a-z0-9-_]+$"
)
IMAGE_VERSION_OR_BUILD_ARN = re.compile(
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/"
    r"(?:(?:([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x))|(?:[0-9]+\.[0-9]+\.[0-9]+/[0-9]+))$"
)
# RestrictedInteger (maxResults), FilterList, FilterName, FilterValues and PaginationToken.
MAX_RESULTS = (1, 100)
MAX_FILTERS = 10
MAX_FILTER_VALUES = 10
FILTER_NAME = re.compile(r"^[a-zA-Z]{1,1024}$")
# ListInfrastructureConfigurations filters on the name only (its documentation for `filters`).
INFRASTRUCTURE_FILTERS = ("name",)

ERROR_STATUS = {
    "InvalidParameterValueException": 400,
    "InvalidRequestException": 400,
    "InvalidPaginationTokenException": 400,
    "ResourceNotFoundException": 404,
    "ServiceException": 500,
}
# Not an Image Builder error: what the sandbox answers for an operation it does not serve.
NOT_IMPLEMENTED = "NotImplemented"

_AMI_NAMES = {image.ami_id: image.name for image in SEED_IMAGES}
_AMI_DESCRIPTIONS = {image.ami_id: image.description for image in SEED_IMAGES}


class ImageBuilderError(Exception):
    """An Image Builder error, answered as rest-json does: the shape's status, x-amzn-ErrorType."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = ERROR_STATUS.get(code, 501 if code == NOT_IMPLEMENTED else 400)


@dataclass(frozen=True)
class ImageBuilderRequest:
    operation: str
    query_string: str
    body: bytes
    account_id: str
    region: str


def _date(when: datetime) -> str:
    # DateTime in the model is a string; Image Builder writes ISO 8601 with milliseconds and Z.
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _arn(kind: str, name: str, *, account_id: str, region: str) -> str:
    return f"arn:aws:imagebuilder:{region}:{account_id}:{kind}/{name}"


def _invalid_value(parameter: str, value: Any, pattern: re.Pattern[str]) -> ImageBuilderError:
    return ImageBuilderError(
        "InvalidParameterValueException",
        f"The value {value!r} of parameter '{parameter}' is not valid: it must match the pattern {pattern.pattern}",
    )


def _not_found(arn: str) -> ImageBuilderError:
    return ImageBuilderError("ResourceNotFoundException", f"The resource {arn} cannot be found.")


def _query_parameter(query_string: str, name: str, pattern: re.Pattern[str]) -> str:
    values = parse_qs(query_string, keep_blank_values=True).get(name)
    if not values:
        raise ImageBuilderError("InvalidRequestException", f"The parameter '{name}' is required.")
    value = values[0]
    if not 1 <= len(value) <= 2048 or not pattern.match(value):
        raise _invalid_value(name, value, pattern)
    return value


def _in_caller_scope(arn: str, *, account_id: str, region: str) -> str | None:
    """The resource part of an ARN the model's pattern accepted, if it is the caller's; else None."""
    _, partition, _, arn_region, arn_account, resource = arn.split(":", 5)
    if (partition, arn_region, arn_account) != ("aws", region, account_id):
        return None
    return resource


# --- image versions ----------------------------------------------------------------------------


def _semantic(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def image_version_named(arn: str, *, account_id: str, region: str) -> tuple[str, SeedSource] | None:
    """The seeded build ("<name>/<version>/<build>", seed) an image ARN the model's pattern
    accepted stands for in the caller's account and region, or None.

    A build version ARN names one build. A version ARN (no build, "x" allowed for any part of
    the version) stands for the newest matching build, whatever its state: the sandbox's choice,
    AWS does not document which build GetImage answers with then.
    """
    resource = _in_caller_scope(arn, account_id=account_id, region=region)
    if resource is None:
        return None
    _, name, rest = resource.split("/", 2)
    if rest.count("/") == 1:
        key = f"{name}/{rest}"
        seed = SEED_IMAGE_BUILDER_VERSIONS.get(key)
        return (key, seed) if seed is not None else None
    wanted = rest.split(".")
    matches = []
    for key, seed in SEED_IMAGE_BUILDER_VERSIONS.items():
        seed_name, version, build = key.split("/")
        if seed_name == name and all(w in ("x", have) for w, have in zip(wanted, version.split("."), strict=True)):
            matches.append(((_semantic(version), int(build)), key, seed))
    if not matches:
        return None
    _, key, seed = max(matches, key=lambda match: match[0])
    return key, seed


def _image(key: str, seed: SeedSource, *, account_id: str, region: str) -> dict[str, Any]:
    name, version, build = key.split("/")
    state: dict[str, Any] = {"status": seed.status}
    if seed.message:
        state["reason"] = seed.message
    image: dict[str, Any] = {
        "arn": _arn("image", key, account_id=account_id, region=region),
        "type": "AMI",
        "name": name,
        "version": f"{version}/{build}",
        "platform": "Windows",
        "osVersion": seed.os_version,
        "state": state,
        "dateCreated": _date(seed.created),
        "buildType": "USER_INITIATED",
        "imageSource": "CUSTOM",
    }
    if seed.ami_id is not None:
        ami: dict[str, Any] = {
            "region": region,
            "image": seed.ami_id,
            "name": _AMI_NAMES.get(seed.ami_id, name),
            "state": {"status": "AVAILABLE"},
            "accountId": account_id,
        }
        if seed.ami_id in _AMI_DESCRIPTIONS:
            ami["description"] = _AMI_DESCRIPTIONS[seed.ami_id]
        image["outputResources"] = {"amis": [ami]}
    return image


def get_image(request: ImageBuilderRequest) -> dict[str, Any]:
    arn = _query_parameter(request.query_string, "imageBuildVersionArn", IMAGE_VERSION_OR_BUILD_ARN)
    found = image_version_named(arn, account_id=request.account_id, region=request.region)
    if found is None:
        raise _not_found(arn)
    key, seed = found
    return {"image": _image(key, seed, account_id=request.account_id, region=request.region)}


# --- infrastructure configurations -------------------------------------------------------------


def _infrastructure(name: str, seed: SeedInfrastructure, *, account_id: str, region: str) -> dict[str, Any]:
    return {
        "arn": _arn("infrastructure-configuration", name, account_id=account_id, region=region),
        "name": name,
        "description": seed.description,
        "instanceTypes": list(seed.instance_types),
        "instanceProfileName": seed.instance_profile,
        "terminateInstanceOnFailure": True,
        "dateCreated": _date(seed.created),
        "instanceMetadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2},
    }


def _summary(configuration: dict[str, Any]) -> dict[str, Any]:
    keys = ("arn", "name", "description", "dateCreated", "instanceTypes", "instanceProfileName")
    return {key: configuration[key] for key in keys}


def get_infrastructure_configuration(request: ImageBuilderRequest) -> dict[str, Any]:
    arn = _query_parameter(request.query_string, "infrastructureConfigurationArn", INFRASTRUCTURE_CONFIGURATION_ARN)
    resource = _in_caller_scope(arn, account_id=request.account_id, region=request.region)
    name = resource.partition("/")[2] if resource is not None else ""
    seed = SEED_INFRASTRUCTURE_CONFIGURATIONS.get(name)
    if seed is None:
        raise _not_found(arn)
    return {
        "infrastructureConfiguration": _infrastructure(name, seed, account_id=request.account_id, region=request.region)
    }


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body or b"{}")
    except ValueError as error:
        raise ImageBuilderError("InvalidRequestException", f"The request body is not valid JSON: {error}") from error
    if not isinstance(params, dict):
        raise ImageBuilderError("InvalidRequestException", "The request body must be a JSON object.")
    return params


def _filters(value: Any) -> dict[str, set[str]]:
    """{filter name: accepted values} of a FilterList the model and the operation accept."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FILTERS:
        raise ImageBuilderError(
            "InvalidParameterValueException", f"filters must be a list of 1 to {MAX_FILTERS} filters."
        )
    wanted: dict[str, set[str]] = {}
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(name, str) or not FILTER_NAME.match(name):
            raise _invalid_value("filters.name", name, FILTER_NAME)
        if name not in INFRASTRUCTURE_FILTERS:
            raise ImageBuilderError(
                "InvalidParameterValueException",
                f"The filter name '{name}' is not valid here: use one of {', '.join(INFRASTRUCTURE_FILTERS)}.",
            )
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= MAX_FILTER_VALUES
            or not all(isinstance(v, str) and v for v in values)
        ):
            raise ImageBuilderError(
                "InvalidParameterValueException",
                f"The values of filter '{name}' must be a list of 1 to {MAX_FILTER_VALUES} non-empty strings.",
            )
        wanted.setdefault(name, set()).update(values)
    return wanted


def _page_token(start: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"start": start}).encode()).decode()


def _page_start(token: Any) -> int:
    invalid = ImageBuilderError("InvalidPaginationTokenException", "The nextToken is not valid.")
    if not isinstance(token, str) or not 1 <= len(token) <= 65535:
        raise invalid
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise invalid from error
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise invalid
    return start


def list_infrastructure_configurations(request: ImageBuilderRequest) -> dict[str, Any]:
    params = _json_body(request.body)
    max_results = params.get("maxResults", MAX_RESULTS[1])
    low, high = MAX_RESULTS
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not low <= max_results <= high:
        message = f"maxResults must be an integer from {low} to {high}, not {max_results!r}."
        raise ImageBuilderError("InvalidParameterValueException", message)
    wanted = _filters(params["filters"]) if params.get("filters") is not None else {}
    start = _page_start(params["nextToken"]) if params.get("nextToken") is not None else 0
    names = sorted(
        name for name in SEED_INFRASTRUCTURE_CONFIGURATIONS if "name" not in wanted or name in wanted["name"]
    )
    page = names[start : start + max_results]
    result: dict[str, Any] = {
        "infrastructureConfigurationSummaryList": [
            _summary(
                _infrastructure(
                    name,
                    SEED_INFRASTRUCTURE_CONFIGURATIONS[name],
                    account_id=request.account_id,
                    region=request.region,
                )
            )
            for name in page
        ]
    }
    if start + max_results < len(names):
        result["nextToken"] = _page_token(start + max_results)
    return result


_HANDLERS = {
    "GetImage": get_image,
    "GetInfrastructureConfiguration": get_infrastructure_configuration,
    "ListInfrastructureConfigurations": list_infrastructure_configurations,
}
# The (method, operation) each is served on, from the model's "http" of each operation.
_METHODS = {
    "GetImage": "GET",
    "GetInfrastructureConfiguration": "GET",
    "ListInfrastructureConfigurations": "POST",
}
HANDLED_OPERATIONS = frozenset(_HANDLERS)


def answer(request: ImageBuilderRequest, *, method: str) -> dict[str, Any]:
    """The JSON result of an Image Builder call, with its requestId; raises ImageBuilderError."""
    handler = _HANDLERS.get(request.operation)
    if handler is None or _METHODS[request.operation] != method:
        raise ImageBuilderError(
            NOT_IMPLEMENTED,
            f"The sandbox does not serve Image Builder's {request.operation} ({method}); it answers "
            f"{', '.join(sorted(HANDLED_OPERATIONS))}.",
        )
    return {"requestId": str(uuid.uuid4()), **handler(request)}
