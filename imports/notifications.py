"""Email to the people a request concerns, through Django's email backend, and the same events
to the webhooks subscribed to them (imports.webhooks: deliveries recorded here, posted by a worker).

Called only after the change it reports has committed (workflow uses robust on_commit
callbacks), so a mail server that is down never undoes or hides a decision.
"""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from imports import selectors, webhooks
from imports.models import EventAction, ImportRequest, RequestEvent, WebhookEvent

logger = logging.getLogger(__name__)

DECIDED = {
    EventAction.APPROVE: WebhookEvent.APPROVED,
    EventAction.REJECT: WebhookEvent.REJECTED,
    EventAction.REQUEST_CHANGES: WebhookEvent.CHANGES_REQUESTED,
}


def _send(*, template: str, subject: str, request: ImportRequest, event: RequestEvent, to: list[str]) -> None:
    if not to:
        logger.info("%s: nobody to tell about %s", request.reference, event.action)
        return
    body = render_to_string(
        f"imports/email/{template}.txt",
        {
            "request": request,
            "event": event,
            "url": settings.PORTAL_BASE_URL + reverse("request_detail", args=[request.pk]),
        },
    )
    send_mail(f"[BYOL portal] {request.reference} {subject}", body, None, to)


def request_awaits_decision(request: ImportRequest, event: RequestEvent) -> None:
    """Approvers: a new or resubmitted request waits for them."""
    webhooks.announce(request, event, WebhookEvent.SUBMITTED)
    to = [user.email for user in selectors.approvers_for(request) if user.email]
    verb = "resubmitted" if event.action == "edit" else "submitted"
    _send(template="awaits_decision", subject=f"{verb}: {request.image_name}", request=request, event=event, to=to)


def request_decided(request: ImportRequest, event: RequestEvent) -> None:
    """The requester: an approver approved, rejected or sent back their request."""
    webhooks.announce(request, event, DECIDED[event.action])
    subject = f"{request.get_state_display().lower()}: {request.image_name}"
    to = [request.requester.email] if request.requester.email else []
    _send(template="decided", subject=subject, request=request, event=event, to=to)


def import_finished(request: ImportRequest, event: RequestEvent) -> None:
    """The requester: the import ended, one way or the other."""
    webhooks.announce(
        request,
        event,
        WebhookEvent.IMPORT_AVAILABLE if request.state == ImportRequest.State.AVAILABLE else WebhookEvent.IMPORT_FAILED,
    )
    subject = f"import {request.get_state_display().lower()}: {request.image_name}"
    to = [request.requester.email] if request.requester.email else []
    _send(template="import_finished", subject=subject, request=request, event=event, to=to)


def import_stalled(request: ImportRequest, event: RequestEvent) -> None:
    """The requester and the approvers: AWS has been importing for far longer than it should."""
    webhooks.announce(request, event, WebhookEvent.IMPORT_STALLED)
    approvers = [user.email for user in selectors.approvers_for(request) if user.email]
    to = sorted({*approvers, *([request.requester.email] if request.requester.email else [])})
    _send(template="stalled", subject=f"import stalled: {request.image_name}", request=request, event=event, to=to)


def rollout_finished(request: ImportRequest, event: RequestEvent) -> None:
    """The requester and the approvers: every step of the delivery plan has ended, each done or
    failed (a failed one waits for an approver's retry)."""
    webhooks.announce(request, event, WebhookEvent.ROLLOUT_FINISHED)
    approvers = [user.email for user in selectors.approvers_for(request) if user.email]
    to = sorted({*approvers, *([request.requester.email] if request.requester.email else [])})
    outcome = "incomplete" if request.rollout == "incomplete" else "done"
    _send(
        template="rollout_finished",
        subject=f"rollout {outcome}: {request.image_name}",
        request=request,
        event=event,
        to=to,
    )


def decision_overdue(request: ImportRequest, event: RequestEvent) -> None:
    """Nobody decided in time: a reminder to the approvers who may decide it, or an escalation to
    PORTAL_ESCALATION_GROUP (every active approver when it is empty) and them."""
    webhooks.announce(request, event, WebhookEvent.OVERDUE)
    deciders = selectors.approvers_for(request)
    if event.action == "escalate":
        deciders = deciders | selectors.escalation_group(request)
    to = sorted({user.email for user in deciders if user.email})
    verb = "escalated" if event.action == "escalate" else "waits for your decision"
    _send(template="overdue", subject=f"{verb}: {request.image_name}", request=request, event=event, to=to)
