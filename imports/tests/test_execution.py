"""The import, end to end against the local AWS sandbox, without Celery: claim, check, call,
record; tracking until AVAILABLE or ERROR; retries, reconciling and the sweeper."""

import time
from typing import Any

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from imports import aws, execution, selectors, tasks, workflow
from imports.locks import job_lock
from imports.models import AccountRateLimit, AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from imports.retry import TryAgain
from imports.steps import image
from imports.tests.conftest import pass_preflight
from sandbox import SandboxHandle, control_sandbox

# The real one: conftest replaces it for the page tests.
OFFERED_AMIS = selectors.offered_amis

pytestmark = pytest.mark.usefixtures("sandbox_aws")
State = ImportRequest.State
WINDOWS_AMI = "ami-05eed000000000001"
ERROR_AMI = "ami-05eed000000000005"
LINUX_AMI = "ami-05eed000000000006"
IMPORT_DELAY = 0.5


def control(sandbox: SandboxHandle, name: str, body: dict[str, Any] | None = None) -> Any:
    return control_sandbox(sandbox.url, name, body)


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


def resume(request_id: int, wait: TryAgain) -> None:
    """Run the retry that `wait` scheduled, as the Celery task would."""
    execution.import_request(request_id, lease_token=wait.lease_token, due_at=wait.due_at)


def run_until_settled(request_ids: list[int]) -> tuple[int, list[float]]:
    """Run each import and every retry it schedules, at once; the retries and their delays."""
    retries, delays = 0, []
    pending: list[tuple[int, TryAgain | None]] = [(pk, None) for pk in request_ids]
    while pending:
        pk, wait = pending.pop(0)
        try:
            if wait is None:
                execution.import_request(pk)
            else:
                resume(pk, wait)
        except TryAgain as again:
            retries += 1
            delays.append(again.seconds)
            pending.append((pk, again))
    return retries, delays


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
    assert (request.lease_token, request.lease_expires_at, request.import_call_pending) == ("", None, False)
    assert actions(request)[-3:] == ["claim", "import_call", "aws_accepted"]
    call = request.events.get(action="import_call").data
    assert [(c["key"], c["outcome"]) for c in call["checks"]] == [
        ("credentials", "pass"),
        ("byol", "pass"),
        ("ami", "pass"),
    ]
    sent = call["parameters"]
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
    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=0)
    parameters = image.approved_parameters(claimed)
    workflow.record_import_call(
        request_id=request.pk, lease_token=claimed.lease_token, parameters=parameters, checks=[]
    )
    first = aws.import_image(target, parameters=parameters, identity=request.reference)
    control(sandbox, "reset", {})

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert (request.state, request.aws_image_id) == (State.IMPORTING, first.image_id)
    assert request.events.get(action="reclaim").data["outcome_unknown"] is True
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

    retries, delays = run_until_settled([r.pk for r in requests])

    assert retries >= 1
    assert all(0 < delay <= 60 for delay in delays)
    for request in requests:
        request.refresh_from_db()
        assert request.state == State.IMPORTING
    assert sum(actions(r).count("import_retry") for r in requests) == retries
    names = [image["Name"] for image in control(sandbox, "images")["Images"]]
    for request in requests:
        assert names.count(request.image_name) == 1
    # A throttled call made nothing, so nothing was looked up before trying again.
    assert "DescribeWorkspaceImages" not in control(sandbox, "calls")


def test_a_full_account_waits_and_tries_again_later(
    approved: Any, sandbox: SandboxHandle, settings: Any, target: AwsTarget
) -> None:
    settings.PORTAL_LIMIT_RETRY_SECONDS = 900
    request = approved()
    fill_account(target, 1)
    control(sandbox, "config", {"image_quota": 1})

    with pytest.raises(TryAgain) as wait:
        execution.import_request(request.pk)

    assert wait.value.seconds == 900
    request.refresh_from_db()
    assert request.state == State.SUBMITTING
    retry = request.events.get(action="import_retry")
    assert retry.data["error"]["kind"] == "LimitExceeded"
    assert "waits and tries again later" in retry.data["error"]["message"]
    assert request.lease_expires_at > timezone.now() + timezone.timedelta(seconds=850)


