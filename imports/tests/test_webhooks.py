"""Webhooks and chat notifications (imports.webhooks): who is told, what is sent and signed, the
allowed destinations, retries, and that the workflow never waits for a receiver.

Receivers are real HTTP servers on 127.0.0.1 in a thread; loopback is allowed as development
allows it. Time is driven by the `now` each attempt is given, from the delivery's next attempt.
"""

import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from imports import endpoints, webhooks, workflow
from imports.models import AwsTarget, ImportRequest, WebhookAttempt, WebhookDelivery, WebhookSubscription
from imports.tests.conftest import Receiver

Outcome = WebhookAttempt.Outcome


@pytest.fixture(autouse=True)
def _development_destinations(settings: Any) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = True
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = True
    settings.PORTAL_WEBHOOK_HOSTS = []
    settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.PORTAL_BASE_URL = "https://byol.example.com"


def subscribe(url: str, *, kind: str = "generic", events: tuple[str, ...] = ("submitted", "approved"), **whose: Any):
    return WebhookSubscription.objects.create(name="hook", url=url, kind=kind, events=list(events), **whose)


@pytest.fixture
def submitted(make_request: Callable[..., ImportRequest], django_capture_on_commit_callbacks: Any) -> ImportRequest:
    """A request submitted with its after-commit work run, as it runs outside a test transaction."""
    with django_capture_on_commit_callbacks(execute=True):
        return make_request(checked=False)


def announce_submitted(request: ImportRequest) -> None:
    webhooks.announce(request, request.events.get(action="submit"), "submitted")


def only_delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.select_related("subscription").get()


# --- signing -----------------------------------------------------------------------------------


def test_a_receiver_verifies_the_signature_and_a_changed_body_fails(
    receiver: Receiver,
    requester: Any,
    make_request: Callable[..., ImportRequest],
    django_capture_on_commit_callbacks: Any,
) -> None:
    subscription = subscribe(receiver.url, owner=requester)
    with django_capture_on_commit_callbacks(execute=True):
        request = make_request()
    delivery = only_delivery()

    assert webhooks.deliver(delivery.pk) == Outcome.DELIVERED

    headers, body = receiver.received[0]
    signature = headers[webhooks.SIGNATURE_HEADER]
    assert webhooks.verify_signature(subscription.secret, signature, body)
    assert not webhooks.verify_signature(subscription.secret, signature, body.replace(b"submitted", b"approved"))
    assert not webhooks.verify_signature("whsec_someone-else", signature, body)
    assert not webhooks.verify_signature(subscription.secret, signature, body, now=time.time() + 3600)
    assert headers[webhooks.EVENT_ID_HEADER] == str(delivery.uid)
    payload = json.loads(body)
    assert payload["type"] == "request.submitted"
    assert payload["request"]["reference"] == request.reference
    assert payload["request"]["url"] == f"https://byol.example.com/requests/{request.pk}/"
    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempts, delivery.next_attempt_at) == ("delivered", 1, None)
    attempt = delivery.log.get()
    assert (attempt.status_code, attempt.outcome, attempt.error) == (200, Outcome.DELIVERED, "")


def test_the_secret_is_never_logged(
    receiver: Receiver, requester: Any, submitted: ImportRequest, caplog: pytest.LogCaptureFixture
) -> None:
    subscription = subscribe(receiver.url, owner=requester)
    with caplog.at_level("DEBUG"):
        announce_submitted(submitted)
        webhooks.deliver(only_delivery().pk)

    assert receiver.received
    assert subscription.secret not in caplog.text
    assert receiver.url not in caplog.text


# --- allowed destinations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1:9/x", endpoints.MSG_WEBHOOK_PRIVATE.format(host="127.0.0.1", address="127.0.0.1")),
        (
            "https://169.254.169.254/latest",
            endpoints.MSG_WEBHOOK_PRIVATE.format(host="169.254.169.254", address="169.254.169.254"),
        ),
        ("https://10.1.2.3/x", endpoints.MSG_WEBHOOK_PRIVATE.format(host="10.1.2.3", address="10.1.2.3")),
        ("http://93.184.215.14/x", endpoints.MSG_WEBHOOK_SCHEME),
        ("https://user:pw@93.184.215.14/x", endpoints.MSG_USERINFO),
        ("ftp://93.184.215.14/x", endpoints.MSG_WEBHOOK_NOT_A_URL),
    ],
)
def test_a_webhook_is_refused_at_save_outside_the_allowed_destinations(
    settings: Any, requester: Any, url: str, message: str
) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = False
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    subscription = WebhookSubscription(name="hook", url=url, owner=requester, events=["approved"])

    with pytest.raises(ValidationError) as refused:
        subscription.full_clean()

    assert message in refused.value.message_dict["url"]


