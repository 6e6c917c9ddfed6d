"""The rollout's WorkSpaces operations in the sandbox: bundles, copies across regions and sharing,
driven with boto3 as the portal drives AWS.

Each test works in an account of its own (seeded with the demo AMIs), so quotas, pages and name
checks see only what the test made, whatever other modules left in moto's process-wide state.
"""

import json
import secrets
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox import SandboxHandle, control_sandbox, seed_images, start_sandbox
from sandbox.rollout import BUNDLE_PAGE_SIZE, BUNDLE_QUOTA

REGION = "us-east-1"
DESTINATION = "eu-west-1"
WIN10_AMI = "ami-05eed000000000001"
FAILING_AMI = "ami-05eed000000000005"
WIN11_AMI = "ami-05eed000000000008"
DELAY = 0.6
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
NO_CLIENT_VALIDATION = Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})
PARTNER = "210987654321"
NEW_OPERATIONS = (
    "CreateWorkspaceBundle",
    "DescribeWorkspaceBundles",
    "DeleteWorkspaceBundle",
    "CopyWorkspaceImage",
    "UpdateWorkspaceImagePermission",
    "DescribeWorkspaceImagePermissions",
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=DELAY)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle) -> None:
    control_sandbox(sandbox.url, "reset", {})
    control_sandbox(sandbox.url, "config", {"import_delay": DELAY, "image_quota": None})


@pytest.fixture
def account() -> str:
    """A fresh account; ``import_image`` gives it the demo AMIs where it imports."""
    return "9" + "".join(secrets.choice("0123456789") for _ in range(11))


