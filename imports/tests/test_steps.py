"""The delivery plan's steps end to end against the local AWS sandbox, without Celery: the import
to AVAILABLE, then each step claimed, called, followed and settled by the step engine, with the
messages it queues run in order here (test_celery_e2e runs them with a real worker)."""

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core import mail

from imports import aws, execution, workflow
from imports.models import AwsTarget, ImportRequest, RequestEvent, RolloutStep
from imports.retry import TryAgain
from imports.steps import base, engine
from imports.tests.conftest import pass_preflight, request_fields
from sandbox import SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox

pytestmark = pytest.mark.usefixtures("sandbox_aws")
StepState = RolloutStep.State
HOME, AWAY = "us-east-1", "eu-west-1"
PARTNER, OTHER_PARTNER = "210987654321", "333344445555"
WINDOWS_AMI = "ami-05eed000000000001"
IMPORT_DELAY = 0.3


def new_bundle() -> dict[str, Any]:
    """A bundle of a name no earlier test used (the sandbox keeps what tests made)."""
    name = f"std-{time.time_ns()}"
    return {"name": name, "description": "Standard desktops", "compute_type": "STANDARD", "root_gb": 80, "user_gb": 50}


@pytest.fixture
def target(db: None, sandbox: SandboxHandle) -> AwsTarget:
    return AwsTarget.objects.create(
        name="Sandbox", account_id=SANDBOX_ACCOUNT_ID, region=HOME, endpoint_url=sandbox.url
    )


def workspaces(sandbox: SandboxHandle, region: str) -> Any:
    return boto3.client("workspaces", region_name=region, endpoint_url=sandbox.url)


@pytest.fixture(autouse=True)
def _commits(django_capture_on_commit_callbacks: Any) -> None:
    """What the code runs after commit (queueing the next steps, email) runs here as each call
    returns, as it would after a real commit."""
    global committed
    committed = lambda: django_capture_on_commit_callbacks(execute=True)  # noqa: E731


committed: Callable[[], Any]


@pytest.fixture
def available(
    target: AwsTarget, requester: Any, approver: Any, published: list[tuple[str, tuple[Any, ...]]]
) -> Callable[..., ImportRequest]:
    """A request with `plan`, approved, imported and AVAILABLE: its first steps are queued."""

    def make(plan: dict[str, Any], **overrides: Any) -> ImportRequest:
        fields = request_fields(
            target, ec2_image_id=WINDOWS_AMI, image_name=f"roll-{time.time_ns()}", delivery_plan=plan, **overrides
        )
        request = pass_preflight(workflow.submit_request(requester=requester, fields=fields))
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
        execution.import_request(request.pk)
        deadline = time.monotonic() + 10
        published.clear()
        while ImportRequest.objects.get(pk=request.pk).state != ImportRequest.State.AVAILABLE:
            assert time.monotonic() < deadline, "the import did not become AVAILABLE"
            time.sleep(IMPORT_DELAY / 2)
            with committed():
                execution.poll_importing_images()
        return ImportRequest.objects.get(pk=request.pk)

    return make


def run_queued(
    published: list[tuple[str, tuple[Any, ...]]], request: ImportRequest, *, seconds: float = 15, rounds: int = 0
) -> None:
    """Play Celery: run each queued step (a TryAgain resumes at once), poll what AWS works on,
    until the rollout of `request` has ended (or for `rounds` rounds)."""
    deadline = time.monotonic() + seconds
    for _ in iter(int, 1) if not rounds else range(rounds):
        if ImportRequest.objects.get(pk=request.pk).rollout != "running":
            return
        assert time.monotonic() < deadline, list(RolloutStep.objects.filter(request=request).values("kind", "state"))
        batch = list(published)
        published.clear()
        for name, args in batch:
            if name != "run_step":
                continue
            step_id, *resume = args
            due = {"lease_token": resume[0], "due_at": resume[1]} if resume else {}
            try:
                with committed():
                    engine.run_step(step_id, **due)
            except TryAgain as wait:
                published.append(("run_step", (step_id, wait.lease_token, wait.due_at)))
        time.sleep(0.1)
        with committed():
            engine.poll_steps()


def steps_of(request: ImportRequest) -> list[RolloutStep]:
    return list(RolloutStep.objects.filter(request=request).order_by("position"))


