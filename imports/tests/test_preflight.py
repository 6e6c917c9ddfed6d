"""aws.run_preflight (PRODUCT.md section 6) end to end against the local AWS sandbox.

No database. Each test starts from the seeded AMIs and no WorkSpaces images: moto keeps images
for the whole process (other modules import some too), and the name and quota checks count them.
"""

import json
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import Stubber

from imports import aws
from sandbox import SandboxHandle, start_sandbox
from sandbox.workspaces import BYOL_DISABLED_MESSAGE

ACCOUNT_ID = "123456789012"
PARTNER_ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
IDENTITY = "IMP-000001"
# The sandbox's seeds (sandbox/seed.py).
WIN10_AMI = "ami-05eed000000000001"  # legacy BIOS, 60 GB
LARGE_ROOT_AMI = "ami-05eed000000000002"  # Windows 11, UEFI, 80 GB root
TWO_VOLUME_AMI = "ami-05eed000000000003"  # Windows 10, no boot mode set, 64 GB root and a data volume
ENCRYPTED_AMI = "ami-05eed000000000004"  # Windows 11, UEFI, encrypted 70 GB root
OFFICE_AMI = "ami-05eed000000000005"  # Windows 10, legacy BIOS, 76 GB root
LINUX_AMI = "ami-05eed000000000006"
PARTNER_AMI = "ami-05eed000000000007"
WIN11_AMI = "ami-05eed000000000008"  # UEFI, 64 GB
HUGE_ROOT_AMI = "ami-05eed000000000009"  # Windows 10, legacy BIOS, 100 GB root
UNKNOWN_AMI = "ami-0123456789abcdef0"
ALL_PASS = [("credentials", "pass"), ("byol", "pass"), ("ami", "pass"), ("name", "pass")]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=1.0)
    yield handle
    handle.stop()