def workspaces(
    sandbox: SandboxHandle, account_id: str, region: str = REGION, config: Config = NO_RETRIES
) -> BaseClient:
    """A client whose calls the sandbox attributes to ``account_id`` (moto's account header)."""
    client = boto3.client(
        "workspaces",
        endpoint_url=sandbox.url,
        region_name=region,
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def add_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-sign.workspaces.*", add_account)
    client.sandbox_account = account_id  # type: ignore[attr-defined]
    return client


def refused(call: Any, **kwargs: Any) -> tuple[str, str, dict[str, Any]]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"], caught.value.response


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def wait_for(client: BaseClient, image_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        images = client.describe_workspace_images(ImageIds=[image_id])["Images"]
        if images and images[0]["State"] == state:
            return images[0]
        time.sleep(0.05)
    raise AssertionError(f"{image_id} did not reach {state}")


def import_image(client: BaseClient, *, ami: str = WIN10_AMI, ingestion: str = "BYOL_REGULAR_WSP") -> str:
    seed_images(account_id=client.sandbox_account, region=client.meta.region_name)  # type: ignore[attr-defined]
    image_id = client.import_workspace_image(
        Ec2ImageId=ami, IngestionProcess=ingestion, ImageName=name("img"), ImageDescription="Rollout test"
    )["ImageId"]
    return image_id


def available_image(client: BaseClient, **kwargs: Any) -> str:
    image_id = import_image(client, **kwargs)
    wait_for(client, image_id, "AVAILABLE")
    return image_id


def bundle_params(image_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "BundleName": name("bundle"),
        "BundleDescription": "Finance desktops",
        "ImageId": image_id,
        "ComputeType": {"Name": "STANDARD"},
        "UserStorage": {"Capacity": "50"},
        "RootStorage": {"Capacity": "80"},
    } | overrides


def calls(sandbox: SandboxHandle) -> dict[str, int]:
    with urllib.request.urlopen(f"{sandbox.url}/_sandbox/calls", timeout=10) as response:  # noqa: S310
        return dict(json.load(response))


# --- CreateWorkspaceBundle / DescribeWorkspaceBundles / DeleteWorkspaceBundle ---------------


def test_a_bundle_from_an_available_image_is_described_by_id_and_owner_with_its_tags(
    sandbox: SandboxHandle, account: str
) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    params = bundle_params(image_id, Tags=[{"Key": "portal:request", "Value": "42"}])

    bundle = client.create_workspace_bundle(**params)["WorkspaceBundle"]

    assert bundle["BundleId"].startswith("wsb-")
    assert {key: bundle[key] for key in ("Name", "Description", "Owner", "ImageId", "State", "BundleType")} == {
        "Name": params["BundleName"],
        "Description": "Finance desktops",
        "Owner": account,
        "ImageId": image_id,
        "State": "AVAILABLE",
        "BundleType": "REGULAR",
    }
    assert bundle["ComputeType"] == {"Name": "STANDARD"}
    assert (bundle["RootStorage"], bundle["UserStorage"]) == ({"Capacity": "80"}, {"Capacity": "50"})
    by_id = client.describe_workspace_bundles(BundleIds=[bundle["BundleId"]])["Bundles"]
    mine = client.describe_workspace_bundles()["Bundles"]
    by_owner = client.describe_workspace_bundles(Owner=account)["Bundles"]
    assert [b["BundleId"] for b in by_id] == [bundle["BundleId"]]
    assert [b["BundleId"] for b in mine] == [b["BundleId"] for b in by_owner] == [bundle["BundleId"]]
    assert client.describe_workspace_bundles(Owner="AMAZON")["Bundles"] == []
    assert client.describe_tags(ResourceId=bundle["BundleId"])["TagList"] == [{"Key": "portal:request", "Value": "42"}]
    assert workspaces(sandbox, PARTNER).describe_workspace_bundles(BundleIds=[bundle["BundleId"]])["Bundles"] == []


def test_root_storage_defaults_to_80_gb(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    params = bundle_params(available_image(client), UserStorage={"Capacity": "10"})
    del params["RootStorage"]

    bundle = client.create_workspace_bundle(**params)["WorkspaceBundle"]

    assert (bundle["RootStorage"], bundle["UserStorage"]) == ({"Capacity": "80"}, {"Capacity": "10"})


@pytest.mark.parametrize(("root", "user"), [("80", "10"), ("80", "100"), ("175", "100"), ("2000", "2000")])
def test_the_documented_volume_pairs_are_accepted(sandbox: SandboxHandle, account: str, root: str, user: str) -> None:
    client = workspaces(sandbox, account)
    params = bundle_params(available_image(client), RootStorage={"Capacity": root}, UserStorage={"Capacity": user})

    assert client.create_workspace_bundle(**params)["WorkspaceBundle"]["RootStorage"] == {"Capacity": root}


@pytest.mark.parametrize(
    ("root", "user"), [("80", "20"), ("80", "200"), ("100", "100"), ("175", "50"), ("2001", "100"), ("175", "2001")]
)
def test_volume_pairs_outside_the_documented_groups_are_refused(
    sandbox: SandboxHandle, account: str, root: str, user: str
) -> None:
    client = workspaces(sandbox, account)
    params = bundle_params(available_image(client), RootStorage={"Capacity": root}, UserStorage={"Capacity": user})

    code, message, _ = refused(client.create_workspace_bundle, **params)

    assert code == "InvalidParameterValuesException"
    assert f"root volume of {int(root)} GB with a user volume of {int(user)} GB" in message


def test_a_capacity_that_is_not_a_whole_number_is_refused(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    params = bundle_params(available_image(client), UserStorage={"Capacity": "50GB"})

    code, message, _ = refused(client.create_workspace_bundle, **params)

    assert (code, "UserStorage.Capacity '50GB'" in message) == ("InvalidParameterValuesException", True)


def test_a_bundle_from_a_pending_error_or_unknown_image_is_refused(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    failed = import_image(client, ami=FAILING_AMI)
    wait_for(client, failed, "ERROR")
    pending = import_image(client)

    pending_code, pending_message, pending_answer = refused(client.create_workspace_bundle, **bundle_params(pending))
    error_code, _, _ = refused(client.create_workspace_bundle, **bundle_params(failed))
    unknown_code, _, unknown_answer = refused(client.create_workspace_bundle, **bundle_params("wsi-000000000"))

    assert (pending_code, error_code) == ("ResourceUnavailableException", "ResourceUnavailableException")
    assert "PENDING" in pending_message
    assert pending_answer["ResourceId"] == pending
    assert (unknown_code, unknown_answer["ResourceId"]) == ("ResourceNotFoundException", "wsi-000000000")


def test_another_accounts_image_makes_no_bundle_even_when_shared(sandbox: SandboxHandle, account: str) -> None:
    owner = workspaces(sandbox, account)
    image_id = available_image(owner)
    owner.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER)

    code, _, _ = refused(workspaces(sandbox, PARTNER).create_workspace_bundle, **bundle_params(image_id))

    assert code == "ResourceNotFoundException"


def test_a_bundle_name_is_unique_per_account_and_region(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    params = bundle_params(image_id)
    first = client.create_workspace_bundle(**params)["WorkspaceBundle"]

    code, message, _ = refused(client.create_workspace_bundle, **params)
    other_region = workspaces(sandbox, account, DESTINATION)
    copy_id = other_region.copy_workspace_image(Name=name("copy"), SourceImageId=image_id, SourceRegion=REGION)[
        "ImageId"
    ]
    wait_for(other_region, copy_id, "AVAILABLE")
    elsewhere = other_region.create_workspace_bundle(**bundle_params(copy_id, BundleName=params["BundleName"]))

    assert code == "ResourceAlreadyExistsException"
    assert first["BundleId"] in message
    assert elsewhere["WorkspaceBundle"]["Name"] == params["BundleName"]


@pytest.mark.parametrize(
    ("ingestion", "allowed", "refused_type"),
    [
        ("BYOL_REGULAR_WSP", "POWERPRO", "GRAPHICS_G4DN"),
        ("BYOL_GRAPHICS_G4DN_WSP", "GRAPHICSPRO_G4DN", "STANDARD"),
        ("BYOL_GRAPHICSPRO", "GRAPHICSPRO", "GRAPHICS_G4DN"),
    ],
)
def test_compute_types_follow_the_images_ingestion_process(
    sandbox: SandboxHandle, account: str, ingestion: str, allowed: str, refused_type: str
) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client, ingestion=ingestion)

    ok = client.create_workspace_bundle(**bundle_params(image_id, ComputeType={"Name": allowed}))
    code, message, _ = refused(
        client.create_workspace_bundle, **bundle_params(image_id, ComputeType={"Name": refused_type})
    )

    assert ok["WorkspaceBundle"]["ComputeType"] == {"Name": allowed}
    assert code == "InvalidParameterValuesException"
    assert f"({ingestion}) cannot run on compute type {refused_type}" in message


def test_compute_types_of_an_image_builder_import_follow_its_compute_type(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    seed_images(account_id=account, region=REGION)
    infrastructure = f"arn:aws:imagebuilder:{REGION}:{account}:infrastructure-configuration/byol-import-gpu"
    image_id = client.import_custom_workspace_image(
        ImageName=name("ib"),
        ImageDescription="GPU through Image Builder",
        ComputeType="GRAPHICS_G6",
        Protocol="DCV",
        ImageSource={"Ec2ImageId": WIN11_AMI},
        InfrastructureConfigurationArn=infrastructure,
        Platform="WINDOWS",
        OsVersion="Windows_11",
    )["ImageId"]
    wait_for(client, image_id, "AVAILABLE")

    ok = client.create_workspace_bundle(**bundle_params(image_id, ComputeType={"Name": "GRAPHICS_G6_XLARGE"}))
    code, _, _ = refused(client.create_workspace_bundle, **bundle_params(image_id, ComputeType={"Name": "VALUE"}))

    assert ok["WorkspaceBundle"]["ComputeType"] == {"Name": "GRAPHICS_G6_XLARGE"}
    assert code == "InvalidParameterValuesException"


def test_the_bundle_quota_of_the_region_is_enforced_and_bundles_come_in_pages(
    sandbox: SandboxHandle, account: str
) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    made = [client.create_workspace_bundle(**bundle_params(image_id))["WorkspaceBundle"] for _ in range(BUNDLE_QUOTA)]

    code, _, _ = refused(client.create_workspace_bundle, **bundle_params(image_id))
    pages = [page["Bundles"] for page in client.get_paginator("describe_workspace_bundles").paginate()]

    assert code == "ResourceLimitExceededException"
    assert [len(page) for page in pages] == [BUNDLE_PAGE_SIZE, BUNDLE_QUOTA - BUNDLE_PAGE_SIZE]
    assert [bundle["BundleId"] for page in pages for bundle in page] == [bundle["BundleId"] for bundle in made]


def test_delete_bundle_then_the_image_can_be_deleted(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    bundle_id = client.create_workspace_bundle(**bundle_params(image_id))["WorkspaceBundle"]["BundleId"]

    code, message, _ = refused(client.delete_workspace_image, ImageId=image_id)
    client.delete_workspace_bundle(BundleId=bundle_id)
    again_code, _, _ = refused(client.delete_workspace_bundle, BundleId=bundle_id)
    client.delete_workspace_image(ImageId=image_id)

    assert code == "ResourceAssociatedException"
    assert bundle_id in message
    assert again_code == "ResourceNotFoundException"
    assert client.describe_workspace_bundles()["Bundles"] == []
    assert client.describe_workspace_images(ImageIds=[image_id])["Images"] == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "BundleName is required"),
        ({"BundleName": "has space"}, "BundleName 'has space' does not match"),
        ({"BundleDescription": "semi;colon"}, "BundleDescription 'semi;colon' does not match"),
        ({"ImageId": "ami-123"}, "ImageId 'ami-123' does not match"),
        ({"ComputeType": {"Name": "HUGE"}}, "ComputeType.Name 'HUGE' is not one of"),
        ({"UserStorage": {}}, "UserStorage.Capacity is required"),
        ({"RootStorage": {"Capacity": ""}}, "RootStorage.Capacity must be 1 to"),
        ({"Tags": [{"Key": "aws:x", "Value": "y"}]}, "reserved prefix aws:"),
    ],
)
def test_create_bundle_is_validated_by_the_server(
    sandbox: SandboxHandle, account: str, params: dict[str, Any], expected: str
) -> None:
    client = workspaces(sandbox, account, config=NO_CLIENT_VALIDATION)
    request = bundle_params("wsi-000000000") | params if params else {}

    code, message, _ = refused(client.create_workspace_bundle, **request)

    assert code == "InvalidParameterValuesException"
    assert expected in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"BundleIds": []}, "BundleIds must hold 1 to 25"),
        ({"BundleIds": ["wsb-BAD"]}, "BundleIds[0] 'wsb-BAD' does not match"),
        ({"BundleIds": ["wsb-000000000"], "Owner": "AMAZON"}, "BundleIds and Owner cannot be combined"),
        ({"NextToken": "bm9wZQ=="}, "is not a token that DescribeWorkspaceBundles returned"),
    ],
)
def test_describe_bundles_is_validated_by_the_server(
    sandbox: SandboxHandle, account: str, params: dict[str, Any], expected: str
) -> None:
    client = workspaces(sandbox, account, config=NO_CLIENT_VALIDATION)

    code, message, _ = refused(client.describe_workspace_bundles, **params)

    assert (code, expected in message) == ("InvalidParameterValuesException", True)


