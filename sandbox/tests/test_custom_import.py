"""ImportCustomWorkspaceImage and DescribeCustomWorkspaceImageImport in the sandbox: the service
model's rules, AWS's documented ones, the sources it knows, and the stages an import walks."""

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox import SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox, start_sandbox
from sandbox.custom_import import FAILING_STAGE, STAGES

REGION = "us-east-1"
WIN10_AMI = "ami-05eed000000000001"
FAILING_AMI = "ami-05eed000000000005"
WIN11_AMI = "ami-05eed000000000008"
INFRASTRUCTURE = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:infrastructure-configuration/byol-import"
IMAGE_VERSION = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:image/byol-windows-11/1.0.0/1"
# Twelve stages of 0.1 s each.
DELAY = 1.2
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
NO_CLIENT_VALIDATION = Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=DELAY)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle) -> None:
    control_sandbox(sandbox.url, "reset", {})
    control_sandbox(sandbox.url, "config", {"import_delay": DELAY, "image_quota": None})


def workspaces(sandbox: SandboxHandle, config: Config = NO_RETRIES) -> BaseClient:
    return boto3.client(
        "workspaces",
        endpoint_url=sandbox.url,
        region_name=REGION,
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def params(**overrides: Any) -> dict[str, Any]:
    base = {
        "ImageName": f"byol-ib-{uuid.uuid4().hex[:12]}",
        "ImageDescription": "Windows 11 through Image Builder",
        "ComputeType": "BASE",
        "Protocol": "DCV",
        "ImageSource": {"Ec2ImageId": WIN11_AMI},
        "InfrastructureConfigurationArn": INFRASTRUCTURE,
        "Platform": "WINDOWS",
        "OsVersion": "Windows_11",
    }
    return base | overrides


def refused(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def watch(client: BaseClient, image_id: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every distinct (State, ProgressPercentage) answer until the import ends."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.describe_custom_workspace_image_import(ImageId=image_id)
        if not seen or (answer["State"], answer["ProgressPercentage"]) != (
            seen[-1]["State"],
            seen[-1]["ProgressPercentage"],
        ):
            seen.append(answer)
        if answer["State"] in ("COMPLETED", "ERROR"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"the import never ended: {seen[-1] if seen else None}")


def test_an_import_walks_the_stages_in_order_to_completed(sandbox: SandboxHandle) -> None:
    client = workspaces(sandbox)

    started = client.import_custom_workspace_image(**params())
    seen = watch(client, started["ImageId"])

    assert started["State"] == "PENDING"
    states = [answer["State"] for answer in seen]
    order = [*STAGES, "COMPLETED"]
    positions = [order.index(state) for state in states]
    assert positions == sorted(positions), "stages only go forward"
    assert len(set(states)) >= 8, states
    progress = [answer["ProgressPercentage"] for answer in seen]
    assert progress == sorted(progress)
    assert seen[-1]["ProgressPercentage"] == 100
    assert all(answer["ProgressPercentage"] < 100 for answer in seen[:-1])
    assert seen[-1]["ImageSource"] == {"Ec2ImageId": WIN11_AMI}
    assert seen[-1]["InfrastructureConfigurationArn"] == INFRASTRUCTURE
    assert "ImageBuilderInstanceId" in seen[-1]
    [image] = client.describe_workspace_images(ImageIds=[started["ImageId"]])["Images"]
    assert image["State"] == "AVAILABLE"


def test_an_image_that_fails_the_checks_ends_in_error_at_the_compatibility_stage(sandbox: SandboxHandle) -> None:
    client = workspaces(sandbox)
    started = client.import_custom_workspace_image(
        **params(ImageSource={"Ec2ImageId": FAILING_AMI}, OsVersion="Windows_10", Protocol="PCOIP")
    )

    seen = watch(client, started["ImageId"])

    assert seen[-1]["State"] == "ERROR"
    # It stops where the compatibility check starts: no later stage is ever reported.
    assert all(STAGES.index(answer["State"]) < FAILING_STAGE for answer in seen[:-1])
    assert [d["ErrorCode"] for d in seen[-1]["ErrorDetails"]] == ["OfficeInstalled", "DiskSizeExceeded"]
    assert seen[-1]["ProgressPercentage"] < 50
    [image] = client.describe_workspace_images(ImageIds=[started["ImageId"]])["Images"]
    assert image["State"] == "ERROR"


def test_windows_11_with_pcoip_is_refused(sandbox: SandboxHandle) -> None:
    code, message = refused(workspaces(sandbox).import_custom_workspace_image, **params(Protocol="PCOIP"))

    assert code == "InvalidParameterValuesException"
    assert "Windows 11 does not support the PCOIP protocol" in message


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"ImageSource": {"Ec2ImageId": WIN11_AMI, "Ec2ImportTaskId": "import-ami-0123456789abcdef0"}}, "exactly one"),
        ({"ImageSource": {}}, "exactly one"),
        ({"ComputeType": "GRAPHICS_G5"}, "ComputeType 'GRAPHICS_G5' is not one of"),
        ({"InfrastructureConfigurationArn": "arn:aws:iam::123456789012:role/x"}, "does not match the pattern"),
        ({"ImageSource": {"Ec2ImportTaskId": "import-ami-123"}}, "must be 19 to 28 characters"),
        ({"ImageName": "has space"}, "ImageName 'has space' does not match"),
        ({"Platform": None}, "Platform is required"),
    ],
)
def test_the_service_models_rules_are_checked_by_the_server(
    sandbox: SandboxHandle, overrides: dict[str, Any], problem: str
) -> None:
    code, message = refused(
        workspaces(sandbox, NO_CLIENT_VALIDATION).import_custom_workspace_image,
        **{k: v for k, v in params(**overrides).items() if v is not None},
    )

    assert code == "InvalidParameterValuesException"
    assert problem in message


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ({"Ec2ImportTaskId": "import-ami-0fedcba987654321f"}, "InvalidParameterValuesException", "is active"),
        ({"Ec2ImportTaskId": "import-ami-0000000000000000a"}, "ResourceNotFoundException", "was not found"),
        (
            {"ImageBuildVersionArn": IMAGE_VERSION.replace("byol-windows-11", "unknown")},
            "ResourceNotFoundException",
            "was not found",
        ),
        ({"Ec2ImageId": "ami-0000000000000abcd"}, "ResourceNotFoundException", "was not found"),
    ],
)
def test_a_source_aws_would_not_accept_is_refused(
    sandbox: SandboxHandle, source: dict[str, str], code: str, message: str
) -> None:
    got_code, got_message = refused(workspaces(sandbox).import_custom_workspace_image, **params(ImageSource=source))

    assert (got_code, message in got_message) == (code, True), got_message