def post(sandbox: SandboxHandle, path: str, payload: Any = None) -> Any:
    data = json.dumps(payload if payload is not None else {}).encode()
    # S310: the sandbox's own http://127.0.0.1 address.
    request = urllib.request.Request(f"{sandbox.url}{path}", data=data, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def calls(sandbox: SandboxHandle) -> dict[str, int]:
    with urllib.request.urlopen(f"{sandbox.url}/_sandbox/calls", timeout=10) as response:  # noqa: S310
        return dict(json.load(response))


@pytest.fixture(autouse=True)
def _fresh_sandbox_and_clients(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # The app installs its database-backed limiter at start-up; these tests use no database.
    monkeypatch.setattr(aws, "_rate_limiter", None)
    # moto's reset wipes every image (and the seeded AMIs, which /_sandbox/seed puts back).
    post(sandbox, "/moto-api/reset")
    post(sandbox, "/_sandbox/seed")
    post(sandbox, "/_sandbox/reset")
    aws.forget_clients()
    yield
    aws.forget_clients()


def make_target(sandbox: SandboxHandle, **overrides: str) -> SimpleNamespace:
    fields = {
        "account_id": ACCOUNT_ID,
        "region": REGION,
        "credentials": "default",
        "role_arn": "",
        "external_id": "",
        "endpoint_url": sandbox.url,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.fixture
def target(sandbox: SandboxHandle) -> SimpleNamespace:
    return make_target(sandbox)


def preflight(
    target: SimpleNamespace, ami_id: str = WIN10_AMI, image_name: str = "win10-finance-2026", windows: str = ""
) -> list[Any]:
    return aws.run_preflight(target, ami_id=ami_id, image_name=image_name, identity=IDENTITY, windows_version=windows)


def import_checks(target: SimpleNamespace, ami_id: str, windows: str = "") -> list[aws.Check]:
    return aws.run_import_checks(
        target, ami_id=ami_id, identity=IDENTITY, byol_cache_seconds=60.0, windows_version=windows
    )


def outcomes(checks: list[aws.Check]) -> list[tuple[str, str]]:
    return [(check.key, check.outcome) for check in checks]


def by_key(checks: list[aws.Check]) -> dict[str, aws.Check]:
    return {check.key: check for check in checks}


def import_named(target: SimpleNamespace, name: str) -> aws.ImportResult:
    parameters = {
        "Ec2ImageId": WIN10_AMI,
        "IngestionProcess": "BYOL_REGULAR_WSP",
        "ImageName": name,
        "ImageDescription": "Imported by the pre-flight tests",
    }
    return aws.import_image(target, parameters=parameters, identity=IDENTITY)


# --- all clear -------------------------------------------------------------------------------


def test_windows_ami_of_60_gb_in_an_account_with_byol_passes_every_check(
    sandbox: SandboxHandle, target: SimpleNamespace
) -> None:
    checks = preflight(target)

    assert outcomes(checks) == ALL_PASS
    assert all(check.aws == {} for check in checks)
    messages = by_key(checks)
    assert ACCOUNT_ID in messages["credentials"].message
    assert REGION in messages["byol"].message
    assert f"{WIN10_AMI} (win10-22h2-byol-2026-10)" in messages["ami"].message
    assert "win10-finance-2026" in messages["name"].message
    assert calls(sandbox) == {
        "DescribeAccount": 1,
        "DescribeImages": 1,
        "DescribeWorkspaceImages": 1,
        "GetCallerIdentity": 1,
    }


def test_assume_role_target_passes_every_check_in_the_role_account(
    sandbox: SandboxHandle, target: SimpleNamespace
) -> None:
    role_target = make_target(
        sandbox, credentials="assume_role", role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/Importer", external_id="ext-1"
    )

    checks = preflight(role_target)

    assert outcomes(checks) == ALL_PASS
    assert calls(sandbox)["AssumeRole"] >= 1


# --- the AMI's boot mode against the Windows version ----------------------------------------


@pytest.mark.parametrize(
    ("ami_id", "windows", "said"),
    [
        (WIN10_AMI, "10", "that boots with legacy BIOS, as Windows 10 needs."),
        (WIN11_AMI, "11", "that boots with UEFI, as Windows 11 needs."),
    ],
)
def test_ami_whose_boot_mode_fits_the_windows_version_passes_and_says_so(
    target: SimpleNamespace, ami_id: str, windows: str, said: str
) -> None:
    checks = preflight(target, ami_id=ami_id, windows=windows)

    assert outcomes(checks) == ALL_PASS
    assert by_key(checks)["ami"].message.endswith(said)


def test_ami_without_a_boot_mode_boots_with_legacy_bios_so_it_fits_windows_10(target: SimpleNamespace) -> None:
    checks = preflight(target, ami_id=TWO_VOLUME_AMI, windows="10")

    assert outcomes(checks) == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
        ("volumes", "warn"),
        ("name", "pass"),
    ]
    assert f"boots with {aws.MSG_NO_BOOT_MODE}, as Windows 10 needs" in by_key(checks)["ami"].message


@pytest.mark.parametrize(
    ("ami_id", "windows", "message", "also"),
    [
        (WIN10_AMI, "11", aws.MSG_BOOT_MODE_WINDOWS_11.format(ami_id=WIN10_AMI, boot_mode="legacy BIOS"), []),
        (WIN11_AMI, "10", aws.MSG_BOOT_MODE_WINDOWS_10.format(ami_id=WIN11_AMI, boot_mode="UEFI"), []),
        (
            LARGE_ROOT_AMI,
            "10",
            aws.MSG_BOOT_MODE_WINDOWS_10.format(ami_id=LARGE_ROOT_AMI, boot_mode="UEFI"),
            [("root_volume", "warn")],
        ),
        (
            TWO_VOLUME_AMI,
            "11",
            aws.MSG_BOOT_MODE_WINDOWS_11.format(ami_id=TWO_VOLUME_AMI, boot_mode=aws.MSG_NO_BOOT_MODE),
            [("volumes", "warn")],
        ),
    ],
    ids=["legacy-bios-with-windows-11", "uefi-with-windows-10", "uefi-80-gb-with-windows-10", "none-with-windows-11"],
)
def test_ami_whose_boot_mode_does_not_fit_the_windows_version_fails_the_boot_mode_check(
    target: SimpleNamespace, ami_id: str, windows: str, message: str, also: list[tuple[str, str]]
) -> None:
    checks = preflight(target, ami_id=ami_id, windows=windows)

    assert outcomes(checks) == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
        ("boot_mode", "fail"),
        *also,
        ("name", "pass"),
    ]
    failure = by_key(checks)["boot_mode"]
    assert failure.message == message
    assert failure.title == f"Boot mode fits Windows {windows}"
    assert f"choose Windows {'10' if windows == '11' else '11'} in the request" in message
    assert "boots with" not in by_key(checks)["ami"].message


def test_without_a_windows_version_the_boot_mode_is_not_checked(target: SimpleNamespace) -> None:
    checks = preflight(target, ami_id=WIN11_AMI)

    assert outcomes(checks) == ALL_PASS
    assert by_key(checks)["ami"].message == f"{WIN11_AMI} (win11-24h2-byol-2026-11) is an available Windows image."


@pytest.mark.parametrize(
    ("image", "fits_10", "fits_11"),
    [
        ({"BootMode": "uefi-preferred"}, False, True),
        ({"BootMode": "legacy-bios"}, True, False),
        ({"BootMode": "uefi"}, False, True),
        ({"Architecture": "x86_64"}, True, False),
        ({"Architecture": "arm64"}, False, True),
        ({}, True, False),
    ],
    ids=["uefi-preferred", "legacy-bios", "uefi", "none-on-x86", "none-on-graviton", "none-without-architecture"],
)
def test_each_boot_mode_fits_the_windows_versions_it_boots(image: dict[str, str], fits_10: bool, fits_11: bool) -> None:
    ami = {"ImageId": "ami-0123456789abcdef0", "Platform": "windows", **image}

    assert [check.key for check in aws.ami_property_checks(ami, "10")] == ([] if fits_10 else ["boot_mode"])
    assert [check.key for check in aws.ami_property_checks(ami, "11")] == ([] if fits_11 else ["boot_mode"])
    assert aws.ami_property_checks(ami, "") == []


def test_a_linux_ami_gets_no_boot_mode_check_only_the_windows_failure(target: SimpleNamespace) -> None:
    checks = preflight(target, ami_id=LINUX_AMI, windows="10")

    assert outcomes(checks) == [("credentials", "pass"), ("byol", "pass"), ("ami", "fail"), ("name", "pass")]


# --- the AMI's encryption and volumes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ami_id", "key", "message", "what_to_change"),
    [
        (
            LARGE_ROOT_AMI,
            "root_volume",
            aws.MSG_ROOT_VOLUME_LARGE.format(ami_id=LARGE_ROOT_AMI, size=80, limit=80, warn_at=70),
            "shrink the disk to 70 GB",
        ),
        (
            OFFICE_AMI,
            "root_volume",
            aws.MSG_ROOT_VOLUME_LARGE.format(ami_id=OFFICE_AMI, size=76, limit=80, warn_at=70),
            "shrink the disk to 70 GB",
        ),
        (
            TWO_VOLUME_AMI,
            "volumes",
            aws.MSG_SEVERAL_VOLUMES.format(ami_id=TWO_VOLUME_AMI, count=2),
            "Create the AMI from the system volume alone.",
        ),
    ],
    ids=["80-gb-root", "76-gb-root", "two-volumes"],
)
def test_ami_that_aws_may_refuse_for_its_volumes_passes_with_a_warning_that_says_what_to_change(
    target: SimpleNamespace, ami_id: str, key: str, message: str, what_to_change: str
) -> None:
    checks = preflight(target, ami_id=ami_id)

    assert outcomes(checks) == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
        (key, "warn"),
        ("name", "pass"),
    ]
    assert by_key(checks)[key].message == message
    assert what_to_change in message