def test_delete_bundle_is_validated_by_the_server(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account, config=NO_CLIENT_VALIDATION)

    missing = refused(client.delete_workspace_bundle)
    malformed = refused(client.delete_workspace_bundle, BundleId="wsi-000000000")

    assert missing[:2] == (
        "InvalidParameterValuesException",
        "Invalid DeleteWorkspaceBundle request: BundleId is required.",
    )
    assert malformed[0] == "InvalidParameterValuesException"


# --- CopyWorkspaceImage --------------------------------------------------------------------


def test_a_copy_is_pending_then_available_in_the_destination_only_and_makes_bundles(
    sandbox: SandboxHandle, account: str
) -> None:
    source = workspaces(sandbox, account)
    destination = workspaces(sandbox, account, DESTINATION)
    image_id = available_image(source, ingestion="BYOL_GRAPHICS_G4DN_WSP")
    copy_name = name("copy")

    copy_id = destination.copy_workspace_image(
        Name=copy_name, SourceImageId=image_id, SourceRegion=REGION, Tags=[{"Key": "portal:request", "Value": "7"}]
    )["ImageId"]
    first = destination.describe_workspace_images(ImageIds=[copy_id])["Images"][0]
    available = wait_for(destination, copy_id, "AVAILABLE")
    bundle = destination.create_workspace_bundle(**bundle_params(copy_id, ComputeType={"Name": "GRAPHICS_G4DN"}))

    assert copy_id != image_id
    assert first["State"] == "PENDING"
    assert (available["Name"], available["Description"], available["OwnerAccountId"]) == (
        copy_name,
        "Rollout test",
        account,
    )
    assert available["RequiredTenancy"] == "DEDICATED"
    assert copy_id not in {image["ImageId"] for image in source.describe_workspace_images()["Images"]}
    assert source.describe_workspace_images(ImageIds=[image_id])["Images"][0]["State"] == "AVAILABLE"
    assert destination.describe_tags(ResourceId=copy_id)["TagList"] == [{"Key": "portal:request", "Value": "7"}]
    assert bundle["WorkspaceBundle"]["ImageId"] == copy_id
    wrong = refused(destination.create_workspace_bundle, **bundle_params(copy_id, ComputeType={"Name": "VALUE"}))
    assert wrong[0] == "InvalidParameterValuesException"