@pytest.mark.parametrize(
    "source", [{"Ec2ImportTaskId": "import-ami-0123456789abcdef0"}, {"ImageBuildVersionArn": IMAGE_VERSION}]
)
def test_a_completed_vm_import_task_and_an_image_builder_version_are_accepted(
    sandbox: SandboxHandle, source: dict[str, str]
) -> None:
    client = workspaces(sandbox)

    started = client.import_custom_workspace_image(**params(ImageSource=source))

    assert client.describe_custom_workspace_image_import(ImageId=started["ImageId"])["ImageSource"] == source


def test_an_infrastructure_configuration_of_another_region_is_not_found(sandbox: SandboxHandle) -> None:
    elsewhere = INFRASTRUCTURE.replace(REGION, "eu-west-1")

    code, _ = refused(
        workspaces(sandbox).import_custom_workspace_image, **params(InfrastructureConfigurationArn=elsewhere)
    )

    assert code == "ResourceNotFoundException"


def test_a_taken_name_and_disabled_byol_are_refused_as_for_the_classic_import(sandbox: SandboxHandle) -> None:
    client = workspaces(sandbox)
    first = params()
    client.import_custom_workspace_image(**first)

    assert refused(client.import_custom_workspace_image, **params(ImageName=first["ImageName"]))[0] == (
        "ResourceAlreadyExistsException"
    )
    control_sandbox(sandbox.url, "faults", {"byol_enabled": False})
    assert refused(client.import_custom_workspace_image, **params())[0] == "OperationNotSupportedException"


def test_describing_an_image_not_imported_this_way_is_not_found(sandbox: SandboxHandle) -> None:
    client = workspaces(sandbox)
    classic = client.import_workspace_image(
        Ec2ImageId=WIN10_AMI,
        IngestionProcess="BYOL_REGULAR",
        ImageName=f"classic-{uuid.uuid4().hex[:10]}",
        ImageDescription="classic",
    )

    assert refused(client.describe_custom_workspace_image_import, ImageId=classic["ImageId"])[0] == (
        "ResourceNotFoundException"
    )
    assert refused(
        workspaces(sandbox, NO_CLIENT_VALIDATION).describe_custom_workspace_image_import, ImageId="not-an-id"
    )[0] == ("InvalidParameterValuesException")