@pytest.mark.parametrize(
    ("ami_id", "windows", "key", "message", "what_to_change"),
    [
        (
            ENCRYPTED_AMI,
            "11",
            "encryption",
            aws.MSG_ENCRYPTED.format(ami_id=ENCRYPTED_AMI, devices="/dev/sda1"),
            "EBS encryption by default turned off",
        ),
        (
            HUGE_ROOT_AMI,
            "10",
            "root_volume",
            aws.MSG_ROOT_VOLUME_TOO_LARGE.format(ami_id=HUGE_ROOT_AMI, size=100, limit=80),
            "Shrink the VM's disk to at most 80 GB",
        ),
    ],
    ids=["encrypted", "100-gb-root"],
)
def test_ami_that_aws_will_refuse_fails_its_own_check_that_says_what_to_change(
    target: SimpleNamespace, ami_id: str, windows: str, key: str, message: str, what_to_change: str
) -> None:
    checks = preflight(target, ami_id=ami_id, windows=windows)

    assert outcomes(checks) == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
        (key, "fail"),
        ("name", "pass"),
    ]
    assert by_key(checks)[key].message == message
    assert what_to_change in message


def test_a_root_volume_of_exactly_80_gb_only_warns_and_one_of_70_gb_passes() -> None:
    def ami(size: int) -> dict[str, Any]:
        root = {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": size, "Encrypted": False}}
        return {"ImageId": "ami-0123456789abcdef0", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [root]}

    assert [(c.key, c.outcome) for c in aws.ami_property_checks(ami(80))] == [("root_volume", "warn")]
    assert [(c.key, c.outcome) for c in aws.ami_property_checks(ami(81))] == [("root_volume", "fail")]
    assert aws.ami_property_checks(ami(70)) == []


def test_checks_before_the_import_fail_an_encrypted_ami_and_a_boot_mode_that_does_not_fit(
    target: SimpleNamespace,
) -> None:
    encrypted = import_checks(target, ENCRYPTED_AMI, windows="11")
    wrong_boot = import_checks(target, WIN11_AMI, windows="10")
    unchecked_boot = import_checks(target, WIN11_AMI)

    assert outcomes(encrypted) == [("credentials", "pass"), ("byol", "pass"), ("ami", "pass"), ("encryption", "fail")]
    assert outcomes(wrong_boot) == [("credentials", "pass"), ("byol", "pass"), ("ami", "pass"), ("boot_mode", "fail")]
    assert outcomes(unchecked_boot) == [("credentials", "pass"), ("byol", "pass"), ("ami", "pass")]


# --- failures about the AMI ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ami_id", "said"),
    [
        (LINUX_AMI, [f"{LINUX_AMI} is not a Windows image"]),
        (PARTNER_AMI, [f"{PARTNER_AMI} belongs to account {PARTNER_ACCOUNT_ID}, not {ACCOUNT_ID}"]),
        (UNKNOWN_AMI, [f"{UNKNOWN_AMI} does not exist in {REGION}"]),
    ],
)
def test_ami_that_cannot_be_imported_fails_the_ami_check_and_the_others_still_run(
    target: SimpleNamespace, ami_id: str, said: list[str]
) -> None:
    checks = preflight(target, ami_id=ami_id)

    assert outcomes(checks) == [("credentials", "pass"), ("byol", "pass"), ("ami", "fail"), ("name", "pass")]
    failure = by_key(checks)["ami"]
    assert all(part in failure.message for part in said), failure.message
    assert failure.aws == {}