def test_a_copy_within_the_same_region_is_allowed(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)

    copy_id = client.copy_workspace_image(Name=name("same"), SourceImageId=image_id, SourceRegion=REGION)["ImageId"]

    assert wait_for(client, copy_id, "AVAILABLE")["ImageId"] == copy_id


def test_copy_of_a_missing_pending_or_failed_image_is_refused(sandbox: SandboxHandle, account: str) -> None:
    source = workspaces(sandbox, account)
    destination = workspaces(sandbox, account, DESTINATION)
    failed = import_image(source, ami=FAILING_AMI)
    wait_for(source, failed, "ERROR")
    pending = import_image(source)

    codes = [
        refused(destination.copy_workspace_image, Name=name("c"), SourceImageId=image_id, SourceRegion=REGION)[0]
        for image_id in ("wsi-000000000", pending, failed)
    ]
    wrong_region = refused(
        destination.copy_workspace_image, Name=name("c"), SourceImageId=pending, SourceRegion="us-west-2"
    )[0]

    assert codes == ["ResourceNotFoundException", "ResourceUnavailableException", "ResourceUnavailableException"]
    assert wrong_region == "ResourceNotFoundException"
    assert destination.describe_workspace_images()["Images"] == []


def test_copy_is_refused_while_byol_is_disabled_and_for_a_taken_name(sandbox: SandboxHandle, account: str) -> None:
    source = workspaces(sandbox, account)
    destination = workspaces(sandbox, account, DESTINATION)
    image_id = available_image(source)
    taken = name("taken")
    destination.copy_workspace_image(Name=taken, SourceImageId=image_id, SourceRegion=REGION)

    duplicate = refused(destination.copy_workspace_image, Name=taken, SourceImageId=image_id, SourceRegion=REGION)
    control_sandbox(sandbox.url, "faults", {"byol_enabled": False})
    byol_off = refused(destination.copy_workspace_image, Name=name("c"), SourceImageId=image_id, SourceRegion=REGION)

    assert duplicate[0] == "ResourceAlreadyExistsException"
    assert byol_off[0] == "OperationNotSupportedException"
    assert "BYOL is not enabled" in byol_off[1]