def test_a_public_https_receiver_is_allowed_and_the_host_list_narrows_it(settings: Any, requester: Any) -> None:
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    public = WebhookSubscription(name="hook", url="https://93.184.215.14/x", owner=requester, events=["approved"])
    public.full_clean()

    settings.PORTAL_WEBHOOK_HOSTS = ["hooks.slack.com", ".webhook.office.com"]
    with pytest.raises(ValidationError) as refused:
        public.full_clean()

    assert endpoints.MSG_WEBHOOK_HOST.format(host="93.184.215.14") in refused.value.message_dict["url"]


def test_a_host_that_now_resolves_to_a_private_address_is_not_sent_to(
    receiver: Receiver, settings: Any, requester: Any, submitted: ImportRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(endpoints, "resolve_host", lambda host, port: ["93.184.215.14"])
    subscription = subscribe(receiver.url.replace("127.0.0.1", "hooks.example.com"), owner=requester)
    subscription.full_clean()
    announce_submitted(submitted)
    # DNS rebinding: the name now points inside the network.
    monkeypatch.setattr(endpoints, "resolve_host", lambda host, port: ["127.0.0.1"])

    assert webhooks.deliver(only_delivery().pk) == Outcome.STOPPED

    delivery = only_delivery()
    assert (delivery.outcome, delivery.next_attempt_at) == ("stopped", None)
    attempt = delivery.log.get()
    assert attempt.error == endpoints.MSG_WEBHOOK_PRIVATE.format(host="hooks.example.com", address="127.0.0.1")
    assert receiver.received == []


# --- who is told -------------------------------------------------------------------------------


def test_only_subscriptions_whose_target_or_owner_may_see_the_request_are_told(
    receiver: Receiver,
    requester: Any,
    other_requester: Any,
    approver: Any,
    target: AwsTarget,
    make_request: Callable[..., ImportRequest],
    django_capture_on_commit_callbacks: Any,
    published: list[tuple[str, tuple[Any, ...]]],
) -> None:
    other_target = AwsTarget.objects.create(name="Other", account_id="111111111111", region="eu-west-1")
    told = {
        subscribe(receiver.url, owner=requester).pk,
        subscribe(receiver.url, owner=approver).pk,
        subscribe(receiver.url, target=target).pk,
    }
    subscribe(receiver.url, owner=other_requester)
    subscribe(receiver.url, target=other_target)
    subscribe(receiver.url, owner=approver, events=("approved",))
    WebhookSubscription.objects.filter(pk=subscribe(receiver.url, target=target).pk).update(is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        make_request()

    deliveries = WebhookDelivery.objects.all()
    assert {d.subscription_id for d in deliveries} == told
    assert {d.event_name for d in deliveries} == {"submitted"}
    assert sorted(args for name, args in published if name == "deliver_webhook") == sorted((d.pk,) for d in deliveries)


def test_a_subscription_switched_off_before_its_attempt_is_stopped_unsent(
    receiver: Receiver, requester: Any, submitted: ImportRequest
) -> None:
    subscription = subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(is_active=False)

    assert webhooks.deliver(only_delivery().pk) == Outcome.STOPPED

    assert only_delivery().log.get().error == webhooks.MSG_INACTIVE
    assert receiver.received == []


# --- retries -----------------------------------------------------------------------------------


def attempt_until_settled(delivery: WebhookDelivery, *, before_each: Callable[[Any], None] = lambda now: None) -> str:
    """Each attempt at the time its delivery is next due, as beat would send it."""
    while True:
        delivery.refresh_from_db()
        now = delivery.next_attempt_at
        before_each(now)
        outcome = webhooks.deliver(delivery.pk, now=now)
        if outcome != Outcome.RETRY:
            return outcome


def test_a_receiver_down_for_an_hour_gets_the_delivery_once_it_is_back(
    receiver: Receiver, settings: Any, requester: Any, submitted: ImportRequest
) -> None:
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    delivery = only_delivery()
    back_at = delivery.next_attempt_at + timedelta(hours=1)

    def outage(now: Any) -> None:
        receiver.status = 503 if now < back_at else 200

    assert attempt_until_settled(delivery, before_each=outage) == Outcome.DELIVERED

    delivery.refresh_from_db()
    assert delivery.outcome == "delivered"
    attempts = list(delivery.log.order_by("started_at"))
    assert [a.status_code for a in attempts] == [503] * (len(attempts) - 1) + [200]
    assert all(a.outcome == Outcome.RETRY and a.next_attempt_at for a in attempts[:-1])
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    base, cap = settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS, settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS
    for number, gap in enumerate(gaps, start=1):
        ceiling = min(cap, base * 2 ** (number - 1))
        assert ceiling / 2 <= gap <= ceiling
    assert attempts[-1].started_at - back_at <= timedelta(seconds=cap)
    assert len(receiver.received) == len(attempts)
    assert len({headers[webhooks.EVENT_ID_HEADER] for headers, _ in receiver.received}) == 1


def test_a_receiver_that_never_answers_well_is_given_up_after_the_retry_hours(
    receiver: Receiver, settings: Any, requester: Any, submitted: ImportRequest
) -> None:
    receiver.status = 500
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    delivery = only_delivery()

    assert attempt_until_settled(delivery) == Outcome.FAILED

    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.next_attempt_at) == ("failed", None)
    last = delivery.log.first()
    assert last.outcome == Outcome.FAILED
    assert last.started_at <= delivery.created_at + timedelta(hours=settings.PORTAL_WEBHOOK_RETRY_HOURS)
    assert delivery.attempts == delivery.log.count() > 20


def test_a_receiver_that_is_not_listening_is_tried_again(
    settings: Any, requester: Any, submitted: ImportRequest
) -> None:
    subscribe("http://127.0.0.1:9/closed", owner=requester)
    announce_submitted(submitted)

    assert webhooks.deliver(only_delivery().pk) == Outcome.RETRY

    delivery = only_delivery()
    attempt = delivery.log.get()
    assert attempt.status_code is None
    assert "ConnectionRefusedError" in attempt.error
    assert delivery.next_attempt_at == attempt.next_attempt_at


@pytest.mark.parametrize("status", [410, 404, 400, 302])
def test_a_refusal_or_a_redirect_stops_the_delivery(
    receiver: Receiver, requester: Any, submitted: ImportRequest, status: int
) -> None:
    receiver.status = status
    receiver.location = receiver.url + "&moved=1" if status == 302 else ""
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)

    assert webhooks.deliver(only_delivery().pk) == Outcome.STOPPED

    delivery = only_delivery()
    assert (delivery.outcome, delivery.next_attempt_at, delivery.attempts) == ("stopped", None, 1)
    assert delivery.log.get().status_code == status
    assert len(receiver.received) == 1
    assert webhooks.deliver(delivery.pk) is None


