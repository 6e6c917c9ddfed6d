"""Webhooks and chat notifications: a request's events posted to the URLs subscribed to them.

After the change has committed, `announce` writes one delivery per subscription that wants the
event and whose target or owner may see the request (rows, so nothing is lost if the broker is
down), and queues them; a worker posts each (`deliver`) with a short timeout, signed, and on a
timeout, a connection error, 408, 429 or 5xx tries again with backoff and jitter for
PORTAL_WEBHOOK_RETRY_HOURS, but not before the time a 429 or 503 asks in Retry-After (waiting
at most PORTAL_WEBHOOK_RETRY_MAX_SECONDS for it); any other answer but 2xx (a redirect included:
never followed) stops it. Every attempt is logged (WebhookAttempt). Nothing here runs inside the
workflow's transaction, and no click waits for a receiver.

Signature (every kind; Slack and Teams ignore it): X-Portal-Signature: t=<unix>,v1=<hex>, the
hex HMAC-SHA256 of "<t>.<body>" under the subscription's secret (`verify_signature`).
"""

import hashlib
import hmac
import http.client
import json
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from imports import dispatch, endpoints, selectors
from imports.models import (
    ImportRequest,
    RequestEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from imports.retry import backoff

logger = logging.getLogger(__name__)

Outcome = WebhookAttempt.Outcome
Kind = WebhookSubscription.Kind
SIGNATURE_HEADER = "X-Portal-Signature"
EVENT_ID_HEADER = "X-Portal-Event-Id"
# A receiver should refuse a signature older than this (a replayed delivery).
SIGNATURE_TOLERANCE_SECONDS = 300
RETRY_STATUSES = frozenset({408, 429})
# The answers whose Retry-After says when to come back (RFC 9110 §15.6.4, RFC 6585 §4).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# How long a claimed attempt holds its delivery before the sweeper may send it again (a worker
# that died mid-attempt): longer than any attempt can take.
CLAIM_SECONDS = 120

MSG_INACTIVE = "The subscription was switched off or can no longer see this request."
MSG_REDIRECT = "The receiver answered with a redirect (to {location}), which is never followed."

# How each kind of event reads in a chat message: "<reference> <this>".
SAID = {
    WebhookEvent.SUBMITTED: "was submitted and waits for a decision",
    WebhookEvent.APPROVED: "was approved",
    WebhookEvent.REJECTED: "was rejected",
    WebhookEvent.CHANGES_REQUESTED: "was sent back for changes",
    WebhookEvent.IMPORT_AVAILABLE: "was imported: the image is available",
    WebhookEvent.IMPORT_FAILED: "failed to import",
    WebhookEvent.IMPORT_STALLED: "has been importing for far longer than it should",
    WebhookEvent.ROLLOUT_FINISHED: "finished its rollout",
    WebhookEvent.OVERDUE: "waits for a decision past its time",
}


# --- what is sent ------------------------------------------------------------------------------


def request_url(request: ImportRequest) -> str:
    return settings.PORTAL_BASE_URL + reverse("request_detail", args=[request.pk])


def generic_payload(request: ImportRequest, event: RequestEvent, name: str) -> dict[str, Any]:
    return {
        "type": f"request.{name}",
        "occurred_at": event.created_at.isoformat(),
        "request": {
            "id": request.pk,
            "reference": request.reference,
            "state": request.state,
            "version": request.version,
            "image_name": request.image_name,
            "target": {"id": request.target_id, "name": request.target.name, "region": request.target.region},
            "url": request_url(request),
        },
        "event": {
            "action": event.action,
            "actor": event.actor_name,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "comment": event.comment,
        },
    }


def _summary(request: ImportRequest, event: RequestEvent, name: str) -> str:
    said = SAID[WebhookEvent(name)]
    if name == WebhookEvent.ROLLOUT_FINISHED and request.rollout == "incomplete":
        said = "finished its rollout with failed steps"
    by = f" by {event.actor_name}" if event.actor_id else ""
    return f"{request.reference} {said}{by}: {request.image_name}"


def _slack_escaped(text: str) -> str:
    # https://api.slack.com/reference/surfaces/formatting#escaping
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(request: ImportRequest, event: RequestEvent, name: str) -> dict[str, Any]:
    """An incoming webhook's message: `text` for notifications, blocks for the channel; the link
    opens the request in the portal (deciding stays there, behind log-in).
    https://api.slack.com/messaging/webhooks"""
    summary = _summary(request, event, name)
    facts = f"*State:* {request.get_state_display()}  *Target:* {_slack_escaped(request.target.name)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"<{request_url(request)}|{_slack_escaped(summary)}>"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
    ]
    if event.comment:
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": event.comment[:2900]}})
    return {"text": summary, "blocks": blocks}