def test_a_full_plan_ends_with_every_step_done_in_aws(
    available: Any, published: Any, sandbox: SandboxHandle, requester: Any
) -> None:
    requester.email = "req@example.com"
    requester.save()
    bundle = new_bundle()
    request = available(
        {
            "bundle": bundle,
            "copies": [{"region": AWAY, "bundle": True}],
            "shares": [{"account_id": PARTNER, "region": HOME}, {"account_id": PARTNER, "region": AWAY}],
        }
    )
    steps = steps_of(request)
    assert [(s.kind, s.region) for s in steps] == [
        ("bundle", HOME),
        ("copy", AWAY),
        ("bundle", AWAY),
        ("share", HOME),
        ("share", AWAY),
    ]
    assert request.rollout == "running"

    run_queued(published, request)

    steps = steps_of(request)
    assert [s.state for s in steps] == [StepState.DONE] * 5
    request.refresh_from_db()
    assert request.rollout == "done"
    copy = steps[1]
    assert copy.resource_id.startswith("wsi-")
    assert copy.resource_id != request.aws_image_id
    away = workspaces(sandbox, AWAY)
    assert away.describe_workspace_images(ImageIds=[copy.resource_id])["Images"][0]["State"] == "AVAILABLE"
    home_bundles = workspaces(sandbox, HOME).describe_workspace_bundles()["Bundles"]
    away_bundles = away.describe_workspace_bundles()["Bundles"]
    assert [b["ImageId"] for b in home_bundles if b["Name"] == bundle["name"]] == [request.aws_image_id]
    assert [b["ImageId"] for b in away_bundles if b["Name"] == bundle["name"]] == [copy.resource_id]
    for region, image_id in ((HOME, request.aws_image_id), (AWAY, copy.resource_id)):
        grants = workspaces(sandbox, region).describe_workspace_image_permissions(ImageId=image_id)
        assert grants["ImagePermissions"] == [{"SharedAccountId": PARTNER}]
    # Each step's call and its end are in the sealed history; one call each.
    events = RequestEvent.objects.filter(request=request, action__startswith="step_")
    assert sorted(e.data["step"] for e in events.filter(action="step_call")) == [1, 2, 3, 4, 5]
    assert sorted(e.data["step"] for e in events.filter(action="step_done")) == [1, 2, 3, 4, 5]
    assert [s.calls for s in steps] == [1, 1, 1, 1, 1]
    # The requester heard that the image is available and the plan runs next, then how it ended.
    available_mail = next(m for m in mail.outbox if "import available" in m.subject)
    assert "The delivery plan runs next" in available_mail.body
    [done_mail] = [m for m in mail.outbox if "rollout done" in m.subject]
    assert "req@example.com" in done_mail.to
    assert "Done: Bundle" in done_mail.body


def test_no_plan_makes_no_steps(available: Any) -> None:
    request = available({})
    assert steps_of(request) == []
    assert request.rollout == ""


def test_a_lost_answer_is_settled_by_name_and_tag_without_a_second_call(
    available: Any, published: Any, sandbox: SandboxHandle
) -> None:
    bundle = new_bundle()
    request = available({"bundle": bundle})
    (step,) = steps_of(request)
    # The worker's call reached AWS and then the worker died: the call is recorded, its answer lost.
    claimed = workflow.claim_step(step_id=step.pk, lease_seconds=30)
    parameters = step.operation.parameters(claimed)
    workflow.record_step_call(step_id=step.pk, lease_token=claimed.lease_token, parameters=parameters)
    workspaces(sandbox, HOME).create_workspace_bundle(**parameters)
    RolloutStep.objects.filter(pk=step.pk).update(lease_expires_at=claimed.lease_expires_at.replace(year=2000))

    published.clear()
    published.append(("run_step", (step.pk,)))
    run_queued(published, request)

    step.refresh_from_db()
    assert step.state == StepState.DONE
    assert step.calls == 1
    named = [
        b for b in workspaces(sandbox, HOME).describe_workspace_bundles()["Bundles"] if b["Name"] == bundle["name"]
    ]
    assert len(named) == 1
    done = RequestEvent.objects.get(request=request, action="step_done")
    assert done.data["adopted"] is True