@pytest.mark.parametrize("status", [408, 429, 502])
def test_a_passing_refusal_is_tried_again(
    receiver: Receiver, requester: Any, submitted: ImportRequest, status: int
) -> None:
    receiver.status = status
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)

    assert webhooks.deliver(only_delivery().pk) == Outcome.RETRY

    assert only_delivery().outcome == "pending"


# --- Retry-After -------------------------------------------------------------------------------


def answered_with(receiver: Receiver, requester: Any, submitted: ImportRequest, status: int, retry_after: str):
    """One attempt at a delivery whose receiver answers `status` with this Retry-After."""
    receiver.status = status
    receiver.headers = {"Retry-After": retry_after}
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    outcome = webhooks.deliver(only_delivery().pk)
    delivery = only_delivery()
    return outcome, delivery, delivery.log.get()


def asked_from_the_answer(attempt: WebhookAttempt, seconds: int) -> Any:
    return attempt.started_at + timedelta(milliseconds=attempt.duration_ms, seconds=seconds)


@pytest.mark.parametrize("status", [429, 503])
def test_a_receiver_that_asks_to_wait_is_not_sent_to_again_before_it_asked(
    receiver: Receiver,
    requester: Any,
    submitted: ImportRequest,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    caplog.set_level("INFO", logger="imports.webhooks")

    outcome, delivery, attempt = answered_with(receiver, requester, submitted, status, "600")

    assert outcome == Outcome.RETRY
    # The backoff alone would wait 15-30 s after a first attempt.
    assert attempt.next_attempt_at == asked_from_the_answer(attempt, 600)
    assert (delivery.outcome, delivery.next_attempt_at) == ("pending", attempt.next_attempt_at)
    assert f"attempt 1: retry {status}, Retry-After asked 600 s" in caplog.text


def test_a_retry_after_date_is_waited_for(receiver: Receiver, requester: Any, submitted: ImportRequest) -> None:
    asked_at = (timezone.now() + timedelta(minutes=15)).replace(microsecond=0)

    outcome, delivery, _ = answered_with(receiver, requester, submitted, 429, format_datetime(asked_at, usegmt=True))

    assert outcome == Outcome.RETRY
    # Rounded up to the next whole second from the moment the answer came.
    assert asked_at <= delivery.next_attempt_at <= asked_at + timedelta(seconds=2)


def test_a_receiver_cannot_park_a_delivery_for_longer_than_the_longest_backoff(
    receiver: Receiver, settings: Any, requester: Any, submitted: ImportRequest
) -> None:
    settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS = 1800

    outcome, delivery, attempt = answered_with(receiver, requester, submitted, 503, "86400")

    assert outcome == Outcome.RETRY
    assert delivery.next_attempt_at == asked_from_the_answer(attempt, 1800)


def test_a_wait_asked_past_the_retry_hours_gives_the_delivery_up(
    receiver: Receiver, settings: Any, requester: Any, submitted: ImportRequest
) -> None:
    receiver.status = 429
    receiver.headers = {"Retry-After": "1200"}
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    WebhookDelivery.objects.update(
        created_at=timezone.now() - timedelta(hours=settings.PORTAL_WEBHOOK_RETRY_HOURS, minutes=-10)
    )

    assert webhooks.deliver(only_delivery().pk) == Outcome.FAILED

    delivery = only_delivery()
    assert (delivery.outcome, delivery.next_attempt_at) == ("failed", None)
    assert delivery.log.get().status_code == 429


@pytest.mark.parametrize("retry_after", ["soon", "-5", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_malformed_negative_or_past_retry_after_leaves_the_backoff(
    receiver: Receiver, requester: Any, submitted: ImportRequest, retry_after: str
) -> None:
    outcome, delivery, attempt = answered_with(receiver, requester, submitted, 429, retry_after)

    assert outcome == Outcome.RETRY
    assert timedelta(seconds=15) <= delivery.next_attempt_at - attempt.started_at <= timedelta(seconds=30)


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [
        (429, "600", 600),
        (503, "0", 0),
        (429, "soon", None),
        (429, "-5", None),
        (503, "", None),
        # Only a 429 or a 503 says when to come back.
        (500, "600", None),
        (408, "600", None),
    ],
)
def test_post_reads_the_wait_a_429_or_503_asks_for(
    receiver: Receiver, status: int, retry_after: str, seconds: int | None
) -> None:
    receiver.status = status
    receiver.headers = {"Retry-After": retry_after}

    answer = webhooks.post(receiver.url, b"{}", {}, timeout=1)

    assert answer == webhooks.Answer(status=status, retry_after=seconds)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 120 ", 120),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 91),
        # RFC 850 and asctime dates, which a recipient must still accept (RFC 9110 §5.6.7).
        ("Wednesday, 21-Oct-26 07:28:00 GMT", 91),
        ("Wed Oct 21 07:28:00 2026", 91),
        ("Wed, 21 Oct 2026 07:28:00 -0000", 91),
        ("Wed, 21 Oct 2026 07:26:00 GMT", None),
        ("12e3", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date(value: str | None, seconds: int | None) -> None:
    now = datetime(2026, 10, 21, 7, 26, 29, 500000, tzinfo=UTC).timestamp()

    assert webhooks.retry_after_seconds(value, now=now) == seconds


def test_beat_sends_only_what_is_due(
    receiver: Receiver, requester: Any, submitted: ImportRequest, published: list[tuple[str, tuple[Any, ...]]]
) -> None:
    receiver.status = 503
    subscribe(receiver.url, owner=requester)
    announce_submitted(submitted)
    delivery = only_delivery()
    webhooks.deliver(delivery.pk)
    delivery.refresh_from_db()
    published.clear()

    assert webhooks.send_due(now=delivery.next_attempt_at - timedelta(seconds=1)) == 0
    assert webhooks.send_due(now=delivery.next_attempt_at) == 1
    assert published == [("deliver_webhook", (delivery.pk,))]


# --- never blocking the workflow ---------------------------------------------------------------


def test_a_decision_commits_at_once_while_the_receiver_hangs(
    receiver: Receiver,
    approver: Any,
    submitted: ImportRequest,
    django_capture_on_commit_callbacks: Any,
    published: list[tuple[str, tuple[Any, ...]]],
) -> None:
    from imports.tests.conftest import pass_preflight

    receiver.sleep = 3.0
    subscribe(receiver.url, target=submitted.target)
    request = pass_preflight(submitted)

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        approved = workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
    took = time.monotonic() - started

    assert approved.state == ImportRequest.State.APPROVED
    assert took < 1.0
    request.refresh_from_db()
    assert request.state == ImportRequest.State.APPROVED
    delivery = WebhookDelivery.objects.get(event_name="approved")
    assert ("deliver_webhook", (delivery.pk,)) in published
    # The worker's attempt gives up on the hanging receiver after the timeout and tries later.
    started = time.monotonic()
    assert webhooks.deliver(delivery.pk) == Outcome.RETRY
    assert time.monotonic() - started < 2.5
    assert "timed out" in delivery.log.get().error


def test_a_failing_fan_out_neither_fails_the_decision_nor_stops_the_email(
    approver: Any,
    submitted: ImportRequest,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imports.tests.conftest import pass_preflight

    def broken(*args: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(webhooks, "_deliveries_for", broken)
    request = pass_preflight(submitted)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        workflow.reject_request(request_id=request.pk, actor=approver, expected_version=request.version, comment="no")

    request.refresh_from_db()
    assert request.state == ImportRequest.State.REJECTED
    assert len(mail.outbox) == 1


# --- chat formats ------------------------------------------------------------------------------


def test_slack_gets_an_incoming_webhook_message_with_a_link_to_the_request(
    receiver: Receiver, requester: Any, submitted: ImportRequest
) -> None:
    subscribe(receiver.url, owner=requester, kind="slack")
    announce_submitted(submitted)

    assert webhooks.deliver(only_delivery().pk) == Outcome.DELIVERED

    message = json.loads(receiver.received[0][1])
    assert set(message) == {"text", "blocks"}
    assert (
        message["text"]
        == f"{submitted.reference} was submitted and waits for a decision by rita: {submitted.image_name}"
    )
    link = message["blocks"][0]["text"]
    assert link == {
        "type": "mrkdwn",
        "text": f"<https://byol.example.com/requests/{submitted.pk}/|{message['text']}>",
    }
    assert "*State:* Submitted" in message["blocks"][1]["elements"][0]["text"]
    assert all(block["type"] in ("section", "context") for block in message["blocks"])


def test_teams_gets_an_adaptive_card_that_only_opens_the_request(
    receiver: Receiver, target: AwsTarget, submitted: ImportRequest
) -> None:
    subscribe(receiver.url, target=target, kind="teams")
    announce_submitted(submitted)

    assert webhooks.deliver(only_delivery().pk) == Outcome.DELIVERED

    message = json.loads(receiver.received[0][1])
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert {"title": "Reference", "value": submitted.reference} in card["body"][1]["facts"]
    assert {"title": "State", "value": "Submitted"} in card["body"][1]["facts"]
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in the portal",
            "url": f"https://byol.example.com/requests/{submitted.pk}/",
        }
    ]


# --- a person's own webhooks page ----------------------------------------------------------------


def test_a_person_makes_a_webhook_sees_its_secret_once_and_its_deliveries(
    client: Any, requester: Any, receiver: Receiver, submitted: ImportRequest
) -> None:
    client.force_login(requester)
    url = reverse("my_webhooks")

    made = client.post(url, {"name": "ci", "url": receiver.url, "kind": "generic", "events": ["submitted", "approved"]})

    assert made.status_code == 200
    webhook = WebhookSubscription.objects.get()
    assert (webhook.owner, webhook.target, webhook.events) == (requester, None, ["submitted", "approved"])
    assert webhook.secret in made.content.decode()
    # Shown once: the list shows where it posts, never the secret or the full URL.
    listed = client.get(url).content.decode()
    assert webhook.secret not in listed
    assert webhook.destination in listed

    announce_submitted(submitted)
    webhooks.deliver(only_delivery().pk)
    listed = client.get(url).content.decode()
    assert submitted.reference in listed
    assert "Delivered" in listed


def test_a_webhook_outside_the_allowed_destinations_or_without_events_is_refused_with_a_message(
    client: Any, requester: Any, settings: Any
) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = False
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(requester)

    refused = client.post(
        reverse("my_webhooks"), {"name": "x", "url": "https://10.1.2.3/hook", "kind": "generic", "events": ["approved"]}
    )
    assert refused.status_code == 400
    assert escape(endpoints.MSG_WEBHOOK_PRIVATE.format(host="10.1.2.3", address="10.1.2.3")) in refused.content.decode()
    refused = client.post(reverse("my_webhooks"), {"name": "x", "url": "https://93.184.215.14/hook", "kind": "slack"})
    assert refused.status_code == 400
    assert not WebhookSubscription.objects.exists()


def test_only_its_owner_deletes_a_webhook(client: Any, requester: Any, other_requester: Any) -> None:
    webhook = subscribe("https://93.184.215.14/hook", owner=requester)
    client.force_login(other_requester)
    assert client.post(reverse("delete_webhook", args=[webhook.pk])).status_code == 404
    assert "You have no webhooks." in client.get(reverse("my_webhooks")).content.decode()

    client.force_login(requester)
    deleted = client.post(reverse("delete_webhook", args=[webhook.pk]), follow=True)
    assert "The webhook hook is deleted" in deleted.content.decode()
    assert not WebhookSubscription.objects.exists()


# --- the admin -------------------------------------------------------------------------------------


def test_an_admin_adds_a_targets_webhook_and_sees_its_secret_once(
    client: Any, superuser: Any, target: AwsTarget
) -> None:
    client.force_login(superuser)
    added = client.post(
        reverse("admin:imports_webhooksubscription_add"),
        {
            "name": "ops",
            "target": target.pk,
            "url": "https://93.184.215.14/hooks/portal-7f3a",
            "kind": "generic",
            "events": ["approved", "import_failed"],
            "is_active": "on",
        },
    )

    assert added.status_code == 200
    webhook = WebhookSubscription.objects.get()
    assert (webhook.target, webhook.owner, webhook.events) == (target, None, ["approved", "import_failed"])
    assert webhook.secret in added.content.decode()
    listed = client.get(reverse("admin:imports_webhooksubscription_changelist")).content.decode()
    assert webhook.secret not in listed
    assert "portal-7f3a" not in listed
    assert "https://93.184.215.14" in listed
    changed = client.get(reverse("admin:imports_webhooksubscription_change", args=[webhook.pk])).content.decode()
    assert webhook.secret not in changed


def test_an_admin_is_refused_a_webhook_outside_the_allowed_destinations(
    client: Any, superuser: Any, target: AwsTarget, settings: Any
) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = False
    settings.PORTAL_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(superuser)
    data = {"name": "x", "target": target.pk, "url": "https://10.1.2.3/h", "kind": "slack", "events": ["approved"]}

    refused = client.post(reverse("admin:imports_webhooksubscription_add"), data)

    assert refused.status_code == 200
    assert escape(endpoints.MSG_WEBHOOK_PRIVATE.format(host="10.1.2.3", address="10.1.2.3")) in refused.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_an_admin_switches_a_persons_webhook_off_without_seeing_its_url(
    client: Any, superuser: Any, requester: Any
) -> None:
    webhook = subscribe("https://93.184.215.14/services/T000/B000/XXXXsecretXXXX", kind="slack", owner=requester)
    client.force_login(superuser)
    url = reverse("admin:imports_webhooksubscription_change", args=[webhook.pk])

    page = client.get(url).content.decode()
    assert "XXXXsecretXXXX" not in page
    assert "https://93.184.215.14" in page
    switched = client.post(url, {"is_active": ""})

    assert switched.status_code == 302
    webhook.refresh_from_db()
    assert webhook.is_active is False
    assert webhook.url.endswith("XXXXsecretXXXX")