def test_copy_counts_against_the_destinations_image_quota(sandbox: SandboxHandle, account: str) -> None:
    source = workspaces(sandbox, account)
    destination = workspaces(sandbox, account, DESTINATION)
    image_id = available_image(source)
    destination.copy_workspace_image(Name=name("c"), SourceImageId=image_id, SourceRegion=REGION)
    control_sandbox(sandbox.url, "config", {"image_quota": 1})

    code, _, _ = refused(destination.copy_workspace_image, Name=name("c"), SourceImageId=image_id, SourceRegion=REGION)

    assert code == "ResourceLimitExceededException"


@pytest.mark.parametrize(
    ("source_region", "destination_region"),
    [("cn-north-1", "cn-northwest-1"), ("us-gov-west-1", "us-east-1"), ("us-east-1", "us-gov-east-1")],
)
def test_copies_into_or_out_of_ningxia_and_govcloud_are_refused(
    sandbox: SandboxHandle, account: str, source_region: str, destination_region: str
) -> None:
    client = workspaces(sandbox, account, destination_region)

    code, _, _ = refused(
        client.copy_workspace_image, Name=name("c"), SourceImageId="wsi-000000000", SourceRegion=source_region
    )

    assert code == "OperationNotSupportedException"


def test_an_image_shared_with_the_caller_can_be_copied_to_its_own_region(sandbox: SandboxHandle, account: str) -> None:
    owner = workspaces(sandbox, account)
    image_id = available_image(owner)
    owner.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER)
    partner = workspaces(sandbox, PARTNER, DESTINATION)

    copy_id = partner.copy_workspace_image(Name=name("mine"), SourceImageId=image_id, SourceRegion=REGION)["ImageId"]

    assert wait_for(partner, copy_id, "AVAILABLE")["OwnerAccountId"] == PARTNER


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"SourceImageId": "wsi-000000000", "SourceRegion": REGION}, "Name is required"),
        ({"Name": "a b", "SourceImageId": "wsi-000000000", "SourceRegion": REGION}, "Name 'a b' does not match"),
        ({"Name": "n", "SourceImageId": "wsi-000000000", "SourceRegion": "US_EAST"}, "SourceRegion 'US_EAST'"),
        ({"Name": "n", "SourceImageId": "ami-1", "SourceRegion": REGION}, "SourceImageId 'ami-1' does not match"),
        ({"Name": "n", "SourceImageId": "wsi-000000000", "SourceRegion": REGION, "Description": ""}, "Description"),
    ],
)
def test_copy_is_validated_by_the_server(
    sandbox: SandboxHandle, account: str, params: dict[str, Any], expected: str
) -> None:
    client = workspaces(sandbox, account, DESTINATION, config=NO_CLIENT_VALIDATION)

    code, message, _ = refused(client.copy_workspace_image, **params)

    assert (code, expected in message) == ("InvalidParameterValuesException", True)


