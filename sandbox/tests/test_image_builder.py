"""The lookups a pre-flight of the Image Builder import path makes, which moto does not serve:
Image Builder's GetImage, GetInfrastructureConfiguration and ListInfrastructureConfigurations, and
EC2's DescribeImportImageTasks, through boto3 against a started sandbox."""

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from sandbox import SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox, start_sandbox

REGION = "us-east-1"
PREFIX = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}"
INFRASTRUCTURE = f"{PREFIX}:infrastructure-configuration/byol-import"
GPU_INFRASTRUCTURE = f"{PREFIX}:infrastructure-configuration/byol-import-gpu"
AVAILABLE_VERSION = f"{PREFIX}:image/byol-windows-11/1.0.0/1"
BUILDING_VERSION = f"{PREFIX}:image/byol-windows-11/1.1.0/1"
COMPLETED_TASK = "import-ami-0123456789abcdef0"
ACTIVE_TASK = "import-ami-0fedcba987654321f"
DELETED_TASK = "import-ami-0badc0ffee0000001"
WIN11_AMI = "ami-05eed000000000008"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
NO_CLIENT_VALIDATION = Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=1.2)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle) -> None:
    control_sandbox(sandbox.url, "reset", {})


def aws(sandbox: SandboxHandle, service: str, config: Config = NO_RETRIES, region: str = REGION) -> BaseClient:
    return boto3.client(
        service,
        endpoint_url=sandbox.url,
        region_name=region,
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def refused(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


# --- Image Builder -------------------------------------------------------------------------------


def test_get_image_answers_an_available_version_with_its_ami(sandbox: SandboxHandle) -> None:
    image = aws(sandbox, "imagebuilder").get_image(imageBuildVersionArn=AVAILABLE_VERSION)["image"]

    assert image["arn"] == AVAILABLE_VERSION
    assert (image["name"], image["version"], image["platform"]) == ("byol-windows-11", "1.0.0/1", "Windows")
    assert image["osVersion"] == "Microsoft Windows 11"
    assert image["state"] == {"status": "AVAILABLE"}
    assert image["dateCreated"].startswith("2026-")
    [ami] = image["outputResources"]["amis"]
    assert (ami["image"], ami["region"], ami["accountId"]) == (WIN11_AMI, REGION, SANDBOX_ACCOUNT_ID)


def test_get_image_answers_a_version_still_building_without_an_ami(sandbox: SandboxHandle) -> None:
    image = aws(sandbox, "imagebuilder").get_image(imageBuildVersionArn=BUILDING_VERSION)["image"]

    assert image["state"]["status"] == "BUILDING"
    assert "outputResources" not in image


def test_a_version_arn_without_a_build_stands_for_its_newest_build(sandbox: SandboxHandle) -> None:
    client = aws(sandbox, "imagebuilder")

    assert client.get_image(imageBuildVersionArn=f"{PREFIX}:image/byol-windows-11/1.0.0")["image"]["arn"] == (
        AVAILABLE_VERSION
    )
    assert client.get_image(imageBuildVersionArn=f"{PREFIX}:image/byol-windows-11/x.x.x")["image"]["arn"] == (
        BUILDING_VERSION
    )


@pytest.mark.parametrize(
    "arn",
    [
        f"{PREFIX}:image/unknown/1.0.0/1",
        f"{PREFIX}:image/byol-windows-11/9.0.0/1",
        AVAILABLE_VERSION.replace(REGION, "eu-west-1"),
        AVAILABLE_VERSION.replace(SANDBOX_ACCOUNT_ID, "111122223333"),
    ],
)
def test_get_image_of_an_unknown_version_or_another_account_or_region_is_not_found(
    sandbox: SandboxHandle, arn: str
) -> None:
    client = aws(sandbox, "imagebuilder")

    code, message, status = refused(client.get_image, imageBuildVersionArn=arn)

    assert (code, status) == ("ResourceNotFoundException", 404)
    assert "cannot be found" in message
    # botocore maps the code to the modelled exception class, as a caller catching it expects.
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_image(imageBuildVersionArn=arn)


def test_get_infrastructure_configuration_answers_a_seeded_one(sandbox: SandboxHandle) -> None:
    answer = aws(sandbox, "imagebuilder").get_infrastructure_configuration(
        infrastructureConfigurationArn=INFRASTRUCTURE
    )

    configuration = answer["infrastructureConfiguration"]
    assert (configuration["arn"], configuration["name"]) == (INFRASTRUCTURE, "byol-import")
    assert configuration["instanceTypes"] == ["m5.large"]
    assert configuration["instanceProfileName"]
    assert answer["requestId"]


@pytest.mark.parametrize(
    "arn",
    [
        f"{PREFIX}:infrastructure-configuration/nope",
        INFRASTRUCTURE.replace(REGION, "eu-west-1"),
        INFRASTRUCTURE.replace(SANDBOX_ACCOUNT_ID, "111122223333"),
    ],
)
def test_an_infrastructure_configuration_elsewhere_is_not_found(sandbox: SandboxHandle, arn: str) -> None:
    code, _, status = refused(
        aws(sandbox, "imagebuilder").get_infrastructure_configuration, infrastructureConfigurationArn=arn
    )

    assert (code, status) == ("ResourceNotFoundException", 404)


def test_the_arn_is_the_callers_region_not_the_endpoints(sandbox: SandboxHandle) -> None:
    client = aws(sandbox, "imagebuilder", region="eu-west-1")
    arn = INFRASTRUCTURE.replace(REGION, "eu-west-1")

    assert client.get_infrastructure_configuration(infrastructureConfigurationArn=arn)["infrastructureConfiguration"][
        "arn"
    ] == (arn)
    assert refused(client.get_infrastructure_configuration, infrastructureConfigurationArn=INFRASTRUCTURE)[0] == (
        "ResourceNotFoundException"
    )


def test_a_role_assumed_in_another_account_sees_that_accounts_resources(sandbox: SandboxHandle) -> None:
    other = "111122223333"
    credentials = aws(sandbox, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{other}:role/byol-portal", RoleSessionName="preflight"
    )["Credentials"]
    client = boto3.client(
        "imagebuilder",
        endpoint_url=sandbox.url,
        region_name=REGION,
        config=NO_RETRIES,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )

    image = client.get_image(imageBuildVersionArn=AVAILABLE_VERSION.replace(SANDBOX_ACCOUNT_ID, other))["image"]

    assert image["outputResources"]["amis"][0]["accountId"] == other
    assert refused(client.get_image, imageBuildVersionArn=AVAILABLE_VERSION)[0] == "ResourceNotFoundException"


def test_list_infrastructure_configurations_pages_and_filters(sandbox: SandboxHandle) -> None:
    client = aws(sandbox, "imagebuilder")

    first = client.list_infrastructure_configurations(maxResults=1)
    second = client.list_infrastructure_configurations(maxResults=1, nextToken=first["nextToken"])
    everything = client.list_infrastructure_configurations()
    by_name = client.list_infrastructure_configurations(filters=[{"name": "name", "values": ["byol-import-gpu"]}])
    paginated = [
        summary["arn"]
        for page in client.get_paginator("list_infrastructure_configurations").paginate(
            PaginationConfig={"PageSize": 1}
        )
        for summary in page["infrastructureConfigurationSummaryList"]
    ]

    assert [s["arn"] for s in first["infrastructureConfigurationSummaryList"]] == [INFRASTRUCTURE]
    assert [s["arn"] for s in second["infrastructureConfigurationSummaryList"]] == [GPU_INFRASTRUCTURE]
    assert "nextToken" not in second
    assert [s["name"] for s in everything["infrastructureConfigurationSummaryList"]] == [
        "byol-import",
        "byol-import-gpu",
    ]
    assert [s["arn"] for s in by_name["infrastructureConfigurationSummaryList"]] == [GPU_INFRASTRUCTURE]
    assert paginated == [INFRASTRUCTURE, GPU_INFRASTRUCTURE]


@pytest.mark.parametrize(
    ("operation", "kwargs", "code"),
    [
        ("get_image", {"imageBuildVersionArn": "arn:aws:ec2:us-east-1::image/ami-1"}, "InvalidParameterValueException"),
        ("get_image", {"imageBuildVersionArn": f"{PREFIX}:image/Upper/1.0.0/1"}, "InvalidParameterValueException"),
        ("get_image", {}, "InvalidRequestException"),
        (
            "get_infrastructure_configuration",
            {"infrastructureConfigurationArn": f"{PREFIX}:image/byol-windows-11/1.0.0/1"},
            "InvalidParameterValueException",
        ),
        ("get_infrastructure_configuration", {}, "InvalidRequestException"),
        ("list_infrastructure_configurations", {"maxResults": 0}, "InvalidParameterValueException"),
        ("list_infrastructure_configurations", {"maxResults": 101}, "InvalidParameterValueException"),
        ("list_infrastructure_configurations", {"nextToken": "not-ours"}, "InvalidPaginationTokenException"),
        (
            "list_infrastructure_configurations",
            {"filters": [{"name": "platform", "values": ["Windows"]}]},
            "InvalidParameterValueException",
        ),
        ("list_infrastructure_configurations", {"filters": []}, "InvalidParameterValueException"),
        (
            "list_infrastructure_configurations",
            {"filters": [{"name": "name", "values": []}]},
            "InvalidParameterValueException",
        ),
    ],
)
def test_the_models_rules_are_checked_by_the_server(
    sandbox: SandboxHandle, operation: str, kwargs: dict[str, Any], code: str
) -> None:
    got_code, message, status = refused(
        getattr(aws(sandbox, "imagebuilder", NO_CLIENT_VALIDATION), operation), **kwargs
    )

    assert (got_code, status) == (code, 400), message


def test_an_operation_the_sandbox_does_not_serve_says_so(sandbox: SandboxHandle) -> None:
    client = aws(sandbox, "imagebuilder")

    code, message, status = refused(client.list_images)

    assert (code, status) == ("NotImplemented", 501)
    assert "ListImages" in message


# --- EC2 DescribeImportImageTasks ----------------------------------------------------------------


def test_describe_import_image_tasks_answers_each_seeded_task(sandbox: SandboxHandle) -> None:
    tasks = aws(sandbox, "ec2").describe_import_image_tasks(ImportTaskIds=[COMPLETED_TASK, ACTIVE_TASK, DELETED_TASK])[
        "ImportImageTasks"
    ]

    completed, active, deleted = tasks
    assert (completed["ImportTaskId"], completed["Status"], completed["ImageId"]) == (
        COMPLETED_TASK,
        "completed",
        WIN11_AMI,
    )
    assert completed["Platform"] == "Windows"
    assert (active["Status"], active["StatusMessage"], active["Progress"]) == ("active", "converting", "39")
    assert "ImageId" not in active
    assert deleted["Status"] == "deleted"
    assert deleted["StatusMessage"].startswith("ClientError:")
    assert "ImageId" not in deleted


def test_describe_import_image_tasks_filters_on_task_state_and_pages(sandbox: SandboxHandle) -> None:
    client = aws(sandbox, "ec2")

    active = client.describe_import_image_tasks(Filters=[{"Name": "task-state", "Values": ["active"]}])
    everything = [
        task["ImportTaskId"]
        for page in client.get_paginator("describe_import_image_tasks").paginate(PaginationConfig={"PageSize": 1})
        for task in page["ImportImageTasks"]
    ]

    assert [task["ImportTaskId"] for task in active["ImportImageTasks"]] == [ACTIVE_TASK]
    assert sorted(everything) == sorted([COMPLETED_TASK, ACTIVE_TASK, DELETED_TASK])


@pytest.mark.parametrize(
    ("kwargs", "code", "status"),
    [
        ({"ImportTaskIds": ["import-ami-0000000000000000a"]}, "InvalidConversionTaskId.Malformed", 400),
        ({"ImportTaskIds": ["not-a-task"]}, "InvalidConversionTaskId.Malformed", 400),
        ({"Filters": [{"Name": "platform", "Values": ["Windows"]}]}, "InvalidParameterValue", 400),
        ({"MaxResults": 0}, "InvalidParameterValue", 400),
        ({"NextToken": "not-ours"}, "InvalidPaginationToken", 400),
        ({"DryRun": True}, "DryRunOperation", 412),
    ],
)
def test_describe_import_image_tasks_refusals(
    sandbox: SandboxHandle, kwargs: dict[str, Any], code: str, status: int
) -> None:
    assert refused(aws(sandbox, "ec2", NO_CLIENT_VALIDATION).describe_import_image_tasks, **kwargs)[::2] == (
        code,
        status,
    )


# --- the wire formats, as sent --------------------------------------------------------------------


def raw(
    sandbox: SandboxHandle, service: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """An AWS call as bytes; the sandbox reads the service from the credential scope, unverified."""
    headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential=AKID/20261127/{REGION}/{service}/aws4_request, x"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(f"{sandbox.url}{path}", data=body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_an_image_builder_error_is_rest_json_with_the_code_in_x_amzn_error_type(sandbox: SandboxHandle) -> None:
    query = urllib.parse.urlencode({"imageBuildVersionArn": f"{PREFIX}:image/unknown/1.0.0/1"})

    status, headers, body = raw(sandbox, "imagebuilder", f"/GetImage?{query}")

    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert headers["Content-Type"] == "application/json"
    assert "cannot be found" in json.loads(body)["message"]


def test_describe_import_image_tasks_answers_ec2_xml(sandbox: SandboxHandle) -> None:
    form = urllib.parse.urlencode(
        {"Action": "DescribeImportImageTasks", "Version": "2016-11-15", "ImportTaskId.1": COMPLETED_TASK}
    ).encode()

    status, _, body = raw(sandbox, "ec2", "/", form)
    unknown_status, _, unknown = raw(sandbox, "ec2", "/", form.replace(b"abcdef0", b"abcdef1"))

    assert status == 200
    ns = {"ec2": "http://ec2.amazonaws.com/doc/2016-11-15/"}
    root = ET.fromstring(body)  # noqa: S314 -- the sandbox's own answer
    assert root.tag == "{http://ec2.amazonaws.com/doc/2016-11-15/}DescribeImportImageTasksResponse"
    assert root.findtext("ec2:requestId", namespaces=ns)
    assert root.findtext("ec2:importImageTaskSet/ec2:item/ec2:imageId", namespaces=ns) == WIN11_AMI
    assert unknown_status == 400
    error = ET.fromstring(unknown)  # noqa: S314
    assert error.findtext("Errors/Error/Code") == "InvalidConversionTaskId.Malformed"
    assert error.findtext("RequestID")


# --- faults and counting -------------------------------------------------------------------------


def test_a_throttled_image_builder_call_gets_a_rest_json_throttling_error_and_is_counted(
    sandbox: SandboxHandle,
) -> None:
    control_sandbox(sandbox.url, "faults", {"throttle_rate": 1.0, "operations": ["GetImage"]})
    client = aws(sandbox, "imagebuilder")

    code, _, status = refused(client.get_image, imageBuildVersionArn=AVAILABLE_VERSION)
    listed = client.list_infrastructure_configurations()  # not in the fault's operations

    assert (code, status) == ("ThrottlingException", 400)
    assert listed["infrastructureConfigurationSummaryList"]
    calls = control_sandbox(sandbox.url, "calls?by=service")
    assert calls["imagebuilder"] == {"GetImage": 1, "ListInfrastructureConfigurations": 1}


def test_a_throttled_describe_import_image_tasks_gets_request_limit_exceeded_and_is_counted(
    sandbox: SandboxHandle,
) -> None:
    control_sandbox(sandbox.url, "faults", {"throttle_rate": 1.0, "operations": ["DescribeImportImageTasks"]})

    code, _, status = refused(aws(sandbox, "ec2").describe_import_image_tasks, ImportTaskIds=[COMPLETED_TASK])

    assert (code, status) == ("RequestLimitExceeded", 503)
    assert control_sandbox(sandbox.url, "calls?by=service")["ec2"] == {"DescribeImportImageTasks": 1}


def test_a_server_error_fault_on_image_builder_is_its_service_exception(sandbox: SandboxHandle) -> None:
    control_sandbox(sandbox.url, "faults", {"server_error_rate": 1.0, "operations": ["GetInfrastructureConfiguration"]})

    code, _, status = refused(
        aws(sandbox, "imagebuilder").get_infrastructure_configuration, infrastructureConfigurationArn=INFRASTRUCTURE
    )

    assert (code, status) == ("ServiceException", 500)


def test_down_on_these_operations_drops_them_and_spares_the_others(sandbox: SandboxHandle) -> None:
    control_sandbox(sandbox.url, "faults", {"down": True, "operations": ["GetImage", "DescribeImportImageTasks"]})

    with pytest.raises(ConnectionClosedError):
        aws(sandbox, "imagebuilder").get_image(imageBuildVersionArn=AVAILABLE_VERSION)
    with pytest.raises(ConnectionClosedError):
        aws(sandbox, "ec2").describe_import_image_tasks()
    spared = aws(sandbox, "imagebuilder").get_infrastructure_configuration(
        infrastructureConfigurationArn=INFRASTRUCTURE
    )

    assert spared["infrastructureConfiguration"]["name"] == "byol-import"
    assert control_sandbox(sandbox.url, "calls") == {
        "DescribeImportImageTasks": 1,
        "GetImage": 1,
        "GetInfrastructureConfiguration": 1,
    }


def test_botocore_retries_the_image_builder_throttle(sandbox: SandboxHandle) -> None:
    # Half the calls throttled: the first is answered, the second throttled and retried.
    control_sandbox(sandbox.url, "faults", {"throttle_rate": 0.5, "operations": ["GetImage"]})
    client = aws(sandbox, "imagebuilder", Config(retries={"total_max_attempts": 3, "mode": "standard"}))

    for _ in range(2):
        assert client.get_image(imageBuildVersionArn=AVAILABLE_VERSION)["image"]["state"]["status"] == "AVAILABLE"

    assert control_sandbox(sandbox.url, "calls")["GetImage"] == 3


# --- ImportCustomWorkspaceImage uses the same seeds ----------------------------------------------


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"ImageBuildVersionArn": BUILDING_VERSION}, "is BUILDING, not AVAILABLE"),
        ({"Ec2ImportTaskId": DELETED_TASK}, "is deleted, not completed"),
    ],
)
def test_the_import_refuses_a_source_the_lookups_report_unusable(
    sandbox: SandboxHandle, source: dict[str, str], fragment: str
) -> None:
    params = {
        "ImageName": f"byol-ib-{uuid.uuid4().hex[:12]}",
        "ImageDescription": "Windows 11 through Image Builder",
        "ComputeType": "BASE",
        "Protocol": "DCV",
        "ImageSource": source,
        "InfrastructureConfigurationArn": INFRASTRUCTURE,
        "Platform": "WINDOWS",
        "OsVersion": "Windows_11",
    }

    code, message, _ = refused(aws(sandbox, "workspaces").import_custom_workspace_image, **params)

    assert code == "InvalidParameterValuesException"
    assert fragment in message