def test_the_portal_gives_up_only_once_the_retry_budget_is_spent(
    approved: Any, sandbox: SandboxHandle, settings: Any
) -> None:
    settings.PORTAL_RETRY_BUDGET_SECONDS = 3600
    request = approved()
    control(sandbox, "faults", {"throttle_rate": 1.0, "operations": ["ImportWorkspaceImage"]})
    with pytest.raises(TryAgain) as first:
        execution.import_request(request.pk)
    with pytest.raises(TryAgain) as second:
        resume(request.pk, first.value)
    request.refresh_from_db()
    assert request.state == State.SUBMITTING
    assert request.waiting["attempts"] == 2
    # An hour of throttling later:
    an_hour_ago = (timezone.now() - timezone.timedelta(hours=1)).isoformat()
    ImportRequest.objects.filter(pk=request.pk).update(waiting={**request.waiting, "since": an_hour_ago})

    resume(request.pk, second.value)

    request.refresh_from_db()
    assert request.state == State.FAILED
    assert request.failure["message"].startswith("AWS kept failing for 1 hours, so the portal stopped trying")
    assert actions(request).count("import_call") == 3


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
    request = make_request(checked=False, ec2_image_id="ami-05eed000000000002", windows_version="11")

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


def test_the_form_offers_the_amis_a_worker_listed_and_asks_for_a_fresh_list_once(
    target: AwsTarget, sandbox: SandboxHandle, published: list[Any]
) -> None:
    gone = AwsTarget.objects.create(name="Gone", account_id="123456789012", region="us-east-1", is_active=False)
    cache.clear()
    published.clear()

    before = OFFERED_AMIS()
    again = OFFERED_AMIS()
    listed = execution.refresh_ami_offers(target.pk)
    after = OFFERED_AMIS()

    # The page never asked AWS: it offered what was stored (nothing yet) and asked a worker, once.
    assert (before, again) == ({target.pk: []}, {target.pk: []})
    assert published == [("refresh_ami_offers", (target.pk,))]
    ids = [ami.image_id for ami in after[target.pk]]
    assert listed == len(ids)
    assert "ami-05eed000000000001" in ids
    assert "ami-05eed000000000006" not in ids  # Linux
    assert "ami-05eed000000000007" not in ids  # another account's
    assert control(sandbox, "calls") == {"DescribeImages": 1}
    assert execution.refresh_ami_offers(gone.pk) is None
    assert list(after) == [target.pk]


def test_a_target_aws_cannot_be_asked_keeps_its_last_offers(target: AwsTarget) -> None:
    offer = {"image_id": "ami-0aaaaaaaaaaaaaaa1", "name": "win11", "created": "2026-11-01T00:00:00Z"}
    AwsTarget.objects.filter(pk=target.pk).update(endpoint_url="http://127.0.0.1:9", ami_offers=[offer])

    assert execution.refresh_ami_offers(target.pk) is None

    target.refresh_from_db()
    assert target.ami_offers == [offer]


# --- the engine: AWS's floor, transient faults, leases ------------------------------------------


def fill_account(target: AwsTarget, count: int) -> None:
    for n in range(count):
        aws.import_image(
            target,
            parameters={
                "Ec2ImageId": WINDOWS_AMI,
                "IngestionProcess": "BYOL_REGULAR_WSP",
                "ImageName": f"existing-{time.time_ns()}-{n}",
                "ImageDescription": "already in the account",
            },
            identity="someone",
        )


def test_an_import_spends_one_workspaces_call_however_many_images_the_account_holds(
    approved: Any, target: AwsTarget, sandbox: SandboxHandle
) -> None:
    fill_account(target, 60)
    requests = [approved() for _ in range(3)]
    control(sandbox, "reset", {})

    for request in requests:
        execution.import_request(request.pk)

    calls = control(sandbox, "calls?by=service")
    # BYOL is asked once and then cached; the name clash is the import call's own to report.
    assert calls["workspaces"] == {"DescribeAccount": 1, "ImportWorkspaceImage": 3}
    assert calls["sts"] == {"GetCallerIdentity": 3}
    assert calls["ec2"] == {"DescribeImages": 3}
    for request in requests:
        request.refresh_from_db()
        assert request.state == State.IMPORTING