# --- UpdateWorkspaceImagePermission / DescribeWorkspaceImagePermissions --------------------


def test_share_then_describe_then_unshare(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)

    client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER)
    client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER)
    shared = client.describe_workspace_image_permissions(ImageId=image_id)
    seen_by_partner = workspaces(sandbox, PARTNER).describe_workspace_images(ImageType="SHARED")["Images"]
    client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=False, SharedAccountId=PARTNER)
    unshared = client.describe_workspace_image_permissions(ImageId=image_id)

    assert (shared["ImageId"], shared["ImagePermissions"]) == (image_id, [{"SharedAccountId": PARTNER}])
    assert image_id in {image["ImageId"] for image in seen_by_partner}
    assert unshared["ImagePermissions"] == []


def test_grants_come_in_pages(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    partners = [f"11112222{index:04d}" for index in range(5)]
    for partner in partners:
        client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=partner)

    first = client.describe_workspace_image_permissions(ImageId=image_id, MaxResults=2)
    second = client.describe_workspace_image_permissions(ImageId=image_id, MaxResults=2, NextToken=first["NextToken"])
    third = client.describe_workspace_image_permissions(ImageId=image_id, MaxResults=2, NextToken=second["NextToken"])

    pages = [first, second, third]
    assert [grant["SharedAccountId"] for page in pages for grant in page["ImagePermissions"]] == partners
    assert "NextToken" not in third


