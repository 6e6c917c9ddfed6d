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

from imports import aws
from imports.sandbox import SandboxHandle, start_sandbox

ACCOUNT_ID = "123456789012"
PARTNER_ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
IDENTITY = "IMP-000001"
WIN10_AMI = "ami-05eed000000000001"
LARGE_ROOT_AMI = "ami-05eed000000000002"
TWO_VOLUME_AMI = "ami-05eed000000000003"
ENCRYPTED_AMI = "ami-05eed000000000004"
OFFICE_AMI = "ami-05eed000000000005"
LINUX_AMI = "ami-05eed000000000006"
PARTNER_AMI = "ami-05eed000000000007"
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


def preflight(target: SimpleNamespace, ami_id: str = WIN10_AMI, image_name: str = "win10-finance-2026") -> list[Any]:
    return aws.run_preflight(target, ami_id=ami_id, image_name=image_name, identity=IDENTITY)


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


# --- warnings about the AMI's volumes --------------------------------------------------------


@pytest.mark.parametrize(
    ("ami_id", "said", "not_said"),
    [
        (LARGE_ROOT_AMI, ["The root volume is 80 GB", "at most 70 GB"], ["volumes;", "encrypted"]),
        (TWO_VOLUME_AMI, ["The AMI has 2 volumes"], ["root volume is", "encrypted"]),
        # 70 GB is the limit itself, so only the encryption is worth a warning.
        (ENCRYPTED_AMI, ["encrypted volume"], ["root volume is", "volumes;"]),
        (OFFICE_AMI, ["The root volume is 76 GB"], ["volumes;", "encrypted"]),
    ],
)
def test_ami_that_breaks_a_byol_volume_rule_passes_with_a_volumes_warning(
    target: SimpleNamespace, ami_id: str, said: list[str], not_said: list[str]
) -> None:
    checks = preflight(target, ami_id=ami_id)

    assert outcomes(checks) == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
        ("volumes", "warn"),
        ("name", "pass"),
    ]
    warning = by_key(checks)["volumes"].message
    assert all(part in warning for part in said), warning
    assert not any(part in warning for part in not_said), warning


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


def test_account_without_byol_fails_the_byol_check(sandbox: SandboxHandle, target: SimpleNamespace) -> None:
    post(sandbox, "/_sandbox/faults", {"byol_enabled": False})

    checks = preflight(target)

    assert outcomes(checks) == [("credentials", "pass"), ("byol", "fail"), ("ami", "pass"), ("name", "pass")]
    assert f"BYOL (dedicated tenancy) is not enabled for WorkSpaces in {REGION}" in by_key(checks)["byol"].message


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
