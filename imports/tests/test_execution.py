"""The import, end to end against the local AWS sandbox, without Celery: claim, check, call,
record; tracking until AVAILABLE or ERROR; retries, reconciling and the sweeper."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from imports import aws, execution, selectors, workflow
from imports.models import AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from imports.sandbox import SandboxHandle, control_sandbox, start_sandbox

# The real one: conftest replaces it for the page tests.
OFFERED_AMIS = selectors.offered_amis

State = ImportRequest.State
WINDOWS_AMI = "ami-05eed000000000001"
ERROR_AMI = "ami-05eed000000000005"
LINUX_AMI = "ami-05eed000000000006"
IMPORT_DELAY = 0.5


def control(sandbox: SandboxHandle, name: str, body: dict[str, Any] | None = None) -> Any:
    return control_sandbox(sandbox.url, name, body)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=IMPORT_DELAY)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _sandbox_credentials(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "sandbox")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    control(sandbox, "reset", {})
    control(sandbox, "config", {"import_delay": IMPORT_DELAY, "image_quota": None})
    aws.forget_clients()
    # The real limiter, made roomy: these tests are about the import, test_ratelimit about the rate.
    aws.use_rate_limiter(DatabaseTokenBucket(rate=1000, burst=1000))
    yield
    aws.use_rate_limiter(DatabaseTokenBucket())
    aws.forget_clients()


@pytest.fixture
def target(db: None, sandbox: SandboxHandle) -> AwsTarget:
    return AwsTarget.objects.create(
        name="Sandbox", account_id="123456789012", region="us-east-1", endpoint_url=sandbox.url
    )


@pytest.fixture
def approved(make_request: Any, approver: Any) -> Any:
    counter = iter(range(1, 1000))

    def make(**overrides: Any) -> ImportRequest:
        overrides.setdefault("ec2_image_id", WINDOWS_AMI)
        overrides.setdefault("image_name", f"exec-{time.time_ns()}-{next(counter)}")
        request = make_request(**overrides)
        return workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)

    return make


def actions(request: ImportRequest) -> list[str]:
    return list(request.events.order_by("seq").values_list("action", flat=True))


def wait_for_import(seconds: float = IMPORT_DELAY + 0.3) -> None:
    time.sleep(seconds)


def test_an_approved_request_is_imported_and_tracked_until_available(approved: Any, sandbox: SandboxHandle) -> None:
    request = approved(tags=[{"Key": "Team", "Value": "Finance"}])

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.IMPORTING
    assert request.aws_image_id.startswith("wsi-")
    assert actions(request)[-4:] == ["claim", "preflight", "import_call", "aws_accepted"]
    sent = request.events.get(action="import_call").data["parameters"]
    assert sent["Tags"] == [
        {"Key": "Team", "Value": "Finance"},
        {"Key": "byol-portal:request", "Value": request.reference},
        {"Key": "byol-portal:requested-by", "Value": "rita"},
        {"Key": "byol-portal:approved-by", "Value": "anna"},
    ]
    assert aws.image_tags(request.target, request.aws_image_id)["byol-portal:request"] == request.reference

    pending = execution.poll_importing_images()
    wait_for_import()
    done = execution.poll_importing_images()

    assert (pending.requests, pending.available) == (1, 0)
    assert (done.requests, done.available) == (1, 1)
    request.refresh_from_db()
    assert request.state == State.AVAILABLE
    assert control(sandbox, "calls")["ImportWorkspaceImage"] == 1


def test_an_image_that_ends_in_error_fails_with_each_code_explained(approved: Any) -> None:
    request = approved(ec2_image_id=ERROR_AMI)
    execution.import_request(request.pk)
    wait_for_import()

    report = execution.poll_importing_images()

    assert report.failed == 1
    request.refresh_from_db()
    assert request.state == State.FAILED
    codes = [d["code"] for d in request.failure["details"]]
    assert codes == ["OfficeInstalled", "DiskSizeExceeded"]
    assert all(d["explanation"] for d in request.failure["details"])
    assert "AWS could not import the image" in request.failure["message"]
    assert request.events.order_by("-seq").first().action == "image_failed"


def test_a_failing_check_just_before_the_import_sends_nothing(approved: Any, sandbox: SandboxHandle) -> None:
    request = approved(ec2_image_id=LINUX_AMI)

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.FAILED
    assert "not a Windows image" in request.failure["message"]
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


def test_a_name_taken_by_someone_elses_image_fails_with_a_plain_message(approved: Any, target: AwsTarget) -> None:
    request = approved(image_name="taken-elsewhere")
    aws.import_image(
        target,
        parameters={
            "Ec2ImageId": WINDOWS_AMI,
            "IngestionProcess": "BYOL_REGULAR_WSP",
            "ImageName": "taken-elsewhere",
            "ImageDescription": "made by hand",
        },
        identity="someone",
    )

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.FAILED
    assert "already exists" in request.failure["message"] or "WorkSpaces already has" in request.failure["message"]


def test_an_earlier_attempt_that_reached_aws_is_adopted_not_repeated(
    approved: Any, target: AwsTarget, sandbox: SandboxHandle
) -> None:
    request = approved()
    workflow.claim_for_import(request_id=request.pk, lease_seconds=0)
    parameters = execution._approved_parameters(ImportRequest.objects.get(pk=request.pk))
    workflow.record_import_call(request_id=request.pk, parameters=parameters)
    first = aws.import_image(target, parameters=parameters, identity=request.reference)
    control(sandbox, "reset", {})

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert (request.state, request.aws_image_id) == (State.IMPORTING, first.image_id)
    accepted = request.events.get(action="aws_accepted")
    assert accepted.data["adopted"] is True
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


def test_a_claim_whose_lease_is_still_running_is_left_alone(approved: Any, sandbox: SandboxHandle) -> None:
    request = approved()
    workflow.claim_for_import(request_id=request.pk, lease_seconds=600)

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.SUBMITTING
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


def test_throttling_is_retried_and_every_request_is_imported_exactly_once(
    approved: Any, sandbox: SandboxHandle
) -> None:
    requests = [approved() for _ in range(4)]
    control(sandbox, "faults", {"throttle_rate": 0.5, "operations": ["ImportWorkspaceImage"]})

    retries = 0
    delays: list[float] = []
    pending: list[tuple[int, Any]] = [(r.pk, None) for r in requests]
    while pending:
        pk, lease = pending.pop(0)
        try:
            execution.import_request(pk, held_lease=lease)
        except execution.TryAgain as wait:
            retries += 1
            delays.append(wait.seconds)
            pending.append((pk, wait.lease))

    assert retries >= 1
    assert all(0 < delay <= 300 for delay in delays)
    for request in requests:
        request.refresh_from_db()
        assert request.state == State.IMPORTING
    assert sum(actions(r).count("import_retry") for r in requests) == retries
    names = [image["Name"] for image in control(sandbox, "images")["Images"]]
    for request in requests:
        assert names.count(request.image_name) == 1


def test_a_full_account_waits_and_tries_again_later(
    approved: Any, sandbox: SandboxHandle, settings: Any, target: AwsTarget
) -> None:
    settings.PORTAL_LIMIT_RETRY_SECONDS = 900
    request = approved()
    aws.import_image(
        target,
        parameters={
            "Ec2ImageId": WINDOWS_AMI,
            "IngestionProcess": "BYOL_REGULAR_WSP",
            "ImageName": f"filler-{time.time_ns()}",
            "ImageDescription": "fills the quota",
        },
        identity="someone",
    )
    control(sandbox, "config", {"image_quota": 1})

    with pytest.raises(execution.TryAgain) as wait:
        execution.import_request(request.pk)

    assert wait.value.seconds == 900
    request.refresh_from_db()
    assert request.state == State.SUBMITTING
    retry = request.events.get(action="import_retry")
    assert retry.data["error"]["kind"] == "LimitExceeded"
    assert "waits and tries again later" in retry.data["error"]["message"]
    assert request.lease_expires_at > timezone.now() + timezone.timedelta(seconds=850)


def test_the_portal_gives_up_after_too_many_attempts(approved: Any, sandbox: SandboxHandle, settings: Any) -> None:
    settings.PORTAL_MAX_IMPORT_CALLS = 2
    request = approved()
    control(sandbox, "faults", {"throttle_rate": 1.0, "operations": ["ImportWorkspaceImage"]})

    with pytest.raises(execution.TryAgain) as wait:
        execution.import_request(request.pk)
    execution.import_request(request.pk, held_lease=wait.value.lease)

    request.refresh_from_db()
    assert request.state == State.FAILED
    assert "stopped trying" in request.failure["message"]
    assert actions(request).count("import_call") == 2


def test_a_long_pending_import_is_flagged_as_stalled_once(approved: Any, settings: Any, mailoutbox: Any) -> None:
    settings.PORTAL_STALLED_AFTER_HOURS = 0
    request = approved()
    execution.import_request(request.pk)

    first = execution.poll_importing_images()
    second = execution.poll_importing_images()

    assert (first.stalled, second.stalled) == (1, 0)
    request.refresh_from_db()
    assert request.stalled_at is not None
    assert actions(request).count("image_stalled") == 1


def test_one_poll_pass_asks_for_at_most_25_images_per_call(approved: Any, sandbox: SandboxHandle) -> None:
    requests = [approved() for _ in range(27)]
    for request in requests:
        ImportRequest.objects.filter(pk=request.pk).update(
            state=State.IMPORTING, aws_image_id=f"wsi-{request.pk:09d}", import_started_at=timezone.now()
        )
    control(sandbox, "reset", {})

    report = execution.poll_importing_images()

    assert (report.requests, report.describe_calls) == (27, 2)
    assert control(sandbox, "calls")["DescribeWorkspaceImages"] == 2


def test_preflight_results_are_stored_for_the_version_they_checked(make_request: Any) -> None:
    request = make_request(checked=False, ec2_image_id="ami-05eed000000000002")

    checked = execution.run_preflight_checks(request.pk, request.version)

    assert checked is not None
    assert checked.preflight["passed"] is True
    assert [c["outcome"] for c in checked.preflight["checks"]].count("warn") == 1
    assert checked.events.order_by("-seq").first().action == "preflight"


def test_preflight_results_for_an_outdated_version_are_dropped(make_request: Any, requester: Any) -> None:
    request = make_request(checked=False, ec2_image_id=WINDOWS_AMI)
    workflow.edit_request(request_id=request.pk, actor=requester, fields={"image_name": "v2-name"}, expected_version=1)

    assert execution.run_preflight_checks(request.pk, 1) is None

    request.refresh_from_db()
    assert request.preflight == {}


def test_the_sweeper_requeues_unclaimed_and_lost_work(
    approved: Any, make_request: Any, published: list[Any], settings: Any
) -> None:
    settings.PORTAL_UNCLAIMED_AFTER_SECONDS = 0
    unclaimed = approved()
    lost = approved()
    workflow.claim_for_import(request_id=lost.pk, lease_seconds=0)
    unchecked = make_request(checked=False)
    held = approved()
    workflow.claim_for_import(request_id=held.pk, lease_seconds=600)
    published.clear()

    report = execution.sweep_lost_work()

    assert (report.unclaimed, report.lost_claims, report.unchecked) == (1, 1, 1)
    assert sorted(published) == sorted(
        [
            ("import_request", (unclaimed.pk,)),
            ("import_request", (lost.pk,)),
            ("run_preflight_checks", (unchecked.pk, 1)),
        ]
    )


def test_approval_and_retry_queue_the_import_only_after_commit(
    make_request: Any, approver: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    request = make_request()
    published.clear()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
        assert published == []

    for callback in callbacks:
        callback()
    assert published == [("import_request", (request.pk,))]


def test_approval_needs_passing_checks_of_the_current_version(make_request: Any, approver: Any) -> None:
    unchecked = make_request(checked=False)
    failing = make_request(checked=False)
    workflow.record_preflight(
        request_id=failing.pk,
        version=1,
        checks=[{"key": "ami", "title": "t", "outcome": "fail", "message": "no such AMI", "aws": {}}],
    )

    for request, message in ((unchecked, workflow.MSG_PREFLIGHT_PENDING), (failing, workflow.MSG_PREFLIGHT_FAILED)):
        with pytest.raises(workflow.WorkflowError) as refused:
            workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
        assert refused.value.message == message
        request.refresh_from_db()
        assert request.state == State.SUBMITTED


def test_the_form_offers_each_active_targets_windows_amis_and_caches_them(
    target: AwsTarget, sandbox: SandboxHandle
) -> None:
    AwsTarget.objects.create(name="Gone", account_id="123456789012", region="us-east-1", is_active=False)
    cache.clear()

    first = OFFERED_AMIS()
    second = OFFERED_AMIS()

    assert list(first) == [target.pk]
    ids = [ami.image_id for ami in first[target.pk]]
    assert "ami-05eed000000000001" in ids
    assert "ami-05eed000000000006" not in ids  # Linux
    assert "ami-05eed000000000007" not in ids  # another account's
    assert second == first
    assert control(sandbox, "calls")["DescribeImages"] == 1


def test_a_target_aws_cannot_be_asked_about_offers_no_amis(db: None) -> None:
    AwsTarget.objects.create(
        name="Down", account_id="123456789012", region="us-east-1", endpoint_url="http://127.0.0.1:9"
    )
    cache.clear()

    assert list(OFFERED_AMIS().values()) == [[]]