def test_delete_is_refused_while_the_image_is_shared(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER)

    code, message, _ = refused(client.delete_workspace_image, ImageId=image_id)
    client.update_workspace_image_permission(ImageId=image_id, AllowCopyImage=False, SharedAccountId=PARTNER)
    client.delete_workspace_image(ImageId=image_id)

    assert (code, PARTNER in message) == ("ResourceAssociatedException", True)


def test_sharing_refusals(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account)
    image_id = available_image(client)
    pending = import_image(client)
    partner = workspaces(sandbox, PARTNER)

    unknown = refused(
        client.update_workspace_image_permission, ImageId="wsi-000000000", AllowCopyImage=True, SharedAccountId=PARTNER
    )
    not_ready = refused(
        client.update_workspace_image_permission, ImageId=pending, AllowCopyImage=True, SharedAccountId=PARTNER
    )
    to_self = refused(
        client.update_workspace_image_permission, ImageId=image_id, AllowCopyImage=True, SharedAccountId=account
    )
    not_shared = refused(
        client.update_workspace_image_permission, ImageId=image_id, AllowCopyImage=False, SharedAccountId=PARTNER
    )
    not_owner = refused(
        partner.update_workspace_image_permission,
        ImageId=image_id,
        AllowCopyImage=True,
        SharedAccountId="111122223333",
    )
    not_owner_describe = refused(partner.describe_workspace_image_permissions, ImageId=image_id)
    describe_unknown = refused(client.describe_workspace_image_permissions, ImageId="wsi-000000000")
    control_sandbox(sandbox.url, "faults", {"byol_enabled": False})
    byol_off = refused(
        client.update_workspace_image_permission, ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER
    )

    assert unknown[0] == "ResourceNotFoundException"
    assert (not_ready[0], not_ready[2]["ResourceId"]) == ("ResourceUnavailableException", pending)
    assert to_self[0] == "InvalidParameterValuesException"
    assert not_shared[0] == "InvalidParameterValuesException"
    assert not_owner[0] == not_owner_describe[0] == "AccessDeniedException"
    assert describe_unknown[0] == "ResourceNotFoundException"
    assert byol_off[0] == "OperationNotSupportedException"
    assert client.describe_workspace_image_permissions(ImageId=image_id)["ImagePermissions"] == []