def test_a_name_someone_else_holds_fails_the_step_alone_and_an_approver_retries_it(
    available: Any, published: Any, sandbox: SandboxHandle, approver: Any, requester: Any
) -> None:
    home = workspaces(sandbox, HOME)
    # Someone made a bundle called std-bundle by hand, from an image of their own.
    theirs = home.import_workspace_image(
        Ec2ImageId="ami-05eed000000000002",
        IngestionProcess="BYOL_REGULAR_WSP",
        ImageName=f"hand-{time.time_ns()}",
        ImageDescription="by hand",
    )["ImageId"]
    time.sleep(IMPORT_DELAY * 2)
    bundle = new_bundle()
    hand_bundle = home.create_workspace_bundle(
        BundleName=bundle["name"],
        BundleDescription="by hand",
        ImageId=theirs,
        ComputeType={"Name": "STANDARD"},
        UserStorage={"Capacity": "50"},
    )["WorkspaceBundle"]["BundleId"]

    request = available({"bundle": bundle, "shares": [{"account_id": PARTNER, "region": HOME}]})
    run_queued(published, request)

    bundle, share = steps_of(request)
    assert bundle.state == StepState.FAILED
    assert share.state == StepState.DONE
    assert hand_bundle in bundle.failure["message"]
    assert "not made by this request" in bundle.failure["message"]
    assert "Rename or delete it" in bundle.failure["what_to_do"]
    request.refresh_from_db()
    assert request.rollout == "incomplete"

    # The requester may not retry; an approver may, once the name is free.
    with pytest.raises(workflow.NotAllowed):
        workflow.retry_step(step_id=bundle.pk, actor=requester)
    home.delete_workspace_bundle(BundleId=hand_bundle)
    published.clear()
    with committed():
        workflow.retry_step(step_id=bundle.pk, actor=approver, comment="deleted the hand-made bundle")
    assert published == [("run_step", (bundle.pk,))]
    run_queued(published, request)

    bundle.refresh_from_db()
    assert bundle.state == StepState.DONE
    request.refresh_from_db()
    assert request.rollout == "done"
    retried = RequestEvent.objects.get(request=request, action="step_retried")
    assert retried.actor_username == approver.username
    assert retried.comment == "deleted the hand-made bundle"


def test_a_failed_copy_holds_back_only_what_needs_it(available: Any, published: Any, sandbox: SandboxHandle) -> None:
    plan = {
        "bundle": new_bundle(),
        "copies": [{"region": AWAY, "bundle": True}],
        "shares": [{"account_id": PARTNER, "region": HOME}, {"account_id": PARTNER, "region": AWAY}],
    }
    request = available(plan)
    away = workspaces(sandbox, AWAY)
    # Someone copied the image there by hand, under the same name, without the portal's tags.
    away.copy_workspace_image(Name=request.image_name, SourceImageId=request.aws_image_id, SourceRegion=HOME)
    run_queued(published, request)

    states = {(s.kind, s.region): s.state for s in steps_of(request)}
    assert states == {
        ("bundle", HOME): StepState.DONE,
        ("copy", AWAY): StepState.FAILED,
        ("bundle", AWAY): StepState.PENDING,
        ("share", HOME): StepState.DONE,
        ("share", AWAY): StepState.PENDING,
    }
    request.refresh_from_db()
    assert request.rollout == "incomplete"


def test_throttling_and_server_errors_wait_and_never_fail_a_step(
    available: Any, published: Any, sandbox: SandboxHandle
) -> None:
    planned = new_bundle()
    request = available({"bundle": planned, "copies": [{"region": AWAY, "bundle": False}]})
    calls = ["CreateWorkspaceBundle", "CopyWorkspaceImage"]
    control_sandbox(sandbox.url, "faults", {"server_error_rate": 1.0, "operations": calls})
    run_queued(published, request, rounds=1)
    control_sandbox(sandbox.url, "faults", {"server_error_rate": 0.0, "throttle_rate": 1.0, "operations": calls})
    run_queued(published, request, rounds=1)
    assert {s.state for s in steps_of(request)} == {StepState.WAITING}
    control_sandbox(sandbox.url, "faults", {"throttle_rate": 0.0})
    run_queued(published, request)

    bundle, copy = steps_of(request)
    assert bundle.state == copy.state == StepState.DONE
    retries = RequestEvent.objects.filter(request=request, action="step_retry")
    assert sorted(e.data["error"]["code"] for e in retries) == [
        "InternalFailure",
        "InternalFailure",
        "ThrottlingException",
        "ThrottlingException",
    ]
    # After a 5xx the next attempt looked for what the call may have made before calling again.
    assert all(e.data["outcome_unknown"] for e in retries if e.data["error"]["code"] == "InternalFailure")
    # A 5xx may hide a made bundle or copy: the next attempt looked first, so one of each exists.
    home_bundles = workspaces(sandbox, HOME).describe_workspace_bundles()["Bundles"]
    assert [b["Name"] for b in home_bundles].count(planned["name"]) == 1
    names = [i["Name"] for i in workspaces(sandbox, AWAY).describe_workspace_images(ImageType="OWNED")["Images"]]
    assert names.count(request.image_name) == 1