# --- failures about the account --------------------------------------------------------------


def test_account_without_byol_fails_the_byol_check_with_how_to_enable_it_and_aws_own_message(
    sandbox: SandboxHandle, target: SimpleNamespace
) -> None:
    post(sandbox, "/_sandbox/faults", {"byol_enabled": False})

    checks = preflight(target)

    assert outcomes(checks) == [("credentials", "pass"), ("byol", "fail"), ("ami", "pass"), ("name", "pass")]
    message = by_key(checks)["byol"].message
    assert message == aws.MSG_BYOL_DISABLED.format(region=REGION) + f" AWS says: {BYOL_DISABLED_MESSAGE}"
    assert "WorkSpaces console (Account settings" in message
    assert "ModifyAccount" in message
    assert "AWS Support" not in message


def test_byol_check_shows_a_message_aws_sends_with_byol_enabled(
    sandbox: SandboxHandle, target: SimpleNamespace
) -> None:
    workspaces = aws.client(target, "workspaces", identity=IDENTITY)
    with Stubber(workspaces) as stubber:
        stubber.add_response(
            "describe_account", {"DedicatedTenancySupport": "ENABLED", "Message": "Your account is BYOL enabled."}
        )
        stubber.add_response("describe_workspace_images", {"Images": []}, {"ImageType": "OWNED", "MaxResults": 25})

        checks = preflight(target)

    assert outcomes(checks) == ALL_PASS
    assert by_key(checks)["byol"].message == (
        aws.MSG_BYOL_ENABLED.format(region=REGION) + " AWS says: Your account is BYOL enabled."
    )
    assert calls(sandbox) == {"DescribeImages": 1, "GetCallerIdentity": 1}