def test_byol_images_are_not_shared_across_accounts_in_govcloud(sandbox: SandboxHandle, account: str) -> None:
    client = workspaces(sandbox, account, "us-gov-west-1")
    image_id = available_image(client)

    code, message, _ = refused(
        client.update_workspace_image_permission, ImageId=image_id, AllowCopyImage=True, SharedAccountId=PARTNER
    )

    assert (code, "GovCloud" in message) == ("OperationNotSupportedException", True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"ImageId": "wsi-000000000", "AllowCopyImage": True}, "SharedAccountId is required"),
        ({"ImageId": "wsi-000000000", "SharedAccountId": PARTNER}, "AllowCopyImage is required"),
        ({"ImageId": "wsi-000000000", "AllowCopyImage": "yes", "SharedAccountId": PARTNER}, "true or false"),
        ({"ImageId": "wsi-000000000", "AllowCopyImage": True, "SharedAccountId": "12345"}, "SharedAccountId"),
        ({"ImageId": "wsi-000000000", "AllowCopyImage": True, "SharedAccountId": "12345678901x"}, "does not match"),
    ],
)
def test_update_permission_is_validated_by_the_server(
    sandbox: SandboxHandle, account: str, params: dict[str, Any], expected: str
) -> None:
    client = workspaces(sandbox, account, config=NO_CLIENT_VALIDATION)

    code, message, _ = refused(client.update_workspace_image_permission, **params)

    assert (code, expected in message) == ("InvalidParameterValuesException", True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "ImageId is required"),
        ({"ImageId": "wsi-000000000", "MaxResults": 26}, "MaxResults must be a whole number from 1 to 25"),
        ({"ImageId": "wsi-000000000", "NextToken": ""}, "NextToken must be 1 to 2048"),
    ],
)
def test_describe_permissions_is_validated_by_the_server(
    sandbox: SandboxHandle, account: str, params: dict[str, Any], expected: str
) -> None:
    client = workspaces(sandbox, account, config=NO_CLIENT_VALIDATION)

    code, message, _ = refused(client.describe_workspace_image_permissions, **params)

    assert (code, expected in message) == ("InvalidParameterValuesException", True)


# --- faults and counting -------------------------------------------------------------------


def _call_each(client: BaseClient) -> dict[str, Any]:
    """One call of each new operation, with arguments the model accepts."""
    return {
        "CreateWorkspaceBundle": lambda: client.create_workspace_bundle(**bundle_params("wsi-000000000")),
        "DescribeWorkspaceBundles": lambda: client.describe_workspace_bundles(),
        "DeleteWorkspaceBundle": lambda: client.delete_workspace_bundle(BundleId="wsb-000000000"),
        "CopyWorkspaceImage": lambda: client.copy_workspace_image(
            Name=name("c"), SourceImageId="wsi-000000000", SourceRegion=REGION
        ),
        "UpdateWorkspaceImagePermission": lambda: client.update_workspace_image_permission(
            ImageId="wsi-000000000", AllowCopyImage=True, SharedAccountId=PARTNER
        ),
        "DescribeWorkspaceImagePermissions": lambda: client.describe_workspace_image_permissions(
            ImageId="wsi-000000000"
        ),
    }


@pytest.mark.parametrize("operation", NEW_OPERATIONS)
def test_a_throttle_fault_hits_each_new_operation_and_the_call_is_counted(
    sandbox: SandboxHandle, account: str, operation: str
) -> None:
    client = workspaces(sandbox, account)
    control_sandbox(sandbox.url, "faults", {"throttle_rate": 1.0, "operations": [operation]})

    code, message, answer = refused(_call_each(client)[operation])
    untouched = client.describe_workspace_images()

    assert (code, message) == ("ThrottlingException", "Rate exceeded")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert untouched["Images"] == []
    assert calls(sandbox)[operation] == 1


@pytest.mark.parametrize("operation", ["CopyWorkspaceImage", "CreateWorkspaceBundle"])
def test_server_errors_and_a_dropped_connection_hit_the_new_operations(
    sandbox: SandboxHandle, account: str, operation: str
) -> None:
    client = workspaces(sandbox, account)
    control_sandbox(sandbox.url, "faults", {"server_error_rate": 1.0, "operations": [operation]})
    server_error = refused(_call_each(client)[operation])
    control_sandbox(sandbox.url, "faults", {"server_error_rate": 0.0, "down": True})

    with pytest.raises(Exception) as dropped:  # noqa: PT011 - botocore's connection errors vary by stage
        _call_each(client)[operation]()

    assert (server_error[0], server_error[2]["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalFailure", 500)
    assert not isinstance(dropped.value, ClientError)