def test_aws_out_of_reach_past_the_budget_fails_the_step_with_what_to_do(
    available: Any, published: Any, sandbox: SandboxHandle, settings: Any
) -> None:
    settings.PORTAL_RETRY_BUDGET_SECONDS = 0
    request = available({"shares": [{"account_id": PARTNER, "region": HOME}]})
    control_sandbox(sandbox.url, "faults", {"down": True, "operations": ["UpdateWorkspaceImagePermission"]})
    run_queued(published, request)

    (share,) = steps_of(request)
    assert share.state == StepState.FAILED
    assert "stopped trying" in share.failure["message"]
    assert share.failure["what_to_do"] == base.TODO_LATER


def test_a_step_is_claimed_once(available: Any) -> None:
    request = available({"bundle": new_bundle()})
    (step,) = steps_of(request)
    workflow.claim_step(step_id=step.pk, lease_seconds=30)
    with pytest.raises(workflow.Conflict):
        workflow.claim_step(step_id=step.pk, lease_seconds=30)


def test_a_step_waits_for_the_step_it_needs(available: Any) -> None:
    request = available(
        {"copies": [{"region": AWAY, "bundle": False}], "shares": [{"account_id": PARTNER, "region": AWAY}]}
    )
    copy, share = steps_of(request)
    assert share.depends_on_id == copy.pk
    with pytest.raises(workflow.Conflict):
        workflow.claim_step(step_id=share.pk, lease_seconds=30)


def test_the_sweeper_sends_again_a_step_whose_worker_died(available: Any, published: Any) -> None:
    request = available({"bundle": new_bundle(), "shares": [{"account_id": OTHER_PARTNER, "region": HOME}]})
    bundle, share = steps_of(request)
    claimed = workflow.claim_step(step_id=bundle.pk, lease_seconds=30)
    RolloutStep.objects.filter(pk=bundle.pk).update(lease_expires_at=claimed.lease_expires_at.replace(year=2000))
    # The share's message was lost at the broker, long ago.
    RolloutStep.objects.filter(pk=share.pk).update(updated_at=claimed.lease_expires_at.replace(year=2000))
    published.clear()

    report = execution.sweep_lost_work()

    assert report.steps == 2
    assert sorted(args[0] for name, args in published if name == "run_step") == [bundle.pk, share.pk]
    run_queued(published, request)
    assert [s.state for s in steps_of(request)] == [StepState.DONE, StepState.DONE]


# --- the plan's pre-flight -------------------------------------------------------------------


def checked(target: AwsTarget, requester: Any, plan: dict[str, Any], **overrides: Any) -> dict[str, dict[str, Any]]:
    overrides.setdefault("image_name", f"pre-{time.time_ns()}")
    fields = request_fields(target, ec2_image_id=WINDOWS_AMI, delivery_plan=plan, **overrides)
    request = workflow.submit_request(requester=requester, fields=fields)
    execution.run_preflight_checks(request.pk, request.version)
    request.refresh_from_db()
    outcome = {"passed": {"outcome": request.preflight["passed"]}, "image_name": {"outcome": request.image_name}}
    return {c["key"]: c for c in request.preflight["checks"]} | outcome