def test_aws_unreachable_during_the_checks_makes_the_import_wait_and_then_go_through(
    approved: Any, sandbox: SandboxHandle
) -> None:
    request = approved()
    control(sandbox, "faults", {"down": True, "operations": ["DescribeImages"]})

    with pytest.raises(TryAgain) as wait:
        execution.import_request(request.pk)

    assert 2.5 <= wait.value.seconds <= 5
    request.refresh_from_db()
    assert request.state == State.SUBMITTING
    assert (request.waiting["reason"], request.waiting["attempts"]) == ("transient", 1)
    assert "could not reach AWS" in request.waiting["message"]
    assert request.next_attempt_at == wait.value.due_at
    assert request.lease_expires_at > wait.value.due_at
    retry = request.events.get(action="import_retry")
    assert (retry.data["error"]["kind"], retry.data["outcome_unknown"]) == ("ChecksInterrupted", False)
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")

    control(sandbox, "reset", {})
    resume(request.pk, wait.value)

    request.refresh_from_db()
    assert (request.state, request.waiting, request.next_attempt_at) == (State.IMPORTING, {}, None)
    assert control(sandbox, "calls")["ImportWorkspaceImage"] == 1


def test_a_5xx_answer_to_the_import_call_is_looked_up_by_name_before_the_next_call(
    approved: Any, sandbox: SandboxHandle
) -> None:
    request = approved()
    control(sandbox, "faults", {"server_error_rate": 1.0, "operations": ["ImportWorkspaceImage"]})

    with pytest.raises(TryAgain) as wait:
        execution.import_request(request.pk)

    request.refresh_from_db()
    assert (request.state, request.import_call_pending) == (State.SUBMITTING, True)
    assert request.events.get(action="import_retry").data["outcome_unknown"] is True

    control(sandbox, "reset", {})
    resume(request.pk, wait.value)

    request.refresh_from_db()
    assert (request.state, request.import_calls, request.import_call_pending) == (State.IMPORTING, 2, False)
    calls = control(sandbox, "calls")
    assert calls["DescribeWorkspaceImages"] >= 1  # looked for the image by name first
    assert calls["ImportWorkspaceImage"] == 1


def test_an_import_whose_turn_is_far_off_waits_for_it_without_holding_a_worker(
    approved: Any, sandbox: SandboxHandle
) -> None:
    first, second = approved(), approved()
    execution.import_request(first.pk)  # BYOL is now known, and cached
    limiter = DatabaseTokenBucket(rate=0.1, burst=1)
    aws.use_rate_limiter(limiter)
    limiter.reserve(first.target.account_id)  # another import took the one free turn

    with pytest.raises(TryAgain) as wait:
        execution.import_request(second.pk)

    assert 9 <= wait.value.seconds <= 10
    second.refresh_from_db()
    assert (second.state, second.waiting["reason"]) == (State.SUBMITTING, "rate")
    assert second.waiting["message"] == image.MSG_WAITING_FOR_TURN
    assert second.next_attempt_at == wait.value.due_at
    assert "import_retry" not in actions(second)  # nothing happened yet that the history must keep
    assert control(sandbox, "calls")["ImportWorkspaceImage"] == 1

    tokens_before = list(AccountRateLimit.objects.values_list("tokens", "refilled_at"))
    resume(second.pk, wait.value)

    second.refresh_from_db()
    assert second.state == State.IMPORTING
    assert control(sandbox, "calls")["ImportWorkspaceImage"] == 2
    # The turn was reserved before the wait: the resumed attempt took no other.
    assert list(AccountRateLimit.objects.values_list("tokens", "refilled_at")) == tokens_before


def test_a_duplicate_of_a_scheduled_retry_finds_nothing_to_resume(approved: Any, sandbox: SandboxHandle) -> None:
    request = approved()
    control(sandbox, "faults", {"throttle_rate": 1.0, "operations": ["ImportWorkspaceImage"]})
    with pytest.raises(TryAgain) as wait:
        execution.import_request(request.pk)
    control(sandbox, "reset", {})

    resume(request.pk, wait.value)
    resume(request.pk, wait.value)

    request.refresh_from_db()
    assert request.state == State.IMPORTING
    assert control(sandbox, "calls")["ImportWorkspaceImage"] == 1