def teams_payload(request: ImportRequest, event: RequestEvent, name: str) -> dict[str, Any]:
    """An Adaptive Card in a message, as Teams' incoming webhooks (Workflows) take it, with one
    Action.OpenUrl to the request: no action that decides.
    https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using"""
    facts = [
        {"title": "Reference", "value": request.reference},
        {"title": "State", "value": request.get_state_display()},
        {"title": "Target", "value": request.target.name},
    ]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _summary(request, event, name), "wrap": True, "weight": "Bolder"},
        {"type": "FactSet", "facts": facts},
    ]
    if event.comment:
        body.append({"type": "TextBlock", "text": event.comment[:2000], "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open in the portal", "url": request_url(request)}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


PAYLOADS: dict[str, Callable[[ImportRequest, RequestEvent, str], dict[str, Any]]] = {
    Kind.GENERIC: generic_payload,
    Kind.SLACK: slack_payload,
    Kind.TEAMS: teams_payload,
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does: the header's timestamp is recent and its MAC is that of the body."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}")


# --- who is told -------------------------------------------------------------------------------


def may_see(subscription: WebhookSubscription, request: ImportRequest) -> bool:
    if subscription.target_id is not None:
        return subscription.target_id == request.target_id
    owner = subscription.owner
    return owner.is_active and selectors.visible_requests(owner).filter(pk=request.pk).exists()


def subscribers(request: ImportRequest, name: str) -> list[WebhookSubscription]:
    candidates = WebhookSubscription.objects.filter(is_active=True).filter(
        Q(target_id=request.target_id) | Q(owner__isnull=False)
    )
    return [s for s in candidates.select_related("owner") if name in s.events and may_see(s, request)]


def announce(request: ImportRequest, event: RequestEvent, name: str) -> list[int]:
    """Called after commit: a delivery for each subscriber, queued. Never raises: a failure here
    is logged and must not keep the email (or anything after it) from going out."""
    try:
        made = _deliveries_for(request, event, name)
    except Exception:
        logger.exception("%s: could not record the webhook deliveries of %s", request.reference, name)
        return []
    for delivery_id in made:
        dispatch.publish("deliver_webhook", (delivery_id,))
    return made


def _deliveries_for(request: ImportRequest, event: RequestEvent, name: str) -> list[int]:
    made = []
    now = timezone.now()
    for subscription in subscribers(request, name):
        body = json.dumps(PAYLOADS[subscription.kind](request, event, name), separators=(",", ":"))
        delivery, created = WebhookDelivery.objects.get_or_create(
            subscription=subscription,
            event=event,
            event_name=name,
            defaults={"request": request, "body": body, "next_attempt_at": now},
        )
        if created:
            made.append(delivery.pk)
    return made


# --- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a receiver answered; `retry_after` is the seconds a 429 or 503 asked the sender to
    wait (Retry-After), or None when it asked nothing usable."""

    status: int | None = None
    error: str = ""
    location: str = ""
    retry_after: int | None = None


def retry_after_seconds(value: str | None, *, now: float) -> int | None:
    """The seconds a Retry-After header asks to wait from `now` (a Unix time): delta-seconds or
    an HTTP-date. None when it is missing, malformed or in the past.
    https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3"""
    value = (value or "").strip()
    if re.fullmatch(r"[0-9]+", value):
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    # An HTTP-date is always GMT; a date with "-0000" comes back naive and means UTC too.
    seconds = math.ceil(when.replace(tzinfo=when.tzinfo or UTC).timestamp() - now)
    return seconds if seconds >= 0 else None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever the name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Answer:
    """POST once to a destination checked now, to the address checked; no redirect followed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = endpoints.resolve_host(host, port)
    except OSError as exc:
        return Answer(error=f"could not resolve {host}: {exc}")
    problem = endpoints.webhook_problem(url, resolve=lambda _host, _port: addresses)
    if problem:
        raise DestinationRefused(problem)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address=addresses[0], timeout=timeout)
    path = parts.path or "/"
    try:
        connection.request("POST", f"{path}?{parts.query}" if parts.query else path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(4096)
        asked = response.getheader("Retry-After") if response.status in RETRY_AFTER_STATUSES else None
        return Answer(
            status=response.status,
            location=response.getheader("Location") or "",
            retry_after=retry_after_seconds(asked, now=time.time()),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        connection.close()


class DestinationRefused(Exception):
    """The URL is no longer an allowed destination (its host now resolves to a private address)."""


def deliver(delivery_id: int, *, now: datetime | None = None) -> str | None:
    """One attempt at a due delivery; its outcome, or None when it is not due (another worker
    has it, or it is settled)."""
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, outcome=WebhookDelivery.Outcome.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS), attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("subscription__owner", "request__target").get(pk=delivery_id)
    if not delivery.subscription.is_active or not may_see(delivery.subscription, delivery.request):
        return _settle(delivery, started=now, answer=Answer(error=MSG_INACTIVE), duration_ms=0, outcome=Outcome.STOPPED)
    started = time.monotonic()
    try:
        answer = post(
            delivery.subscription.url,
            delivery.body.encode(),
            _headers(delivery, timestamp=int(now.timestamp())),
            timeout=settings.PORTAL_WEBHOOK_TIMEOUT_SECONDS,
        )
    except DestinationRefused as refused:
        answer, outcome = Answer(error=str(refused)), Outcome.STOPPED
    else:
        outcome = _outcome_of(answer)
    duration_ms = round((time.monotonic() - started) * 1000)
    return _settle(delivery, started=now, answer=answer, duration_ms=duration_ms, outcome=outcome)


def _headers(delivery: WebhookDelivery, *, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "byol-portal-webhooks/1",
        "X-Portal-Event": delivery.event_name,
        EVENT_ID_HEADER: str(delivery.uid),
        "X-Portal-Delivery-Attempt": str(delivery.attempts),
        SIGNATURE_HEADER: sign(delivery.subscription.secret, timestamp, delivery.body.encode()),
    }


def _outcome_of(answer: Answer) -> str:
    if answer.status is None or answer.status in RETRY_STATUSES or answer.status >= 500:
        return Outcome.RETRY
    return Outcome.DELIVERED if 200 <= answer.status < 300 else Outcome.STOPPED


def _next_attempt_at(delivery: WebhookDelivery, *, started: datetime, answer: Answer, duration_ms: int) -> datetime:
    """The backoff's time, or the time the receiver asked for (Retry-After) if that is later.
    What it asks is counted from its answer and waited for at most the longest backoff, so
    that a receiver cannot park a delivery for longer."""
    cap = settings.PORTAL_WEBHOOK_RETRY_MAX_SECONDS
    delay = backoff(delivery.attempts, base=settings.PORTAL_WEBHOOK_RETRY_BASE_SECONDS, cap=cap)
    next_at = started + timedelta(seconds=delay)
    if answer.retry_after is None:
        return next_at
    asked_at = started + timedelta(milliseconds=duration_ms, seconds=min(answer.retry_after, cap))
    return max(next_at, asked_at)


def _settle(delivery: WebhookDelivery, *, started: datetime, answer: Answer, duration_ms: int, outcome: str) -> str:
    next_at = None
    if outcome == Outcome.RETRY:
        next_at = _next_attempt_at(delivery, started=started, answer=answer, duration_ms=duration_ms)
        if next_at > delivery.created_at + timedelta(hours=settings.PORTAL_WEBHOOK_RETRY_HOURS):
            outcome, next_at = Outcome.FAILED, None
    error = answer.error or (MSG_REDIRECT.format(location=answer.location) if 300 <= (answer.status or 0) < 400 else "")
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            started_at=started,
            status_code=answer.status,
            error=error[:500],
            duration_ms=duration_ms,
            outcome=outcome,
            next_attempt_at=next_at,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            # A settled delivery's outcome is its last attempt's (delivered, stopped, failed).
            outcome=WebhookDelivery.Outcome.PENDING if outcome == Outcome.RETRY else outcome,
            next_attempt_at=next_at,
            last_error=error[:500],
            finished_at=None if outcome == Outcome.RETRY else started,
        )
    logger.info(
        "webhook delivery %s (%s to subscription %s), attempt %s: %s %s%s",
        delivery.pk,
        delivery.event_name,
        delivery.subscription_id,
        delivery.attempts,
        outcome,
        answer.status or error,
        "" if answer.retry_after is None else f", Retry-After asked {answer.retry_after} s",
    )
    return outcome


def send_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Beat: queue the deliveries whose next attempt is due (retries, and first attempts whose
    message was lost); a second message for one delivery finds it claimed and does nothing."""
    due = WebhookDelivery.objects.filter(
        outcome=WebhookDelivery.Outcome.PENDING, next_attempt_at__lte=now or timezone.now()
    ).order_by("next_attempt_at")
    ids = list(due.values_list("pk", flat=True)[:limit])
    for delivery_id in ids:
        dispatch.publish("deliver_webhook", (delivery_id,))
    return len(ids)