def test_the_preflight_checks_each_region_of_the_plan(target: AwsTarget, requester: Any) -> None:
    bundle = new_bundle()
    plan = {
        "bundle": bundle,
        "copies": [{"region": AWAY, "bundle": True}],
        "shares": [{"account_id": PARTNER, "region": HOME}],
    }
    checks = checked(target, requester, plan)

    assert checks[f"byol:{AWAY}"]["outcome"] == "pass"
    assert checks[f"name:{AWAY}"]["outcome"] == "pass"
    assert checks[f"bundle_name:{HOME}"]["outcome"] == "pass"
    assert checks[f"bundle_name:{AWAY}"]["outcome"] == "pass"
    # Nothing can be seen of the receiving account: no check pretends to, the request warns instead.
    assert not [key for key in checks if key.startswith("share")]
    assert checks["passed"]["outcome"] is True
    request = ImportRequest.objects.get(image_name=checks["image_name"]["outcome"])
    assert any(PARTNER in warning and "BYOL" in warning for warning in request.warnings)


def test_names_taken_in_other_regions_and_byol_off_there_fail_the_preflight(
    target: AwsTarget, requester: Any, sandbox: SandboxHandle
) -> None:
    bundle = new_bundle()
    home = workspaces(sandbox, HOME)
    image_id = home.import_workspace_image(
        Ec2ImageId="ami-05eed000000000002",
        IngestionProcess="BYOL_REGULAR_WSP",
        ImageName=f"taken-{time.time_ns()}",
        ImageDescription="by hand",
    )["ImageId"]
    time.sleep(IMPORT_DELAY * 2)
    home.create_workspace_bundle(
        BundleName=bundle["name"],
        BundleDescription="by hand",
        ImageId=image_id,
        ComputeType={"Name": "STANDARD"},
        UserStorage={"Capacity": "50"},
    )
    name = f"copy-{time.time_ns()}"
    workspaces(sandbox, AWAY).copy_workspace_image(Name=name, SourceImageId=image_id, SourceRegion=HOME)

    checks = checked(
        target, requester, {"bundle": bundle, "copies": [{"region": AWAY, "bundle": False}]}, image_name=name
    )

    assert checks[f"bundle_name:{HOME}"]["outcome"] == "fail"
    assert bundle["name"] in checks[f"bundle_name:{HOME}"]["message"]
    assert checks[f"name:{AWAY}"]["outcome"] == "fail"
    assert checks["passed"]["outcome"] is False

    control_sandbox(sandbox.url, "faults", {"byol_enabled": False})
    checks = checked(target, requester, {"copies": [{"region": AWAY, "bundle": False}]})
    assert checks[f"byol:{AWAY}"]["outcome"] == "fail"


# --- following a bundle AWS works on (the sandbox makes bundles AVAILABLE at once) ------------


@pytest.mark.parametrize(("last_word", "ends"), [("AVAILABLE", StepState.DONE), ("ERROR", StepState.FAILED)])
def test_the_poller_follows_a_pending_bundle_until_aws_says_how_it_ended(
    available: Any, last_word: str, ends: str
) -> None:
    request = available({"bundle": new_bundle()})
    (step,) = steps_of(request)
    bundle_id = "wsb-abcdefgh1"
    RolloutStep.objects.filter(pk=step.pk).update(state=StepState.TRACKING, resource_id=bundle_id)

    def answer(word: str) -> dict[str, Any]:
        return {"Bundles": [{"BundleId": bundle_id, "Name": step.parameters["BundleName"], "State": word}]}

    with Stubber(aws.client(aws.in_region(request.target, HOME), "workspaces")) as stub:
        stub.add_response("describe_workspace_bundles", answer("PENDING"), {"BundleIds": [bundle_id]})
        stub.add_response("describe_workspace_bundles", answer(last_word), {"BundleIds": [bundle_id]})
        with committed():
            engine.poll_steps()
        step.refresh_from_db()
        assert (step.state, step.resource_state) == (StepState.TRACKING, "PENDING")
        assert step.polled_at is not None
        with committed():
            engine.poll_steps()
        stub.assert_no_pending_responses()

    step.refresh_from_db()
    assert step.state == ends
    request.refresh_from_db()
    assert request.rollout == ("done" if ends == StepState.DONE else "incomplete")
    if ends == StepState.FAILED:
        assert bundle_id in step.failure["message"]
        assert "retries this step" in step.failure["what_to_do"]