def test_credentials_of_another_account_fail_the_credentials_check_naming_both_accounts(
    sandbox: SandboxHandle,
) -> None:
    wrong = make_target(sandbox, account_id="999999999999")

    checks = preflight(wrong)

    # The AMI belongs to the account the credentials reach, not to the target's: that fails too.
    assert outcomes(checks) == [("credentials", "fail"), ("byol", "pass"), ("ami", "fail"), ("name", "pass")]
    message = by_key(checks)["credentials"].message
    assert f"belong to account {ACCOUNT_ID}, not to the target's account 999999999999" in message


def test_throttling_makes_each_check_fail_as_could_not_check_instead_of_raising(
    sandbox: SandboxHandle, target: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's standard retries back off up to 1 + 2 + 4 s per throttled call; one attempt keeps
    # this test fast, and retries are covered in test_aws.py.
    original_config = aws._config
    monkeypatch.setattr(aws, "_config", lambda *, attempts, **timeouts: original_config(attempts=1, **timeouts))
    post(sandbox, "/_sandbox/faults", {"throttle_rate": 1.0})

    checks = preflight(target)

    assert outcomes(checks) == [("credentials", "fail"), ("byol", "fail"), ("ami", "fail"), ("name", "fail")]
    for check in checks:
        assert check.message == f"The portal could not check this: {aws.MSG_THROTTLED}"
        assert check.retryable
        assert check.aws["kind"] == "Throttled"
        assert check.aws["code"] in aws.THROTTLING_CODES
    assert [check.aws["code"] for check in checks] == [
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ThrottlingException",
    ]
    assert calls(sandbox) == {
        "DescribeAccount": 1,
        "DescribeImages": 1,
        "DescribeWorkspaceImages": 1,
        "GetCallerIdentity": 1,
    }


# --- the WorkSpaces images already there -----------------------------------------------------


def test_name_of_an_existing_workspaces_image_fails_the_name_check_with_its_id(target: SimpleNamespace) -> None:
    imported = import_named(target, "win10-taken")

    checks = preflight(target, image_name="win10-taken")

    assert outcomes(checks) == [("credentials", "pass"), ("byol", "pass"), ("ami", "pass"), ("name", "fail")]
    message = by_key(checks)["name"].message
    assert f"WorkSpaces already has an image called win10-taken ({imported.image_id})" in message


def test_the_name_of_the_failed_image_the_portal_will_replace_is_no_clash_but_any_other_image_is(
    target: SimpleNamespace,
) -> None:
    replaced = import_named(target, "win10-revised")

    replacing = aws.run_preflight(
        target, ami_id=WIN10_AMI, image_name="win10-revised", identity=IDENTITY, replacing_image_id=replaced.image_id
    )
    other = aws.run_preflight(
        target, ami_id=WIN10_AMI, image_name="win10-revised", identity=IDENTITY, replacing_image_id="wsi-000000000"
    )

    assert outcomes(replacing) == ALL_PASS
    assert by_key(replacing)["name"].message == aws.MSG_NAME_OF_REPLACED_IMAGE.format(
        image_id=replaced.image_id, image_name="win10-revised"
    )
    assert outcomes(other)[-1] == ("name", "fail")


def test_account_with_36_images_gets_a_quota_warning_and_with_35_does_not(target: SimpleNamespace) -> None:
    for n in range(35):
        import_named(target, f"win10-quota-{n:02d}")
    with_35 = preflight(target)
    import_named(target, "win10-quota-35")

    with_36 = preflight(target)

    assert outcomes(with_35) == ALL_PASS
    assert outcomes(with_36) == [*ALL_PASS, ("quota", "warn")]
    warning = by_key(with_36)["quota"].message
    assert f"The account has 36 WorkSpaces images in {REGION}; the default quota is 40." in warning