def test_a_worker_whose_import_was_taken_over_can_neither_send_nor_record(
    approved: Any, sandbox: SandboxHandle
) -> None:
    request = approved()
    paused = workflow.claim_for_import(request_id=request.pk, lease_seconds=0)
    taken_over = workflow.reclaim_import(request_id=request.pk, lease_seconds=600)
    assert taken_over.lease_token != paused.lease_token

    with pytest.raises(workflow.Conflict):
        workflow.record_import_call(request_id=request.pk, lease_token=paused.lease_token, parameters={}, checks=[])
    with pytest.raises(workflow.Conflict):
        workflow.record_import_accepted(
            request_id=request.pk, lease_token=paused.lease_token, aws_image_id="wsi-123456789", data={}
        )
    assert not workflow.renew_lease(request_id=request.pk, lease_token=paused.lease_token, lease_seconds=600)

    request.refresh_from_db()
    assert (request.state, request.import_calls, request.lease_token) == (
        State.SUBMITTING,
        0,
        taken_over.lease_token,
    )
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


def test_a_poll_pass_that_runs_out_of_time_leaves_the_rest_to_the_next_pass_which_starts_with_them(
    approved: Any, sandbox: SandboxHandle
) -> None:
    requests = [approved() for _ in range(30)]
    for request in requests:
        ImportRequest.objects.filter(pk=request.pk).update(
            state=State.IMPORTING, aws_image_id=f"wsi-{request.pk:09d}", import_started_at=timezone.now()
        )
    target_id = requests[0].target_id

    first = execution.poll_target(target_id, seconds=0)
    unreached = set(ImportRequest.objects.filter(polled_at__isnull=True).values_list("pk", flat=True))
    second = execution.poll_target(target_id, seconds=0)

    assert (first.describe_calls, first.requests, first.deferred) == (1, 25, 5)
    assert len(unreached) == 5
    assert (second.describe_calls, second.requests, second.deferred) == (1, 25, 5)
    assert not ImportRequest.objects.filter(pk__in=unreached, polled_at__isnull=True).exists()


def test_status_tracking_yields_the_accounts_rate_to_imports_that_wait_for_it(
    approved: Any, sandbox: SandboxHandle
) -> None:
    request = approved()
    execution.import_request(request.pk)
    limiter = DatabaseTokenBucket(rate=2, burst=5)
    aws.use_rate_limiter(limiter)
    for _ in range(100):  # imports have reserved the next 50 seconds of turns
        limiter.reserve(request.target.account_id)
    control(sandbox, "reset", {})

    report = execution.poll_importing_images()

    assert (report.describe_calls, report.errors, report.deferred) == (0, 0, 1)
    assert "DescribeWorkspaceImages" not in control(sandbox, "calls")


def test_the_sweeper_sends_nothing_again_while_its_message_may_be_on_its_way(
    approved: Any, published: list[Any], settings: Any
) -> None:
    settings.PORTAL_UNCLAIMED_AFTER_SECONDS = 0
    settings.PORTAL_RESEND_AFTER_SECONDS = 300
    unclaimed = approved()
    lost = approved()
    workflow.claim_for_import(request_id=lost.pk, lease_seconds=0)
    published.clear()

    first = execution.sweep_lost_work()
    # The broker accepted both messages (dispatch marks them), but no worker took them yet.
    ImportRequest.objects.filter(pk__in=[unclaimed.pk, lost.pk]).update(dispatched_at=timezone.now())
    second = execution.sweep_lost_work()
    ImportRequest.objects.filter(pk__in=[unclaimed.pk, lost.pk]).update(
        dispatched_at=timezone.now() - timezone.timedelta(seconds=301)
    )
    third = execution.sweep_lost_work()

    assert (first.unclaimed, first.lost_claims) == (1, 1)
    assert (second.unclaimed, second.lost_claims) == (0, 0)
    assert (third.unclaimed, third.lost_claims) == (1, 1)
    assert published.count(("import_request", (unclaimed.pk,))) == 2
    assert published.count(("import_request", (lost.pk,))) == 2


