"""The delivery plan on the pages: the request page's rollout card (the plan, then the checklist
of its steps, live), the retry of a failed step, the list's rollout filter, the dashboard's count,
and the images, bundles and quota per target. Steps are rows made here in the states wanted;
the engine that moves them is tested in test_steps."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from imports import aws, charts, filters, steps, workflow
from imports.audit import append_event
from imports.models import AwsTarget, EventAction, ImportRequest, RequestEvent, RolloutStep
from imports.rollout_views import MSG_STEP_RETRIED, STEP_ICONS, TARGET_PAGE_SIZE
from imports.tests.conftest import request_fields
from imports.views import HISTORY_PAGE_SIZE, PAGE_SIZE

pytestmark = pytest.mark.django_db
State = ImportRequest.State
StepState = RolloutStep.State
PARTNER = "210987654321"
PLAN = {
    "bundle": {
        "name": "std",
        "description": "Standard desktops",
        "compute_type": "STANDARD",
        "root_gb": 80,
        "user_gb": 50,
    },
    "copies": [{"region": "eu-west-1", "bundle": True}],
    "shares": [{"account_id": PARTNER, "region": "us-east-1"}],
}
LABELS = [
    "Bundle std (STANDARD, root 80 GB, user 50 GB) in us-east-1",
    "Copy {name} from us-east-1 to eu-west-1",
    "Bundle std (STANDARD, root 80 GB, user 50 GB) in eu-west-1",
    f"Share with account {PARTNER} in us-east-1",
]
FAILURE = {
    "message": "AWS refused the bundle: the compute type is not offered in this region.",
    "code": "InvalidParameterValuesException",
    "aws_message": "Compute type GRAPHICS is not supported",
    "aws_request_id": "req-42",
    "what_to_do": "Fix this in AWS as the message says (in us-east-1), then an approver retries this step.",
}


@pytest.fixture
def rolled_out(make_request: Any, approver: Any) -> Any:
    """A request with PLAN, approved and AVAILABLE, whose steps are made as the engine makes them
    (bundle, copy, the copy's bundle, share), each then put in the state given by position."""

    def make(states: dict[int, str] | None = None, *, rollout: str = "running", **overrides: Any) -> ImportRequest:
        request = make_request(delivery_plan=PLAN, **overrides)
        workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
        ImportRequest.objects.filter(pk=request.pk).update(
            state=State.AVAILABLE, aws_image_id=f"wsi-{request.pk:09d}", rollout=rollout
        )
        request.refresh_from_db()
        steps.plan_steps(request, PLAN)
        for position, state in (states or {}).items():
            RolloutStep.objects.filter(request=request, position=position).update(state=state)
        return request

    return make


def step(request: ImportRequest, position: int) -> RolloutStep:
    return RolloutStep.objects.get(request=request, position=position)


def page_of(client: Client, request: ImportRequest) -> str:
    return client.get(reverse("request_detail", args=[request.pk])).content.decode()


def retry_url(request: ImportRequest, position: int) -> str:
    return reverse("step_retry", args=[request.pk, step(request, position).pk])


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the rollout card ---------------------------------------------------------------------------


def test_before_the_image_is_available_the_card_lists_the_plan_as_it_will_run(
    client: Client, requester: Any, make_request: Any
) -> None:
    request = make_request(delivery_plan=PLAN)
    client.force_login(requester)

    page = page_of(client, request)

    assert '<h2 id="rollout-heading" class="h5 card-title">Rollout</h2>' in page
    shown = [page.index(label.format(name=request.image_name)) for label in LABELS]
    assert shown == sorted(shown)
    assert "steps done" not in page
    assert not RolloutStep.objects.exists()


def test_a_request_without_a_plan_has_no_rollout_card(client: Client, requester: Any, make_request: Any) -> None:
    request = make_request()
    client.force_login(requester)

    page = page_of(client, request)

    assert 'id="rollout"' not in page
    assert "Rollout" not in page


@pytest.mark.parametrize("state", list(StepState))
def test_the_checklist_shows_each_step_state_in_words_beside_its_sign(
    client: Client, requester: Any, rolled_out: Any, state: str
) -> None:
    request = rolled_out()
    now = timezone.now()
    fields: dict[str, Any] = {"state": state, "calls": 2}
    if state == StepState.WAITING:
        fields |= {
            "waiting": {"message": aws.MSG_THROTTLED, "attempts": 2},
            "next_attempt_at": now + timedelta(minutes=2),
        }
    if state in (StepState.TRACKING, StepState.DONE):
        fields |= {"resource_id": "wsb-abc123xyz", "resource_state": "PENDING", "polled_at": now}
    if state == StepState.FAILED:
        fields |= {"failure": FAILURE}
    RolloutStep.objects.filter(request=request, position=1).update(**fields)
    client.force_login(requester)

    page = page_of(client, request)

    label = StepState(state).label
    assert f'<span class="step-icon" aria-hidden="true">{STEP_ICONS[state]}</span>' in page
    assert f'<strong class="step-state">{label}</strong> · Step 1: {LABELS[0]}' in page
    assert "Attempts: 2" in page
    if state == StepState.WAITING:
        assert escape(aws.MSG_THROTTLED) in page
        assert f'Next attempt at <time datetime="{fields["next_attempt_at"].isoformat()}">' in page
    if state in (StepState.TRACKING, StepState.DONE):
        console = "https://us-east-1.console.aws.amazon.com/workspaces/v2/bundles?region=us-east-1"
        assert f'<a href="{console}" rel="noopener noreferrer" target="_blank"><code>wsb-abc123xyz</code>' in page
        assert "AWS says <strong>PENDING</strong>" in page
    if state == StepState.FAILED:
        assert escape(FAILURE["message"]) in page
        assert f"AWS said: {FAILURE['aws_message']} (code {FAILURE['code']}, request id req-42)" in page
        assert f"<strong>What to do:</strong> {escape(FAILURE['what_to_do'])}" in page
    else:
        assert "What to do:" not in page
    # The requester may not retry: no form for them.
    assert "Retry this step" not in page


def test_a_step_after_a_failed_one_says_which_step_it_waits_for(client: Client, approver: Any, rolled_out: Any) -> None:
    request = rolled_out({1: StepState.DONE, 2: StepState.FAILED, 4: StepState.DONE}, rollout="incomplete")
    client.force_login(approver)

    page = page_of(client, request)

    assert f'<strong class="step-state">Waits for step 2</strong> · Step 3: {LABELS[2]}' in page
    assert "Starts once step 2 is retried and done." in page
    assert "<strong>2 of 4 steps done, 1 failed</strong>" in page
    assert (
        '<span class="badge state-badge state-available">Available</span>\n</span><span id="request-rollout"> '
        '<span class="badge rollout-badge rollout-incomplete">Rollout incomplete</span></span>'
    ) in page
    # Not live: nothing runs, so the page does not poll.
    assert 'id="live-script"' not in page


def test_a_running_rollout_polls_and_reloads_its_card_alone(client: Client, requester: Any, rolled_out: Any) -> None:
    request = rolled_out({1: StepState.DONE, 2: StepState.TRACKING})
    client.force_login(requester)

    page = page_of(client, request)
    card = client.get(reverse("request_rollout", args=[request.pk]))
    status = client.get(reverse("request_status", args=[request.pk])).json()

    assert f'data-rollout-url="{reverse("request_rollout", args=[request.pk])}"' in page
    assert 'data-rollout="running"' in page
    assert card.content.decode().startswith('<section class="card mb-4" aria-labelledby="rollout-heading" id="rollout"')
    assert "<strong>1 of 4 steps done</strong>" in card.content.decode()
    assert f'data-signature="{status["rollout"]["signature"]}"' in page
    assert status["rollout"]["state"] == "running"
    assert status["rollout"]["label"] == "Rollout running"
    assert [(s["position"], s["kind"], s["state"]) for s in status["rollout"]["steps"]] == [
        (1, "bundle", "done"),
        (2, "copy", "tracking"),
        (3, "bundle", "pending"),
        (4, "share", "pending"),
    ]


def test_the_status_signature_moves_when_a_step_does(client: Client, requester: Any, rolled_out: Any) -> None:
    request = rolled_out({1: StepState.TRACKING})
    client.force_login(requester)
    url = reverse("request_status", args=[request.pk])
    before = client.get(url).json()["rollout"]["signature"]

    RolloutStep.objects.filter(request=request, position=1).update(resource_state="AVAILABLE")

    assert client.get(url).json()["rollout"]["signature"] != before


def test_whoever_cannot_see_the_request_gets_no_card(client: Client, other_requester: Any, rolled_out: Any) -> None:
    request = rolled_out()
    client.force_login(other_requester)

    response = client.get(reverse("request_rollout", args=[request.pk]))

    assert response.status_code == 404


# --- retrying a failed step ---------------------------------------------------------------------


def test_an_approver_retries_a_failed_step_with_a_comment(
    client: Client, other_approver: Any, rolled_out: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    request = rolled_out({1: StepState.DONE, 2: StepState.FAILED}, rollout="incomplete")
    RolloutStep.objects.filter(request=request, position=2).update(failure=FAILURE)
    client.force_login(other_approver)
    assert "Retry this step" in page_of(client, request)
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(retry_url(request, 2), {"comment": "Region enabled for BYOL now."})

    assert response.status_code == 302
    assert response.url == reverse("request_detail", args=[request.pk]) + "#step-2"
    assert messages_of(response) == [MSG_STEP_RETRIED.format(position=2, reference=request.reference)]
    retried = step(request, 2)
    assert retried.state == StepState.PENDING
    assert retried.failure == {}
    request.refresh_from_db()
    assert request.rollout == "running"
    event = RequestEvent.objects.filter(request=request).latest("seq")
    assert (event.action, event.actor, event.comment) == (
        EventAction.STEP_RETRIED,
        other_approver,
        "Region enabled for BYOL now.",
    )
    assert event.data == {"step": 2, "kind": "copy", "region": "eu-west-1"}
    assert published == [("run_step", (retried.pk,))]


@pytest.mark.parametrize("role", ["requester", "auditor"])
def test_who_may_not_retry_is_told_so_and_nothing_changes(
    as_role_client: Any, role: str, rolled_out: Any, published: list[Any]
) -> None:
    request = rolled_out({2: StepState.FAILED}, rollout="incomplete")
    client = as_role_client(role)
    events = RequestEvent.objects.count()
    published.clear()

    response = client.post(retry_url(request, 2), {"comment": "please"})

    assert response.status_code == 302
    expected = workflow.MSG_OWN_REQUEST if role == "requester" else workflow.MSG_NOT_ALLOWED
    assert messages_of(response) == [expected]
    assert step(request, 2).state == StepState.FAILED
    assert RequestEvent.objects.count() == events
    assert published == []
    assert "Retry this step" not in page_of(client, request)


def test_an_approver_cannot_retry_a_step_of_their_own_request(
    client: Client, approving_requester: Any, rolled_out: Any, published: list[Any]
) -> None:
    request = rolled_out({2: StepState.FAILED}, rollout="incomplete", by=approving_requester)
    client.force_login(approving_requester)
    published.clear()

    response = client.post(retry_url(request, 2))

    assert messages_of(response) == [workflow.MSG_OWN_REQUEST]
    assert step(request, 2).state == StepState.FAILED
    assert published == []
    assert "Retry this step" not in page_of(client, request)


def test_a_step_of_another_request_is_not_found_there(
    client: Client, other_approver: Any, rolled_out: Any, published: list[Any]
) -> None:
    request, other = rolled_out(), rolled_out({2: StepState.FAILED}, rollout="incomplete")
    client.force_login(other_approver)
    published.clear()

    response = client.post(reverse("step_retry", args=[request.pk, step(other, 2).pk]))

    assert response.status_code == 404
    assert step(other, 2).state == StepState.FAILED
    assert published == []


def test_who_cannot_see_the_request_cannot_retry_its_steps(
    client: Client, other_requester: Any, rolled_out: Any
) -> None:
    request = rolled_out({2: StepState.FAILED}, rollout="incomplete")
    client.force_login(other_requester)

    response = client.post(retry_url(request, 2))

    assert response.status_code == 404
    assert step(request, 2).state == StepState.FAILED


@pytest.mark.parametrize("state", [StepState.DONE, StepState.TRACKING, StepState.PENDING])
def test_a_step_that_has_not_failed_is_not_retried(
    client: Client, other_approver: Any, rolled_out: Any, published: list[Any], state: str
) -> None:
    request = rolled_out({1: state})
    client.force_login(other_approver)
    events = RequestEvent.objects.count()
    published.clear()

    response = client.post(retry_url(request, 1))

    assert response.status_code == 302
    assert messages_of(response) == [workflow.MSG_STEP_NOT_FAILED]
    assert step(request, 1).state == state
    assert RequestEvent.objects.count() == events
    assert published == []


def test_a_retry_only_answers_a_post(client: Client, other_approver: Any, rolled_out: Any) -> None:
    request = rolled_out({2: StepState.FAILED}, rollout="incomplete")
    client.force_login(other_approver)

    response = client.get(retry_url(request, 2))

    assert response.status_code == 405
    assert step(request, 2).state == StepState.FAILED


@pytest.fixture
def as_role_client(client: Client, request: Any) -> Any:
    def login(role: str) -> Client:
        client.force_login(request.getfixturevalue(role))
        return client

    return login


# --- the list and the dashboard -----------------------------------------------------------------


def test_the_list_filters_requests_whose_rollout_is_not_finished(
    client: Client, auditor: Any, rolled_out: Any, make_request: Any
) -> None:
    running, incomplete, done = rolled_out(), rolled_out(rollout="incomplete"), rolled_out(rollout="done")
    make_request()
    client.force_login(auditor)

    def listed(rollout: str) -> list[int]:
        return [r.pk for r in client.get(reverse("request_list"), {"rollout": rollout}).context["page"].object_list]

    assert listed("open") == [incomplete.pk, running.pk]
    assert listed("incomplete") == [incomplete.pk]
    assert listed("running") == [running.pk]
    assert len(listed("")) == 4
    page = client.get(reverse("request_list"), {"rollout": "open"}).content.decode()
    assert '<span class="badge rollout-badge rollout-incomplete">Rollout incomplete</span>' in page
    assert '<option value="open" selected>Not finished (running or incomplete)</option>' in page
    assert done.reference not in page


def test_the_rollout_filter_pages_with_the_keyset(
    client: Client, auditor: Any, rolled_out: Any, make_request: Any
) -> None:
    made = [rolled_out(rollout="incomplete" if n % 2 else "running") for n in range(PAGE_SIZE + 2)]
    make_request()
    client.force_login(auditor)

    first = client.get(reverse("request_list"), {"rollout": "open"}).context["page"]
    second = client.get(reverse("request_list"), {"rollout": "open", "after": first.next_cursor}).context["page"]

    assert [r.pk for r in first.object_list + second.object_list] == [r.pk for r in reversed(made)]
    assert second.next_cursor is None
    assert (
        f"rollout=open&amp;after={first.next_cursor}"
        in client.get(reverse("request_list"), {"rollout": "open"}).content.decode()
    )


def test_the_dashboard_counts_every_unfinished_rollout_for_approvers_and_links_to_them(
    client: Client, other_approver: Any, rolled_out: Any
) -> None:
    rolled_out(), rolled_out(rollout="incomplete"), rolled_out(rollout="incomplete"), rolled_out(rollout="done")
    client.force_login(other_approver)

    response = client.get(reverse("dashboard"))

    page = response.content.decode()
    assert response.context["rollouts_open"] == {"running": 1, "incomplete": 2}
    assert 'Rollouts not finished <span class="badge text-bg-secondary">3</span>' in page
    assert "2 incomplete (a step failed" in page
    assert f'href="{reverse("request_list")}?rollout=open"' in page


def test_the_dashboard_counts_a_requesters_own_unfinished_rollouts(
    client: Client, requester: Any, other_requester: Any, rolled_out: Any
) -> None:
    rolled_out(rollout="incomplete"), rolled_out(rollout="incomplete", by=other_requester)
    client.force_login(requester)

    response = client.get(reverse("dashboard"))

    page = response.content.decode()
    assert response.context["rollouts_open"] == {"incomplete": 1}
    assert 'My rollouts not finished <span class="badge text-bg-secondary">1</span>' in page
    assert "?rollout=open" not in page
    assert "Rollout incomplete</span>" in page


def test_a_requester_without_rollouts_sees_no_rollout_card(client: Client, requester: Any, make_request: Any) -> None:
    make_request()
    client.force_login(requester)

    page = client.get(reverse("dashboard")).content.decode()

    assert 'id="rollouts-open"' not in page


# --- images and bundles per target --------------------------------------------------------------


@pytest.fixture
def eu_target(db: None) -> AwsTarget:
    """A second target of the same account, in the region the plan copies to."""
    return AwsTarget.objects.create(name="Sandbox EU", account_id="123456789012", region="eu-west-1")


def image_available(request: ImportRequest, *, update: bool | None) -> None:
    image = {"state": "AVAILABLE"} if update is None else {"state": "AVAILABLE", "update_available": update}
    if update:
        image["update_description"] = "Windows updates of November"
    with transaction.atomic():
        append_event(
            request,
            action="image_available",
            actor=None,
            from_state="importing",
            to_state="available",
            data={"image": image},
        )


def test_the_targets_page_lists_the_active_targets_for_everyone(
    client: Client, requester: Any, target: AwsTarget, eu_target: AwsTarget, rolled_out: Any
) -> None:
    rolled_out()
    AwsTarget.objects.create(name="Retired", account_id="999999999999", region="us-west-2", is_active=False)
    client.force_login(requester)

    response = client.get(reverse("target_list"))

    page = response.content.decode()
    assert [t.name for t in response.context["targets"]] == ["Sandbox", "Sandbox EU"]
    assert [t.held for t in response.context["targets"]] == [1, 0]
    assert f'<a href="{reverse("target_images", args=[target.pk])}">Sandbox</a>' in page
    assert "Retired" not in page
    assert f'<a class="nav-link" href="{reverse("target_list")}">Images and bundles</a>' in page


def test_a_targets_page_shows_each_image_with_its_copies_bundles_and_shares(
    client: Client, auditor: Any, target: AwsTarget, rolled_out: Any, make_request: Any
) -> None:
    request = rolled_out({1: StepState.DONE, 2: StepState.DONE, 3: StepState.FAILED, 4: StepState.DONE})
    RolloutStep.objects.filter(request=request, position=1).update(resource_id="wsb-home00001")
    RolloutStep.objects.filter(request=request, position=2).update(resource_id="wsi-copy00001")
    image_available(request, update=True)
    plain = rolled_out()
    image_available(plain, update=False)
    make_request()  # no image yet: not listed
    client.force_login(auditor)

    response = client.get(reverse("target_images", args=[target.pk]))

    page = response.content.decode()
    rows = response.context["rows"]
    assert [row.request.pk for row in rows] == [plain.pk, request.pk]
    assert [(s.region, s.resource_id, s.state) for s in rows[1].copies] == [("eu-west-1", "wsi-copy00001", "done")]
    assert [(s.region, s.state) for s in rows[1].bundles] == [("us-east-1", "done"), ("eu-west-1", "failed")]
    assert "eu-west-1: <code>wsi-copy00001</code>, done" in page
    assert "us-east-1: <code>wsb-home00001</code>, done" in page
    assert "eu-west-1: not made yet, failed" in page
    assert f"Account {PARTNER} in us-east-1: Done" in page
    assert "Yes: Windows updates of November" in page
    assert '<td class="d-none d-md-table-cell">No</td>' in page
    assert f"<code>{request.aws_image_id}</code>" in page


def test_the_quota_counts_the_portals_images_and_copies_per_region_of_the_account(
    client: Client, requester: Any, target: AwsTarget, eu_target: AwsTarget, rolled_out: Any, make_request: Any
) -> None:
    # us-east-1: two available, one failed that still holds its image; the submitted one has none.
    rolled_out({2: StepState.DONE})
    rolled_out({2: StepState.TRACKING})
    failed = make_request()
    ImportRequest.objects.filter(pk=failed.pk).update(state=State.FAILED, aws_image_id="wsi-failed0001")
    make_request()
    # eu-west-1: the two copies, and an image imported by the EU target; a failed copy holds none.
    rolled_out({2: StepState.FAILED})
    eu = workflow.submit_request(requester=requester, fields=request_fields(eu_target, image_name="eu-image"))
    ImportRequest.objects.filter(pk=eu.pk).update(state=State.AVAILABLE, aws_image_id="wsi-eu0000001")
    client.force_login(requester)

    response = client.get(reverse("target_images", args=[target.pk]))

    quota = response.context["quota"]
    assert [(q.region, q.held, q.limit) for q in quota] == [("us-east-1", 4, 40), ("eu-west-1", 3, 40)]
    page = response.content.decode()
    assert "<td>4 of 40</td>" in page
    assert "<td>3 of 40</td>" in page
    assert "Images made outside the portal" in page


def test_the_quota_warns_near_the_limit_and_at_it(
    client: Client, auditor: Any, target: AwsTarget, make_request: Any
) -> None:
    made = [make_request() for _ in range(aws.IMAGE_QUOTA_WARNING_AT)]
    for n, request in enumerate(made):
        ImportRequest.objects.filter(pk=request.pk).update(state=State.AVAILABLE, aws_image_id=f"wsi-{n:09d}")
    client.force_login(auditor)

    near = client.get(reverse("target_images", args=[target.pk]))
    for n in range(aws.IMAGE_QUOTA - aws.IMAGE_QUOTA_WARNING_AT):
        extra = make_request()
        ImportRequest.objects.filter(pk=extra.pk).update(state=State.AVAILABLE, aws_image_id=f"wsi-x{n:08d}")
    full = client.get(reverse("target_images", args=[target.pk]))

    assert [q.level for q in near.context["quota"]] == ["warn"]
    assert '<span class="badge quota-warn">Near the quota</span> 4 more' in near.content.decode()
    assert [q.level for q in full.context["quota"]] == ["full"]
    assert '<span class="badge quota-full">At the quota</span>' in full.content.decode()


def test_a_requester_sees_only_their_own_images_but_the_whole_quota(
    client: Client, requester: Any, other_requester: Any, target: AwsTarget, rolled_out: Any
) -> None:
    mine, theirs = rolled_out(), rolled_out(by=other_requester)
    client.force_login(requester)

    response = client.get(reverse("target_images", args=[target.pk]))

    assert [row.request.pk for row in response.context["rows"]] == [mine.pk]
    assert theirs.reference not in response.content.decode()
    assert [(q.region, q.held) for q in response.context["quota"]] == [("us-east-1", 2)]
    assert "Only your own requests are listed" in response.content.decode()


def test_an_inactive_target_is_shown_only_to_those_who_see_every_request(
    client: Client, requester: Any, auditor: Any, target: AwsTarget
) -> None:
    AwsTarget.objects.filter(pk=target.pk).update(is_active=False)
    url = reverse("target_images", args=[target.pk])

    client.force_login(requester)
    hidden = client.get(url)
    client.force_login(auditor)
    shown = client.get(url)

    assert hidden.status_code == 404
    assert shown.status_code == 200
    assert "This target is inactive" in shown.content.decode()


def test_a_targets_images_page_in_pages_newest_first(
    client: Client, auditor: Any, target: AwsTarget, rolled_out: Any
) -> None:
    made = [rolled_out() for _ in range(TARGET_PAGE_SIZE + 1)]
    client.force_login(auditor)
    url = reverse("target_images", args=[target.pk])

    first = client.get(url).context["page"]
    second = client.get(url, {"after": first.next_cursor}).context["page"]

    assert [r.pk for r in first.object_list + second.object_list] == [r.pk for r in reversed(made)]


# --- the same few queries whatever the number of steps and requests --------------------------------


def add_shares(request: ImportRequest, count: int) -> None:
    start = request.steps.count()
    RolloutStep.objects.bulk_create(
        RolloutStep(
            request=request,
            position=start + n + 1,
            kind="share",
            region="us-east-1",
            parameters={"SharedAccountId": f"{n:012d}", "AllowCopyImage": True},
            state=StepState.FAILED,
            failure=FAILURE,
        )
        for n in range(count)
    )


def count_queries(client: Client, url: str, django_assert_max_num_queries: Any, limit: int) -> int:
    with django_assert_max_num_queries(limit) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_the_request_page_and_its_status_read_the_steps_in_one_query(
    client: Client, other_approver: Any, rolled_out: Any, django_assert_max_num_queries: Any, settings: Any
) -> None:
    settings.DEBUG = True
    # Both with a failed step, which the approver may retry: the target's policy is read once.
    few, many = rolled_out({4: StepState.FAILED}), rolled_out()
    # Many steps, and their events push the image's (with AWS's update) far back in the history.
    image_available(many, update=True)
    add_shares(many, 10)
    with transaction.atomic():
        for n in range(HISTORY_PAGE_SIZE + 10):
            append_event(
                many,
                action="step_retry",
                actor=None,
                from_state="available",
                to_state="available",
                data={"step": 5 + n % 10},
            )
    client.force_login(other_approver)
    views = ("request_detail", "request_status", "request_rollout")

    counts = {
        (name, view): count_queries(client, reverse(view, args=[request.pk]), django_assert_max_num_queries, 8)
        for name, request in (("few", few), ("many", many))
        for view in views
    }

    assert [counts["few", view] for view in views] == [counts["many", view] for view in views]
    page = page_of(client, many)
    assert page.count("Retry this step") == 10
    assert "AWS has an update for this image" in page


def test_the_targets_pages_and_the_filtered_list_run_the_same_few_queries_at_any_size(
    client: Client, auditor: Any, target: AwsTarget, rolled_out: Any, django_assert_max_num_queries: Any, settings: Any
) -> None:
    settings.DEBUG = True
    client.force_login(auditor)
    urls = [
        reverse("target_list"),
        reverse("target_images", args=[target.pk]),
        reverse("request_list") + "?rollout=open",
        reverse("dashboard"),
    ]
    image_available(rolled_out({1: StepState.DONE}), update=True)
    # The dashboard's charts and the list's target choices read afresh each time, whatever an
    # earlier view left in the cache.
    cache.delete_many([charts.CACHE_KEY, filters.TARGET_CHOICES_KEY])
    small = [count_queries(client, url, django_assert_max_num_queries, 8) for url in urls]

    for _ in range(9):
        request = rolled_out({1: StepState.DONE, 2: StepState.DONE}, rollout="incomplete")
        add_shares(request, 3)
        image_available(request, update=False)
    cache.delete_many([charts.CACHE_KEY, filters.TARGET_CHOICES_KEY])
    large = [count_queries(client, url, django_assert_max_num_queries, 8) for url in urls]

    assert large == small
