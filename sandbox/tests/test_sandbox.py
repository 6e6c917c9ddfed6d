"""The local AWS sandbox, driven as the portal drives AWS: real boto3 clients on an endpoint URL.

No database: these tests talk HTTP to a sandbox started once for the module on a free port.
Images outlive a test (the sandbox keeps them, as AWS does), so each test names its own.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from sandbox import (
    ERROR_DETAILS_TAG,
    PARTNER_ACCOUNT_ID,
    SANDBOX_ACCOUNT_ID,
    SEED_IMAGES,
    SEED_TAG,
    UPDATE_AVAILABLE_TAG,
    SandboxHandle,
    seed_images,
    start_sandbox,
)
from sandbox.workspaces import BYOL_DISABLED_MESSAGE

PROJECT_DIR = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
WIN10_AMI = "ami-05eed000000000001"
WIN11_LARGE_AMI = "ami-05eed000000000002"
TWO_VOLUME_AMI = "ami-05eed000000000003"
ENCRYPTED_AMI = "ami-05eed000000000004"
FAILING_AMI = "ami-05eed000000000005"
LINUX_AMI = "ami-05eed000000000006"
PARTNER_AMI = "ami-05eed000000000007"
WIN11_AMI = "ami-05eed000000000008"
AMAZON_WINDOWS_AMI = "ami-03cf127a"  # one of moto's default public AMIs, owned by Amazon
OTHER_ACCOUNT_ID = "444455556666"
# The images the delete tests share stay shared with this account, so other tests' counts of
# images shared with OTHER_ACCOUNT_ID are not disturbed.
SHARED_WITH_ACCOUNT_ID = "777788889999"
TEST_DELAY = 1.0
# "max_attempts" counts retries after the first try; "total_max_attempts": 1 means no retry at all.
# https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
NO_CLIENT_VALIDATION = Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})
NO_FAULTS = {
    "throttle_rate": 0.0,
    "server_error_rate": 0.0,
    "latency_ms": 0.0,
    "down": False,
    "byol_enabled": True,
    "operations": None,
}
INTERNAL_FAILURE = "The request processing has failed because of an unknown error, exception or failure."


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=TEST_DELAY)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh_counters_faults_and_config(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "reset")
    control(sandbox, "POST", "config", {"import_delay": TEST_DELAY, "image_quota": None})


def control(sandbox: SandboxHandle, method: str, name: str, payload: Any = None, *, raw: bytes | None = None) -> Any:
    """Call a /_sandbox/ endpoint; returns (status, JSON body)."""
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    # S310: the URL is the sandbox's own http://127.0.0.1 address, never a file: or custom scheme.
    request = urllib.request.Request(f"{sandbox.url}/_sandbox/{name}", data=data, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def client(sandbox: SandboxHandle, service: str, config: Config = NO_RETRIES, **credentials: str) -> BaseClient:
    keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=sandbox.url, region_name=REGION, config=config, **keys)


def client_in_account(sandbox: SandboxHandle, service: str, account_id: str) -> BaseClient:
    """A client whose calls moto attributes to ``account_id``: moto maps assumed-role keys to it."""
    role = f"arn:aws:iam::{account_id}:role/sandbox-test"
    creds = client(sandbox, "sts").assume_role(RoleArn=role, RoleSessionName="test")["Credentials"]
    return client(
        sandbox,
        service,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def unique_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def import_image(workspaces: BaseClient, ami: str = WIN10_AMI, **overrides: Any) -> str:
    params = {
        "Ec2ImageId": ami,
        "IngestionProcess": "BYOL_REGULAR_WSP",
        "ImageName": unique_name("img"),
        "ImageDescription": "Windows 10 BYOL test image",
        **overrides,
    }
    return str(workspaces.import_workspace_image(**params)["ImageId"])


def describe_image(workspaces: BaseClient, image_id: str) -> dict[str, Any]:
    images = workspaces.describe_workspace_images(ImageIds=[image_id])["Images"]
    assert len(images) == 1
    return dict(images[0])


def wait_for_state(workspaces: BaseClient, image_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        image = describe_image(workspaces, image_id)
        if image["State"] == state or time.monotonic() > deadline:
            return image
        time.sleep(0.1)


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def imported_count(sandbox: SandboxHandle) -> int:
    return len(control(sandbox, "GET", "images")[1]["Images"])


# --- seeding -------------------------------------------------------------------------------


def test_seeding_puts_windows_amis_a_linux_ami_and_a_failing_ami_into_the_account(sandbox: SandboxHandle) -> None:
    ec2 = client(sandbox, "ec2")

    owned = ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{SEED_TAG}", "Values": ["true"]}])["Images"]

    by_id = {image["ImageId"]: image for image in owned}
    windows = [image for image in owned if image.get("Platform") == "windows"]
    assert len(windows) >= 3
    assert all(image["State"] == "available" and image["OwnerId"] == SANDBOX_ACCOUNT_ID for image in owned)
    assert "Platform" not in by_id[LINUX_AMI]
    assert by_id[LINUX_AMI]["PlatformDetails"] == "Linux/UNIX"
    assert by_id[WIN10_AMI]["Name"] == "win10-22h2-byol-2026-10"
    assert by_id[WIN10_AMI]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 60
    assert by_id[WIN11_LARGE_AMI]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] > 70
    assert len(by_id[TWO_VOLUME_AMI]["BlockDeviceMappings"]) == 2
    tags = {tag["Key"]: tag["Value"] for tag in by_id[FAILING_AMI]["Tags"]}
    assert tags[ERROR_DETAILS_TAG] == "OfficeInstalled,DiskSizeExceeded"
    assert PARTNER_AMI not in by_id


def test_seeded_amis_report_their_boot_mode_or_none_and_their_encryption_in_describe_images(
    sandbox: SandboxHandle,
) -> None:
    ec2 = client(sandbox, "ec2")

    owned = ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{SEED_TAG}", "Values": ["true"]}])["Images"]

    by_id = {image["ImageId"]: image for image in owned}
    assert {ami: by_id[ami].get("BootMode") for ami in (WIN10_AMI, WIN11_LARGE_AMI, TWO_VOLUME_AMI, WIN11_AMI)} == {
        WIN10_AMI: "legacy-bios",
        WIN11_LARGE_AMI: "uefi",
        TWO_VOLUME_AMI: None,
        WIN11_AMI: "uefi",
    }
    assert "BootMode" not in by_id[TWO_VOLUME_AMI]
    assert [m["Ebs"]["Encrypted"] for m in by_id[ENCRYPTED_AMI]["BlockDeviceMappings"]] == [True]
    assert not any(m["Ebs"]["Encrypted"] for m in by_id[WIN11_AMI]["BlockDeviceMappings"])


def test_the_newest_seeded_windows_ami_is_a_clean_windows_11_one(sandbox: SandboxHandle) -> None:
    ec2 = client(sandbox, "ec2")
    windows = [{"Name": "platform", "Values": ["windows"]}, {"Name": f"tag:{SEED_TAG}", "Values": ["true"]}]

    owned = ec2.describe_images(Owners=["self"], Filters=windows)["Images"]

    newest = max(owned, key=lambda image: image["CreationDate"])
    assert newest["ImageId"] == WIN11_AMI
    assert newest["BootMode"] == "uefi"
    assert [m["Ebs"]["VolumeSize"] for m in newest["BlockDeviceMappings"]] == [64]
    assert {tag["Key"] for tag in newest["Tags"]} == {SEED_TAG}


def test_seeding_again_or_restarting_adds_no_duplicate_amis(sandbox: SandboxHandle) -> None:
    ec2 = client(sandbox, "ec2")
    seed_filter = [{"Name": f"tag:{SEED_TAG}", "Values": ["true"]}]

    assert seed_images() == [image.ami_id for image in SEED_IMAGES]
    with start_sandbox(port=0, import_delay=TEST_DELAY) as second:
        assert second.port != sandbox.port
        seeded = ec2.describe_images(Filters=seed_filter)["Images"]

    assert sorted(image["ImageId"] for image in seeded) == sorted(image.ami_id for image in SEED_IMAGES)


# --- ImportWorkspaceImage ------------------------------------------------------------------


def test_import_returns_a_workspaces_image_id(sandbox: SandboxHandle) -> None:
    image_id = import_image(client(sandbox, "workspaces"))

    assert len(image_id) == 13
    assert image_id.startswith("wsi-")
    assert image_id[4:].isalnum()
    assert image_id[4:] == image_id[4:].lower()


def test_imported_image_is_pending_then_available_after_the_import_delay(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    name = unique_name("pending")

    image_id = import_image(workspaces, ImageName=name, ImageDescription="Pending then available")
    pending = describe_image(workspaces, image_id)
    started = time.monotonic()
    available = wait_for_state(workspaces, image_id, "AVAILABLE")

    assert pending["State"] == "PENDING"
    assert available["State"] == "AVAILABLE"
    assert time.monotonic() - started < TEST_DELAY + 2
    assert available["Name"] == name
    assert available["Description"] == "Pending then available"
    assert available["OperatingSystem"] == {"Type": "WINDOWS"}
    assert available["RequiredTenancy"] == "DEDICATED"
    assert available["OwnerAccountId"] == SANDBOX_ACCOUNT_ID
    assert abs(available["Created"].timestamp() - time.time()) < 60
    assert "ErrorCode" not in available
    assert "ErrorDetails" not in available


def test_import_of_an_ami_tagged_to_fail_ends_in_error_with_its_error_details(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "config", {"import_delay": 0})

    image = describe_image(workspaces, import_image(workspaces, FAILING_AMI))

    assert image["State"] == "ERROR"
    assert image["ErrorCode"] == "ValidationFailed"
    assert image["ErrorMessage"]
    assert [detail["ErrorCode"] for detail in image["ErrorDetails"]] == ["OfficeInstalled", "DiskSizeExceeded"]
    assert all(detail["ErrorMessage"] for detail in image["ErrorDetails"])


def test_available_image_reports_no_updates_unless_its_ami_is_tagged_with_one(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    pending = describe_image(workspaces, import_image(workspaces, TWO_VOLUME_AMI))
    control(sandbox, "POST", "config", {"import_delay": 0})
    updated = describe_image(workspaces, import_image(workspaces, TWO_VOLUME_AMI))
    current = describe_image(workspaces, import_image(workspaces, WIN10_AMI))
    failed = describe_image(workspaces, import_image(workspaces, FAILING_AMI))

    tagged = next(image for image in SEED_IMAGES if image.ami_id == TWO_VOLUME_AMI).tags[UPDATE_AVAILABLE_TAG]
    assert updated["Updates"] == {"UpdateAvailable": True, "Description": tagged}
    assert current["Updates"]["UpdateAvailable"] is False
    assert "Updates" not in pending
    assert "Updates" not in failed


def test_tags_given_to_the_import_are_stored_on_the_image(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    tags = [{"Key": "portal:request", "Value": "REQ-42"}, {"Key": "portal:requester", "Value": "rita"}]

    image_id = import_image(workspaces, Tags=tags, Applications=["Microsoft_Office_2019"])

    assert workspaces.describe_tags(ResourceId=image_id)["TagList"] == tags


def test_describe_tags_of_an_unknown_image_is_not_found(sandbox: SandboxHandle) -> None:
    with pytest.raises(ClientError) as excinfo:
        client(sandbox, "workspaces").describe_tags(ResourceId="wsi-000000000")

    assert error_of(excinfo)[0] == "ResourceNotFoundException"


def test_import_with_a_name_an_image_already_has_is_refused(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    name = unique_name("taken")
    import_image(workspaces, ImageName=name)

    with pytest.raises(ClientError) as excinfo:
        import_image(workspaces, WIN11_LARGE_AMI, ImageName=name)

    code, message = error_of(excinfo)
    assert code == "ResourceAlreadyExistsException"
    assert name in message


def test_import_of_an_unknown_ami_is_refused(sandbox: SandboxHandle) -> None:
    with pytest.raises(ClientError) as excinfo:
        import_image(client(sandbox, "workspaces"), "ami-0123456789abcdef0")

    code, message = error_of(excinfo)
    assert code == "ResourceNotFoundException"
    assert "ami-0123456789abcdef0" in message


def test_import_of_a_linux_ami_is_refused(sandbox: SandboxHandle) -> None:
    with pytest.raises(ClientError) as excinfo:
        import_image(client(sandbox, "workspaces"), LINUX_AMI)

    code, message = error_of(excinfo)
    assert code == "OperationNotSupportedException"
    assert "not a Windows image" in message


@pytest.mark.parametrize(
    ("ami", "owner"),
    [(PARTNER_AMI, PARTNER_ACCOUNT_ID), (AMAZON_WINDOWS_AMI, "801119661308")],
    ids=["shared-by-a-partner", "amazon-public"],
)
def test_import_of_a_windows_ami_owned_by_another_account_is_refused(
    sandbox: SandboxHandle, ami: str, owner: str
) -> None:
    before = imported_count(sandbox)

    with pytest.raises(ClientError) as excinfo:
        import_image(client(sandbox, "workspaces"), ami)

    code, message = error_of(excinfo)
    assert code == "InvalidParameterValuesException"
    assert f"owned by account {owner}" in message
    assert imported_count(sandbox) == before


def test_import_of_an_ami_that_only_another_accounts_ec2_holds_is_not_found(sandbox: SandboxHandle) -> None:
    # moto keeps EC2 per account: an AMI registered in another account, and not shared, is
    # invisible to this one, as on AWS.
    other_ec2 = client_in_account(sandbox, "ec2", OTHER_ACCOUNT_ID)
    foreign_ami = other_ec2.register_image(Name=unique_name("foreign"))["ImageId"]

    with pytest.raises(ClientError) as excinfo:
        import_image(client(sandbox, "workspaces"), foreign_ami)

    assert other_ec2.describe_images(ImageIds=[foreign_ami])["Images"][0]["OwnerId"] == OTHER_ACCOUNT_ID
    assert error_of(excinfo)[0] == "ResourceNotFoundException"


def test_import_of_an_ami_that_is_not_available_is_refused(sandbox: SandboxHandle) -> None:
    ec2 = client(sandbox, "ec2")
    # CopyImage keeps the source's platform in moto, so the copy is an owned Windows AMI.
    copy = ec2.copy_image(SourceImageId=WIN10_AMI, SourceRegion=REGION, Name=unique_name("copy"))["ImageId"]
    ec2.disable_image(ImageId=copy)
    assert ec2.describe_images(ImageIds=[copy])["Images"][0]["Platform"] == "windows"

    with pytest.raises(ClientError) as excinfo:
        import_image(client(sandbox, "workspaces"), copy)

    code, message = error_of(excinfo)
    assert code == "InvalidParameterValuesException"
    assert "disabled, not available" in message


MISSING = object()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"Ec2ImageId": "ami-XYZ"}, "Ec2ImageId"),
        ({"Ec2ImageId": "ami-0123456789"}, "Ec2ImageId"),
        ({"IngestionProcess": "BYOL_TURBO"}, "IngestionProcess"),
        ({"ImageName": "has a space"}, "ImageName"),
        ({"ImageName": "n" * 65}, "ImageName"),
        ({"ImageDescription": "shouting!"}, "ImageDescription"),
        ({"ImageDescription": ""}, "ImageDescription"),
        ({"ImageDescription": "d" * 257}, "ImageDescription"),
        ({"ImageDescription": MISSING}, "ImageDescription is required"),
        ({"Tags": [{"Key": "k" * 128, "Value": "v"}]}, "Tags[0].Key"),
        ({"Tags": [{"Key": "k", "Value": "v" * 256}]}, "Tags[0].Value"),
        ({"Tags": [{"Value": "no key"}]}, "Tags[0].Key is required"),
        ({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "at most 50"),
        ({"Tags": [{"Key": "aws:owner", "Value": "v"}]}, "reserved prefix aws:"),
        ({"Applications": ["Microsoft_Office_2016", "Microsoft_Office_2019"]}, "Applications"),
        ({"Applications": ["Microsoft_Office_2021"]}, "Applications[0]"),
    ],
    ids=[
        "malformed-ami-id",
        "ami-id-of-ten-hex-digits",
        "unknown-ingestion-process",
        "name-with-a-space",
        "name-of-65-characters",
        "description-with-an-exclamation-mark",
        "empty-description",
        "description-of-257-characters",
        "missing-description",
        "tag-key-of-128-characters",
        "tag-value-of-256-characters",
        "tag-without-key",
        "51-tags",
        "aws-prefixed-tag-key",
        "two-applications",
        "unknown-application",
    ],
)
def test_invalid_parameters_are_refused_by_the_server(
    sandbox: SandboxHandle, overrides: dict[str, Any], names: str
) -> None:
    workspaces = client(sandbox, "workspaces", NO_CLIENT_VALIDATION)
    params = {
        "Ec2ImageId": WIN10_AMI,
        "IngestionProcess": "BYOL_REGULAR",
        "ImageName": unique_name("invalid"),
        "ImageDescription": "valid description",
        **overrides,
    }
    params = {key: value for key, value in params.items() if value is not MISSING}
    before = imported_count(sandbox)

    with pytest.raises(ClientError) as excinfo:
        workspaces.import_workspace_image(**params)

    code, message = error_of(excinfo)
    assert code == "InvalidParameterValuesException"
    assert names in message
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert imported_count(sandbox) == before


def owned_count(workspaces: BaseClient) -> int:
    return sum(
        len(page["Images"])
        for page in workspaces.get_paginator("describe_workspace_images").paginate(ImageType="OWNED")
    )


def test_an_error_image_stays_and_counts_against_the_quota_until_it_is_deleted(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "config", {"import_delay": 0})
    failed = import_image(workspaces, FAILING_AMI)
    control(sandbox, "POST", "config", {"image_quota": owned_count(workspaces)})

    with pytest.raises(ClientError) as excinfo:
        import_image(workspaces)
    still_there = describe_image(workspaces, failed)
    workspaces.delete_workspace_image(ImageId=failed)
    after_delete = import_image(workspaces)

    assert error_of(excinfo)[0] == "ResourceLimitExceededException"
    assert still_there["State"] == "ERROR"
    assert describe_image(workspaces, after_delete)["State"] == "AVAILABLE"


def test_import_over_the_image_quota_is_refused(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    import_image(workspaces)
    owned = sum(
        len(page["Images"])
        for page in workspaces.get_paginator("describe_workspace_images").paginate(ImageType="OWNED")
    )
    control(sandbox, "POST", "config", {"image_quota": owned})

    with pytest.raises(ClientError) as excinfo:
        import_image(workspaces)

    assert error_of(excinfo)[0] == "ResourceLimitExceededException"


# --- DeleteWorkspaceImage ------------------------------------------------------------------


def test_delete_removes_the_image_with_its_tags_and_frees_its_name(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "config", {"import_delay": 0})
    name = unique_name("deleted")
    image_id = import_image(workspaces, ImageName=name, Tags=[{"Key": "team", "Value": "finance"}])
    before = control(sandbox, "GET", "calls")[1].get("DeleteWorkspaceImage", 0)

    answer = workspaces.delete_workspace_image(ImageId=image_id)

    assert {key: value for key, value in answer.items() if key != "ResponseMetadata"} == {}
    assert workspaces.describe_workspace_images(ImageIds=[image_id])["Images"] == []
    with pytest.raises(ClientError) as excinfo:
        workspaces.describe_tags(ResourceId=image_id)
    assert error_of(excinfo)[0] == "ResourceNotFoundException"
    assert image_id not in {image["ImageId"] for image in control(sandbox, "GET", "images")[1]["Images"]}
    assert import_image(workspaces, ImageName=name).startswith("wsi-")
    assert control(sandbox, "GET", "calls")[1]["DeleteWorkspaceImage"] == before + 1


def test_delete_while_the_image_is_shared_is_refused_until_it_is_unshared(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "config", {"import_delay": 0})
    image_id = import_image(workspaces)
    workspaces.update_workspace_image_permission(
        ImageId=image_id, AllowCopyImage=True, SharedAccountId=SHARED_WITH_ACCOUNT_ID
    )

    with pytest.raises(ClientError) as excinfo:
        workspaces.delete_workspace_image(ImageId=image_id)
    still_there = describe_image(workspaces, image_id)
    workspaces.update_workspace_image_permission(
        ImageId=image_id, AllowCopyImage=False, SharedAccountId=SHARED_WITH_ACCOUNT_ID
    )
    workspaces.delete_workspace_image(ImageId=image_id)

    code, message = error_of(excinfo)
    assert code == "ResourceAssociatedException"
    assert SHARED_WITH_ACCOUNT_ID in message
    assert "unshare" in message
    assert still_there["ImageId"] == image_id
    assert workspaces.describe_workspace_images(ImageIds=[image_id])["Images"] == []


@pytest.mark.parametrize("shared", [True, False], ids=["shared-with-it", "not-shared"])
def test_another_account_cannot_delete_an_image_it_does_not_own(sandbox: SandboxHandle, shared: bool) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "config", {"import_delay": 0})
    image_id = import_image(workspaces)
    if shared:
        workspaces.update_workspace_image_permission(
            ImageId=image_id, AllowCopyImage=True, SharedAccountId=SHARED_WITH_ACCOUNT_ID
        )
    other = client_in_account(sandbox, "workspaces", SHARED_WITH_ACCOUNT_ID)

    with pytest.raises(ClientError) as excinfo:
        other.delete_workspace_image(ImageId=image_id)

    code, message = error_of(excinfo)
    assert code == "AccessDeniedException"
    assert f"belongs to account {SANDBOX_ACCOUNT_ID}" in message
    assert describe_image(workspaces, image_id)["State"] == "AVAILABLE"


def test_delete_of_an_image_still_being_imported_is_refused(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    image_id = import_image(workspaces)

    with pytest.raises(ClientError) as excinfo:
        workspaces.delete_workspace_image(ImageId=image_id)

    assert error_of(excinfo)[0] == "InvalidResourceStateException"
    assert describe_image(workspaces, image_id)["State"] == "PENDING"


def test_delete_of_an_image_no_account_has_answers_as_if_already_deleted(sandbox: SandboxHandle) -> None:
    answer = client(sandbox, "workspaces").delete_workspace_image(ImageId="wsi-0000nobody")

    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("params", [{}, {"ImageId": "ami-0123456789abcdef0"}], ids=["no-id", "not-an-image-id"])
def test_delete_with_a_missing_or_malformed_image_id_is_refused(sandbox: SandboxHandle, params: dict[str, Any]) -> None:
    workspaces = client(sandbox, "workspaces", NO_CLIENT_VALIDATION)

    with pytest.raises(ClientError) as excinfo:
        workspaces.delete_workspace_image(**params)

    code, message = error_of(excinfo)
    assert code == "InvalidParameterValuesException"
    assert "ImageId" in message


# --- DescribeWorkspaceImages ---------------------------------------------------------------


def test_describe_images_with_more_than_25_ids_is_refused(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces", NO_CLIENT_VALIDATION)
    image_ids = [f"wsi-{index:09d}" for index in range(26)]

    with pytest.raises(ClientError) as excinfo:
        workspaces.describe_workspace_images(ImageIds=image_ids)

    code, message = error_of(excinfo)
    assert code == "InvalidParameterValuesException"
    assert "1 to 25" in message


@pytest.mark.parametrize(
    "params",
    [{"MaxResults": 0}, {"MaxResults": 26}, {"ImageType": "PUBLIC"}, {"NextToken": "not-a-token"}],
    ids=["max-results-0", "max-results-26", "unknown-image-type", "forged-next-token"],
)
def test_describe_images_with_invalid_parameters_is_refused(sandbox: SandboxHandle, params: dict[str, Any]) -> None:
    workspaces = client(sandbox, "workspaces", NO_CLIENT_VALIDATION)

    with pytest.raises(ClientError) as excinfo:
        workspaces.describe_workspace_images(**params)

    assert error_of(excinfo)[0] == "InvalidParameterValuesException"
    assert next(iter(params)) in error_of(excinfo)[1]


def test_describe_images_pages_through_every_image_with_max_results_and_next_token(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    mine = {import_image(workspaces) for _ in range(3)}

    pages: list[list[str]] = []
    kwargs: dict[str, Any] = {"MaxResults": 2}
    while True:
        response = workspaces.describe_workspace_images(**kwargs)
        pages.append([image["ImageId"] for image in response["Images"]])
        if "NextToken" not in response:
            break
        kwargs["NextToken"] = response["NextToken"]
    seen = [image_id for page in pages for image_id in page]
    everything = [
        image["ImageId"]
        for page in workspaces.get_paginator("describe_workspace_images").paginate()
        for image in page["Images"]
    ]

    assert len(pages) >= 2
    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2
    assert len(seen) == len(set(seen))
    assert mine <= set(seen)
    assert seen == everything


def test_image_shared_with_another_account_is_listed_there_as_shared_not_owned(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    # Only an image past PENDING can be shared.
    control(sandbox, "POST", "config", {"import_delay": 0})
    image_id = import_image(workspaces)
    workspaces.update_workspace_image_permission(
        ImageId=image_id, AllowCopyImage=True, SharedAccountId=OTHER_ACCOUNT_ID
    )
    other = client_in_account(sandbox, "workspaces", OTHER_ACCOUNT_ID)

    shared = other.describe_workspace_images(ImageType="SHARED")["Images"]
    owned = other.describe_workspace_images(ImageType="OWNED")["Images"]

    assert [(image["ImageId"], image["OwnerAccountId"]) for image in shared] == [(image_id, SANDBOX_ACCOUNT_ID)]
    assert image_id not in {image["ImageId"] for image in owned}


# --- DescribeAccount and BYOL --------------------------------------------------------------


def test_describe_account_reports_byol_enabled(sandbox: SandboxHandle) -> None:
    account = client(sandbox, "workspaces").describe_account()

    assert account["DedicatedTenancySupport"] == "ENABLED"
    assert account["DedicatedTenancyManagementCidrRange"] == "10.0.0.0/16"
    assert "Message" not in account


def test_describe_account_reports_byol_disabled_when_a_fault_turns_it_off(sandbox: SandboxHandle) -> None:
    status, _ = control(sandbox, "POST", "faults", {"byol_enabled": False})

    account = client(sandbox, "workspaces").describe_account()

    assert status == 200
    assert account["DedicatedTenancySupport"] == "DISABLED"
    assert account["Message"] == BYOL_DISABLED_MESSAGE
    assert "DedicatedTenancyManagementCidrRange" not in account


def test_import_while_byol_is_disabled_is_refused_and_makes_no_image(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {"byol_enabled": False})
    before = imported_count(sandbox)

    with pytest.raises(ClientError) as excinfo:
        import_image(workspaces)

    code, message = error_of(excinfo)
    assert code == "OperationNotSupportedException"
    assert "BYOL is not enabled" in message
    assert imported_count(sandbox) == before


# --- faults --------------------------------------------------------------------------------


def describe_account_outcomes(workspaces: BaseClient, count: int) -> list[str]:
    """The outcome of each of ``count`` DescribeAccount calls in order: "ok" or the error code."""
    outcomes = []
    for _ in range(count):
        try:
            workspaces.describe_account()
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    return outcomes


def test_full_throttling_fails_every_call_with_each_protocols_throttling_error(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "faults", {"throttle_rate": 1.0})
    calls = {
        "workspaces": lambda: client(sandbox, "workspaces").describe_account(),
        "ec2": lambda: client(sandbox, "ec2").describe_images(ImageIds=[WIN10_AMI]),
        "sts": lambda: client(sandbox, "sts").get_caller_identity(),
    }

    errors = {}
    for service, call in calls.items():
        with pytest.raises(ClientError) as excinfo:
            call()
        errors[service] = (error_of(excinfo), excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"])

    assert errors == {
        "workspaces": (("ThrottlingException", "Rate exceeded"), 400),
        "ec2": (("RequestLimitExceeded", "Request limit exceeded."), 503),
        "sts": (("Throttling", "Rate exceeded"), 400),
    }
    assert control(sandbox, "GET", "calls")[1] == {"DescribeAccount": 1, "DescribeImages": 1, "GetCallerIdentity": 1}


def test_half_throttling_fails_exactly_every_second_call(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {"throttle_rate": 0.5})

    outcomes = describe_account_outcomes(workspaces, 6)

    assert outcomes == ["ok", "ThrottlingException"] * 3


@pytest.mark.parametrize(
    ("rate", "code"),
    [("throttle_rate", "ThrottlingException"), ("server_error_rate", "InternalFailure")],
    ids=["throttling", "server-errors"],
)
def test_faults_limited_to_some_operations_spare_the_others(sandbox: SandboxHandle, rate: str, code: str) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {rate: 1.0, "operations": ["ImportWorkspaceImage"]})

    with pytest.raises(ClientError) as excinfo:
        import_image(workspaces)
    account = workspaces.describe_account()

    assert error_of(excinfo)[0] == code
    assert account["DedicatedTenancySupport"] == "ENABLED"


def test_full_server_errors_fail_every_call_with_each_protocols_internal_error(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "faults", {"server_error_rate": 1.0})
    calls = {
        "workspaces": lambda: client(sandbox, "workspaces").describe_account(),
        "ec2": lambda: client(sandbox, "ec2").describe_images(ImageIds=[WIN10_AMI]),
        "sts": lambda: client(sandbox, "sts").get_caller_identity(),
    }

    errors = {}
    for service, call in calls.items():
        with pytest.raises(ClientError) as excinfo:
            call()
        errors[service] = (error_of(excinfo), excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"])

    assert errors == {
        "workspaces": (("InternalFailure", INTERNAL_FAILURE), 500),
        "ec2": (("InternalError", "An internal error has occurred."), 500),
        "sts": (("InternalFailure", INTERNAL_FAILURE), 500),
    }
    assert control(sandbox, "GET", "calls")[1] == {"DescribeAccount": 1, "DescribeImages": 1, "GetCallerIdentity": 1}


def test_half_server_errors_fail_exactly_every_second_call(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {"server_error_rate": 0.5})

    outcomes = describe_account_outcomes(workspaces, 6)

    assert outcomes == ["ok", "InternalFailure"] * 3


def test_a_throttle_and_a_server_error_due_on_one_call_throttle_it_and_the_error_takes_the_next(
    sandbox: SandboxHandle,
) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {"throttle_rate": 0.5, "server_error_rate": 0.5})

    outcomes = describe_account_outcomes(workspaces, 6)

    throttled, failed = "ThrottlingException", "InternalFailure"
    assert outcomes == ["ok", throttled, failed, throttled, failed, throttled]


def test_down_drops_every_protocols_call_without_an_answer_and_logs_no_error(
    sandbox: SandboxHandle, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    control(sandbox, "POST", "faults", {"down": True})
    calls = {
        "workspaces": lambda: client(sandbox, "workspaces").describe_account(),
        "ec2": lambda: client(sandbox, "ec2").describe_images(ImageIds=[WIN10_AMI]),
        "sts": lambda: client(sandbox, "sts").get_caller_identity(),
    }

    errors = {}
    for service, call in calls.items():
        with pytest.raises(ConnectionClosedError) as excinfo:
            call()
        errors[service] = str(excinfo.value)

    assert all("closed before we received a valid response" in error for error in errors.values()), errors
    assert control(sandbox, "GET", "calls")[1] == {"DescribeAccount": 1, "DescribeImages": 1, "GetCallerIdentity": 1}
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert "Traceback" not in capfd.readouterr().err


def test_down_limited_to_some_operations_spares_the_others_and_never_the_control_endpoints(
    sandbox: SandboxHandle,
) -> None:
    workspaces = client(sandbox, "workspaces")
    image_id = import_image(workspaces)
    control(sandbox, "POST", "faults", {"down": True, "operations": ["DescribeAccount"]})

    with pytest.raises(ConnectionClosedError):
        workspaces.describe_account()
    image = describe_image(workspaces, image_id)
    status, faults = control(sandbox, "GET", "faults")

    assert image["ImageId"] == image_id
    assert status == 200
    assert faults == {**NO_FAULTS, "down": True, "operations": ["DescribeAccount"]}
    assert control(sandbox, "GET", "calls")[1] == {
        "DescribeAccount": 1,
        "DescribeWorkspaceImages": 1,
        "ImportWorkspaceImage": 1,
    }


@pytest.mark.parametrize(
    ("name", "payload"), [("faults", {"down": False}), ("reset", None)], ids=["down-false", "reset"]
)
def test_calls_work_again_on_the_same_client_once_down_is_lifted(
    sandbox: SandboxHandle, name: str, payload: dict[str, Any] | None
) -> None:
    workspaces = client(sandbox, "workspaces")
    control(sandbox, "POST", "faults", {"down": True})
    with pytest.raises(ConnectionClosedError):
        workspaces.describe_account()

    status, _ = control(sandbox, "POST", name, payload)
    account = workspaces.describe_account()

    assert status == 200
    assert account["DedicatedTenancySupport"] == "ENABLED"


def test_latency_fault_delays_calls_and_reset_removes_it(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    workspaces.describe_account()  # the first call pays for connection set-up
    control(sandbox, "POST", "faults", {"latency_ms": 400})

    started = time.monotonic()
    workspaces.describe_account()
    slow = time.monotonic() - started
    control(sandbox, "POST", "reset")
    started = time.monotonic()
    workspaces.describe_account()
    fast = time.monotonic() - started

    assert slow >= 0.4
    assert fast < 0.4


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"throttle_rate": 1.5}', "throttle_rate"),
        (b'{"throttle_rate": true}', "throttle_rate"),
        (b'{"latency_ms": -1}', "latency_ms"),
        (b'{"byol_enabled": "no"}', "byol_enabled"),
        (b'{"down": "yes"}', "down must be true or false, not 'yes'"),
        (b'{"server_error_rate": 2}', "server_error_rate must be a number from 0 to 1, not 2"),
        (b'{"down": true, "server_error_rate": -0.5}', "server_error_rate must be a number"),
        (b'{"operations": "ImportWorkspaceImage"}', "operations"),
        (b'{"throttle": 1}', "unknown fault keys"),
        (b"[1, 2]", "JSON object"),
        (b"{not json", "not valid JSON"),
    ],
    ids=[
        "rate-above-1",
        "rate-as-boolean",
        "negative-latency",
        "byol-as-string",
        "down-as-string",
        "server-error-rate-above-1",
        "valid-down-with-negative-server-error-rate",
        "operations-as-string",
        "unknown-key",
        "not-an-object",
        "not-json",
    ],
)
def test_invalid_faults_are_refused_with_a_message_and_change_nothing(
    sandbox: SandboxHandle, raw: bytes, fragment: str
) -> None:
    status, body = control(sandbox, "POST", "faults", raw=raw)

    assert status == 400
    assert fragment in body["error"]
    assert control(sandbox, "GET", "faults")[1] == NO_FAULTS


def test_faults_given_one_key_at_a_time_are_merged(sandbox: SandboxHandle) -> None:
    control(sandbox, "POST", "faults", {"latency_ms": 5})

    status, faults = control(sandbox, "POST", "faults", {"byol_enabled": False})

    assert status == 200
    assert faults == {**NO_FAULTS, "latency_ms": 5.0, "byol_enabled": False}


def test_reset_clears_counters_and_faults_but_keeps_images(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    image_id = import_image(workspaces)
    faults = {"throttle_rate": 1.0, "server_error_rate": 1.0, "down": True, "byol_enabled": False}
    control(sandbox, "POST", "faults", faults)

    status, after = control(sandbox, "POST", "reset")

    assert status == 200
    assert after["calls"] == {}
    assert after["faults"] == NO_FAULTS
    assert describe_image(workspaces, image_id)["ImageId"] == image_id


# --- counting, control endpoints, STS ------------------------------------------------------


def test_calls_are_counted_per_operation_exactly(sandbox: SandboxHandle) -> None:
    sts, ec2, workspaces = (client(sandbox, service) for service in ("sts", "ec2", "workspaces"))

    sts.get_caller_identity()
    ec2.describe_images(ImageIds=[WIN10_AMI])
    ec2.describe_images(ImageIds=[LINUX_AMI])
    workspaces.describe_account()
    image_id = import_image(workspaces)
    for _ in range(3):
        workspaces.describe_workspace_images(ImageIds=[image_id])
    workspaces.describe_tags(ResourceId=image_id)
    control(sandbox, "GET", "images")

    assert control(sandbox, "GET", "calls")[1] == {
        "DescribeAccount": 1,
        "DescribeImages": 2,
        "DescribeTags": 1,
        "DescribeWorkspaceImages": 3,
        "GetCallerIdentity": 1,
        "ImportWorkspaceImage": 1,
    }
    assert control(sandbox, "GET", "calls?by=service")[1] == {
        "ec2": {"DescribeImages": 2},
        "sts": {"GetCallerIdentity": 1},
        "workspaces": {
            "DescribeAccount": 1,
            "DescribeTags": 1,
            "DescribeWorkspaceImages": 3,
            "ImportWorkspaceImage": 1,
        },
    }


def test_sts_answers_for_the_sandbox_account_and_assumes_roles(sandbox: SandboxHandle) -> None:
    sts = client(sandbox, "sts")

    identity = sts.get_caller_identity()
    assumed = sts.assume_role(
        RoleArn=f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:role/portal-import", RoleSessionName="portal", ExternalId="ext-1"
    )
    as_role = client(
        sandbox,
        "sts",
        aws_access_key_id=assumed["Credentials"]["AccessKeyId"],
        aws_secret_access_key=assumed["Credentials"]["SecretAccessKey"],
        aws_session_token=assumed["Credentials"]["SessionToken"],
    ).get_caller_identity()

    assert identity["Account"] == SANDBOX_ACCOUNT_ID
    assert assumed["AssumedRoleUser"]["Arn"].endswith(":assumed-role/portal-import/portal")
    assert as_role["Account"] == SANDBOX_ACCOUNT_ID
    assert as_role["Arn"] == assumed["AssumedRoleUser"]["Arn"]


def test_config_changes_the_delay_of_later_imports(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")

    status, config = control(sandbox, "POST", "config", {"import_delay": 0})
    image = describe_image(workspaces, import_image(workspaces))

    assert status == 200
    assert config["import_delay"] == 0.0
    assert image["State"] == "AVAILABLE"


@pytest.mark.parametrize(
    "payload",
    [{"import_delay": -1}, {"import_delay": "soon"}, {"image_quota": 0}, {"delay": 5}],
    ids=["negative-delay", "delay-as-string", "zero-quota", "unknown-key"],
)
def test_invalid_config_is_refused_with_a_message(sandbox: SandboxHandle, payload: dict[str, Any]) -> None:
    status, body = control(sandbox, "POST", "config", payload)

    assert status == 400
    assert body["error"]
    assert control(sandbox, "GET", "config")[1] == {"import_delay": TEST_DELAY, "image_quota": None}


def test_images_endpoint_lists_each_import_with_its_source_and_state(sandbox: SandboxHandle) -> None:
    workspaces = client(sandbox, "workspaces")
    image_id = import_image(workspaces, IngestionProcess="BYOL_GRAPHICS_G4DN_WSP")

    status, body = control(sandbox, "GET", "images")

    listed = {image["ImageId"]: image for image in body["Images"]}[image_id]
    assert status == 200
    assert listed["State"] == "PENDING"
    assert listed["Ec2ImageId"] == WIN10_AMI
    assert listed["IngestionProcess"] == "BYOL_GRAPHICS_G4DN_WSP"
    assert listed["AccountId"] == SANDBOX_ACCOUNT_ID
    assert listed["ReadyAt"] == pytest.approx(listed["Created"] + TEST_DELAY)


def test_starting_on_a_port_already_in_use_raises_instead_of_exiting(sandbox: SandboxHandle) -> None:
    with pytest.raises(OSError, match="in use"):
        start_sandbox(port=sandbox.port, seed=False)


def test_unknown_control_endpoint_or_method_is_refused(sandbox: SandboxHandle) -> None:
    assert control(sandbox, "GET", "nothing-here")[0] == 404
    assert control(sandbox, "GET", "reset")[0] == 405
    assert control(sandbox, "GET", "calls")[1] == {}


# --- python -m sandbox --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_sandbox/health", timeout=1) as response:  # noqa: S310
                return dict(json.load(response))
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the sandbox at {url} never answered (exit code {process.poll()})")


def test_command_serves_until_sigint_and_exits_cleanly() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--import-delay", "2.5"]
    process = subprocess.Popen(  # noqa: S603 -- our own manage.py with fixed arguments
        command, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        health = wait_until_answering(url, process)
        identity = boto3.client(
            "sts", endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        ).get_caller_identity()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert health == {"status": "ok", "import_delay": 2.5, "image_quota": None}
    assert identity["Account"] == SANDBOX_ACCOUNT_ID
    assert process.returncode == 0, stderr
    assert f"listening on {url}" in stdout
    assert "stopped" in stdout
