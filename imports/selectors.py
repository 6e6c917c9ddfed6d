"""Reads: what a user may see, the approval queue, who to tell, which AMIs to offer."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.utils import timezone

from imports import aws, dispatch, roles
from imports.models import AwsTarget, ImportRequest, RequestEvent

logger = logging.getLogger(__name__)


def sees_all_requests(user: AbstractBaseUser) -> bool:
    return user.has_perm("imports.view_importrequest")


def visible_requests(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """Approvers, auditors and admins see every request; everyone else only their own."""
    requests = ImportRequest.objects.select_related("target", "requester", "approver")
    return requests if sees_all_requests(user) else requests.filter(requester=user)


def visible_request(user: AbstractBaseUser, pk: int) -> ImportRequest | None:
    """One request, or None when it does not exist *or* the user may not see it (so a guessed
    id tells nothing)."""
    return visible_requests(user).filter(pk=pk).first()


def approval_queue(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """Requests waiting for a decision that `user` may take: everyone's but their own."""
    if not roles.has_role(user, roles.APPROVERS):
        return ImportRequest.objects.none()
    return (
        ImportRequest.objects.select_related("target", "requester")
        .filter(state=ImportRequest.State.SUBMITTED)
        .exclude(requester=user)
        .order_by("created_at", "id")
    )


def state_counts(requests: QuerySet[ImportRequest]) -> dict[str, int]:
    rows = requests.order_by().values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


@dataclass(frozen=True)
class HistoryPage:
    """Some of a request's events, oldest first, and where the older ones start."""

    events: list[RequestEvent]
    total: int
    # The seq to page back from (?events_before=), None when these are the oldest.
    older_than: int | None
    # Whether these are the newest events (the page was not paged back).
    newest: bool


def history_page(request: ImportRequest, *, before: str | None, size: int) -> HistoryPage:
    """The newest `size` events of `request` older than the seq `before` (all of the newest
    when it is missing or not a number), read back along the (request, seq) index: a request
    with thousands of events costs what one with ten does. Two queries."""
    events = request.events.select_related("actor").order_by("-seq")
    newest = not (before and before.isdigit() and len(before) <= 18)
    if not newest:
        events = events.filter(seq__lt=int(before))
    found = list(events[: size + 1])
    shown = found[:size][::-1]
    older_than = shown[0].seq if len(found) > size else None
    return HistoryPage(events=shown, total=request.events.count(), older_than=older_than, newest=newest)


def latest_event(request: ImportRequest, action: str) -> RequestEvent | None:
    return request.events.filter(action=action).order_by("-seq").first()


def approvers_for(request: ImportRequest) -> QuerySet[AbstractBaseUser]:
    """Active users who may decide on `request`: members of Approvers other than its requester."""
    return (
        get_user_model()
        .objects.filter(groups__name=roles.APPROVERS, is_active=True)
        .exclude(pk=request.requester_id)
        .distinct()
        .order_by("pk")
    )


def offered_amis() -> dict[int, list[aws.Ami]]:
    """Each active target's own Windows AMIs, for the request form to suggest, as a worker last
    listed them: a page never waits on AWS, and a target that hangs or answers garbage offers
    none (the id can be typed). A list older than PORTAL_AMI_CACHE_SECONDS is refreshed in the
    background, asked for at most once a minute per target and process."""
    offers = {}
    stale_before = timezone.now() - timedelta(seconds=settings.PORTAL_AMI_CACHE_SECONDS)
    for target in AwsTarget.objects.filter(is_active=True).only("pk", "ami_offers", "ami_offers_at"):
        offers[target.pk] = [aws.Ami(**ami) for ami in target.ami_offers]
        stale = target.ami_offers_at is None or target.ami_offers_at < stale_before
        if stale and cache.add(f"ami-offers-asked:{target.pk}", True, timeout=60):
            dispatch.publish("refresh_ami_offers", (target.pk,))
    return offers