def test_a_sweep_is_skipped_while_another_holds_its_lock(approved: Any, published: list[Any], settings: Any) -> None:
    settings.PORTAL_UNCLAIMED_AFTER_SECONDS = 0
    approved()
    published.clear()

    with job_lock("sweep", hold_seconds=60) as mine:
        assert mine
        report = execution.sweep_lost_work()

    assert report == execution.SweepReport()
    assert published == []


def test_the_worker_renews_its_lease_while_a_slow_aws_call_runs(
    committed_db: None, approved: Any, sandbox: SandboxHandle, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PORTAL_IMPORT_LEASE_SECONDS = 0.6  # renewed every 0.2 s
    request = approved()
    control(sandbox, "faults", {"latency_ms": 1500, "operations": ["ImportWorkspaceImage"]})
    renewals: list[tuple[Any, bool]] = []
    renew = workflow.renew_lease

    def recorded(**kwargs: Any) -> bool:
        renewed = renew(**kwargs)
        renewals.append((ImportRequest.objects.get(pk=request.pk).lease_expires_at, renewed))
        return renewed

    monkeypatch.setattr(workflow, "renew_lease", recorded)

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert request.state == State.IMPORTING
    # Without renewals the 0.6 s lease would have run out during the 1.5 s call, and the sweeper
    # could have handed the import to another worker.
    # A renewal just after the import was recorded finds nothing left to renew: only the last.
    renewed = [expiry for expiry, ok in renewals if ok]
    assert [ok for _, ok in renewals[: len(renewed)]] == [True] * len(renewed)
    assert len(renewed) >= 4
    assert renewed == sorted(renewed)
    assert "reclaim" not in actions(request)


def test_checks_that_aws_could_not_answer_for_a_passing_reason_are_run_again(make_request: Any) -> None:
    throttled = {"key": "byol", "title": "t", "outcome": "fail", "message": "slow down", "aws": {}, "retryable": True}
    refused = {**throttled, "retryable": False}
    interrupted = make_request(checked=False)
    workflow.record_preflight(request_id=interrupted.pk, version=1, checks=[throttled])
    failed = make_request(checked=False)
    workflow.record_preflight(request_id=failed.pk, version=1, checks=[refused])

    assert execution.preflight_interrupted(ImportRequest.objects.get(pk=interrupted.pk))
    assert not execution.preflight_interrupted(ImportRequest.objects.get(pk=failed.pk))
    assert not execution.preflight_interrupted(None)


def test_the_task_runs_interrupted_checks_again_after_a_backoff(
    make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = {"key": "byol", "title": "t", "outcome": "fail", "message": "slow down", "aws": {}, "retryable": True}
    interrupted = make_request(checked=False)
    workflow.record_preflight(request_id=interrupted.pk, version=1, checks=[throttled])
    monkeypatch.setattr(
        execution, "run_preflight_checks", lambda request_id, version: ImportRequest.objects.get(pk=request_id)
    )
    scheduled: dict[str, Any] = {}

    def retry(**options: Any) -> Exception:
        scheduled.update(options)
        return Retry()

    monkeypatch.setattr(tasks.run_preflight_checks, "retry", retry)
    with pytest.raises(Retry):
        tasks.run_preflight_checks(interrupted.pk, 1)
    assert 0 < scheduled["countdown"] <= settings.PORTAL_RETRY_MAX_SECONDS


def test_an_unknown_outcome_stays_unknown_until_a_lookup_by_name_settles_it(
    approved: Any, target: AwsTarget, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    original_config = aws._config
    monkeypatch.setattr(aws, "_config", lambda *, attempts, **timeouts: original_config(attempts=1, **timeouts))
    aws.forget_clients()
    request = approved()
    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=0)
    parameters = image.approved_parameters(claimed)
    workflow.record_import_call(
        request_id=request.pk, lease_token=claimed.lease_token, parameters=parameters, checks=[]
    )
    made = aws.import_image(target, parameters=parameters, identity=request.reference)  # reached AWS; answer lost
    # The lookup is throttled: that says nothing about the earlier call, whose outcome stays unknown.
    control(sandbox, "faults", {"throttle_rate": 1.0, "operations": ["DescribeWorkspaceImages"]})

    with pytest.raises(TryAgain) as wait:
        execution.import_request(request.pk)

    request.refresh_from_db()
    assert (request.state, request.import_call_pending) == (State.SUBMITTING, True)
    control(sandbox, "reset", {})
    resume(request.pk, wait.value)

    request.refresh_from_db()
    assert (request.state, request.aws_image_id, request.import_calls) == (State.IMPORTING, made.image_id, 1)
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


# --- after a failed import: the recovery paths (issue 8) -----------------------------------------


def fail_with_an_error_image(approved: Any) -> ImportRequest:
    request = approved(ec2_image_id=ERROR_AMI)
    execution.import_request(request.pk)
    wait_for_import()
    execution.poll_importing_images()
    request.refresh_from_db()
    assert request.state == State.FAILED
    return request


def revise_with_a_good_ami_and_approve(failed: ImportRequest, requester: Any, approver: Any) -> None:
    workflow.revise_request(
        request_id=failed.pk, actor=requester, fields={"ec2_image_id": WINDOWS_AMI}, expected_version=1
    )
    pass_preflight(ImportRequest.objects.get(pk=failed.pk))
    workflow.approve_request(request_id=failed.pk, actor=approver, expected_version=2)


def test_a_revised_request_deletes_the_failed_image_it_made_then_imports_the_new_version_under_the_same_name(
    approved: Any, requester: Any, approver: Any, sandbox: SandboxHandle
) -> None:
    failed = fail_with_an_error_image(approved)
    failed_image = failed.aws_image_id
    assert failed.failure["next_step"] == "revise"
    revise_with_a_good_ami_and_approve(failed, requester, approver)
    control(sandbox, "reset", {})

    execution.import_request(failed.pk)

    request = ImportRequest.objects.get(pk=failed.pk)
    assert request.state == State.IMPORTING
    assert request.aws_image_id not in ("", failed_image)
    assert request.stale_image_id == ""
    assert actions(request)[-4:] == ["claim", "image_deleted", "import_call", "aws_accepted"]
    assert request.events.get(action="image_deleted").data == {"aws_image_id": failed_image}
    assert [e["failure"]["details"][0]["code"] for e in request.earlier_failures] == ["OfficeInstalled"]
    images = [image for image in control(sandbox, "images")["Images"] if image["Name"] == request.image_name]
    assert [image["ImageId"] for image in images] == [request.aws_image_id]
    assert control(sandbox, "calls")["DeleteWorkspaceImage"] == 1


def test_an_image_aws_will_not_delete_stops_the_import_and_says_what_to_undo(
    approved: Any, requester: Any, approver: Any, target: AwsTarget, sandbox: SandboxHandle
) -> None:
    failed = fail_with_an_error_image(approved)
    aws.client(target, "workspaces").update_workspace_image_permission(
        ImageId=failed.aws_image_id, AllowCopyImage=True, SharedAccountId="111122223333"
    )
    revise_with_a_good_ami_and_approve(failed, requester, approver)
    control(sandbox, "reset", {})

    execution.import_request(failed.pk)

    request = ImportRequest.objects.get(pk=failed.pk)
    assert request.state == State.FAILED
    assert request.failure["message"].startswith(f"The failed image of an earlier attempt ({failed.aws_image_id})")
    assert aws.MSG_IMAGE_IN_USE in request.failure["message"]
    assert request.failure["next_step"] == "fix_target"
    assert actions(request)[-1] == "import_stopped"  # nothing was sent to import
    assert "ImportWorkspaceImage" not in control(sandbox, "calls")


def test_a_check_that_fails_just_before_the_import_is_recorded_as_stopped_not_as_refused_by_aws(
    approved: Any, sandbox: SandboxHandle
) -> None:
    request = approved(ec2_image_id=LINUX_AMI)

    execution.import_request(request.pk)

    request.refresh_from_db()
    assert (request.state, request.failure["next_step"]) == (State.FAILED, "revise")
    assert actions(request)[-1] == "import_stopped"
    assert request.events.get(action="import_stopped").get_action_display() == (
        "Stopped before anything was sent to AWS"
    )
