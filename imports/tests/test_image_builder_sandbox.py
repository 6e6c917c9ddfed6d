"""The Image Builder path end to end against the local AWS sandbox, without Celery: the real
pre-flight (source, infrastructure), the ImportCustomWorkspaceImage call, and tracking with
progress stage by stage until AVAILABLE or ERROR."""

import time
from typing import Any

import pytest

from imports import aws, execution, workflow
from imports.models import AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from imports.tests.conftest import request_fields
from sandbox import SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox

pytestmark = pytest.mark.usefixtures("sandbox_aws")
State = ImportRequest.State
REGION = "us-east-1"
INFRASTRUCTURE = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:infrastructure-configuration/byol-import"
IMAGE_VERSION = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:image/byol-windows-11/1.0.0/1"
BUILDING_VERSION = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:image/byol-windows-11/1.1.0/1"
OFFICE_VERSION = f"arn:aws:imagebuilder:{REGION}:{SANDBOX_ACCOUNT_ID}:image/byol-windows-10-office/1.0.0/1"
# Twelve stages of a quarter second each.
IMPORT_DELAY = 3.0


@pytest.fixture
def target(db: None, sandbox: SandboxHandle) -> AwsTarget:
    return AwsTarget.objects.create(
        name="Sandbox", account_id=SANDBOX_ACCOUNT_ID, region=REGION, endpoint_url=sandbox.url
    )


def submit(target: AwsTarget, requester: Any, **overrides: Any) -> ImportRequest:
    fields = request_fields(
        target,
        import_path="image_builder",
        windows_version="11",
        ec2_image_id="",
        ingestion_process="",
        source_kind="image_version",
        image_build_version_arn=IMAGE_VERSION,
        infrastructure_configuration_arn=INFRASTRUCTURE,
        compute_type="BASE",
        protocol="DCV",
        image_name=f"ib-{time.time_ns()}",
    )
    fields.update(overrides)
    return workflow.submit_request(requester=requester, fields=fields)


def checked(request: ImportRequest) -> ImportRequest:
    execution.run_preflight_checks(request.pk, request.version)
    request.refresh_from_db()
    return request


def outcomes(request: ImportRequest) -> dict[str, str]:
    return {c["key"]: c["outcome"] for c in request.preflight["checks"]}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"source_kind": "image_version", "image_build_version_arn": IMAGE_VERSION}, "pass"),
        ({"source_kind": "import_task", "ec2_import_task_id": "import-ami-0123456789abcdef0"}, "pass"),
        ({"source_kind": "ami", "ec2_image_id": "ami-05eed000000000008"}, None),
        ({"source_kind": "image_version", "image_build_version_arn": BUILDING_VERSION}, "fail"),
        ({"source_kind": "import_task", "ec2_import_task_id": "import-ami-0fedcba987654321f"}, "fail"),
    ],
)
def test_the_preflight_checks_the_source_and_the_ami_behind_it(
    target: AwsTarget, requester: Any, source: dict[str, str], expected: str | None
) -> None:
    request = checked(submit(target, requester, **source))

    found = outcomes(request)
    assert found.get("source") == expected
    assert found["infrastructure"] == "pass"
    if expected != "fail":
        assert found["ami"] == "pass"
        assert request.preflight_passed
    else:
        assert "ami" not in found
        assert not request.preflight_passed


def test_an_infrastructure_configuration_the_account_lacks_fails_the_preflight(
    target: AwsTarget, requester: Any
) -> None:
    request = checked(
        submit(target, requester, infrastructure_configuration_arn=INFRASTRUCTURE.replace("byol-import", "missing"))
    )

    assert outcomes(request)["infrastructure"] == "fail"
    assert not request.preflight_passed


def test_an_approved_image_builder_import_is_tracked_stage_by_stage_until_available(
    target: AwsTarget, requester: Any, approver: Any, sandbox: SandboxHandle
) -> None:
    request = checked(submit(target, requester))
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.IMPORTING
    sent = request.events.get(action="import_call").data["parameters"]
    assert sent["ImageSource"] == {"ImageBuildVersionArn": IMAGE_VERSION}
    assert control_sandbox(sandbox.url, "calls")["ImportCustomWorkspaceImage"] == 1
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + IMPORT_DELAY + 5
    while request.state == State.IMPORTING and time.monotonic() < deadline:
        execution.poll_importing_images()
        request.refresh_from_db()
        if request.import_stage and (request.import_stage, request.import_progress) not in seen:
            seen.append((request.import_stage, request.import_progress))
        time.sleep(0.2)

    assert request.state == State.AVAILABLE
    stages = [stage for stage, _ in seen]
    assert len(set(stages)) >= 3, seen
    percents = [percent for _, percent in seen]
    assert percents == sorted(percents)
    assert [entry["stage"] for entry in request.import_stages] == list(dict.fromkeys(stages))


def test_an_image_builder_import_that_fails_its_checks_ends_failed_with_the_reasons(
    target: AwsTarget, requester: Any, approver: Any
) -> None:
    request = checked(submit(target, requester, windows_version="10", image_build_version_arn=OFFICE_VERSION))
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    execution.import_request(request.pk)
    request.refresh_from_db()
    assert request.state == State.IMPORTING

    deadline = time.monotonic() + IMPORT_DELAY + 5
    while request.state == State.IMPORTING and time.monotonic() < deadline:
        execution.poll_importing_images()
        request.refresh_from_db()
        time.sleep(0.2)

    assert request.state == State.FAILED
    assert request.failure["next_step"] == "revise"
    assert "OfficeInstalled" in str(request.failure)


def test_progress_yields_to_imports_waiting_for_their_turn(
    target: AwsTarget, requester: Any, approver: Any, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    control_sandbox(sandbox.url, "config", {"import_delay": 60})  # still importing when polled
    request = checked(submit(target, requester))
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    execution.import_request(request.pk)
    request.refresh_from_db()
    aws.use_rate_limiter(DatabaseTokenBucket(rate=2, burst=5))
    calls_before = control_sandbox(sandbox.url, "calls").get("DescribeCustomWorkspaceImageImport", 0)
    # Imports of other requests reserved the next turns: the next free one is seconds away.
    for _ in range(12):
        aws.reserve_turn(target)

    started = time.monotonic()
    with pytest.raises(aws.RateBusy):
        aws.import_progress(target, request.aws_image_id)

    assert time.monotonic() - started < aws.PROGRESS_WAIT_SECONDS
    assert control_sandbox(sandbox.url, "calls").get("DescribeCustomWorkspaceImageImport", 0) == calls_before
    # A pass that meets a busy rate leaves the progress for a later pass, and says so.
    monkeypatch.setattr(aws, "import_progress", lambda *args: (_ for _ in ()).throw(aws.RateBusy("busy")))
    aws.use_rate_limiter(DatabaseTokenBucket(rate=1000, burst=1000))
    report = execution.poll_target(target.pk)
    assert (report.describe_calls, report.progress_calls, report.progress_deferred) == (1, 0, 1), report


def test_progress_takes_free_turns_at_the_rates_own_pace(
    target: AwsTarget, requester: Any, approver: Any, sandbox: SandboxHandle
) -> None:
    control_sandbox(sandbox.url, "config", {"import_delay": 60})  # still importing when polled
    request = checked(submit(target, requester))
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
    execution.import_request(request.pk)
    aws.use_rate_limiter(DatabaseTokenBucket(rate=2, burst=1))

    # The status check takes the only token; the progress call waits half a second for the next.
    report = execution.poll_target(target.pk)

    assert (report.describe_calls, report.progress_calls, report.progress_deferred) == (1, 1, 0)
