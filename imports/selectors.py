"""Reads: what a user may see, the approval queue, who to tell, which AMIs to offer."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Value
from django.utils import timezone

from imports import aws, dispatch, roles
from imports.models import AwsTarget, ImportRequest, RequestEvent

logger = logging.getLogger(__name__)
SUBMITTED = ImportRequest.State.SUBMITTED.value
# The columns of a request that a table of requests (templates/imports/_request_table.html)
# shows: a column it shows and this leaves out is read by a query per row.
LISTED = (
    *("image_name", "state", "rollout", "import_progress", "import_stage", "created_at"),
    *("target__name", "requester__username"),
)


def sees_all_requests(user: AbstractBaseUser) -> bool:
    return user.has_perm("imports.view_importrequest")


def visible_requests(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """Approvers, auditors and admins see every request; everyone else only their own."""
    return _seen_by(user, ImportRequest.objects.select_related("target", "requester", "approver"))


def listed_requests(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """The requests `user` may see, with only the columns a table of them shows."""
    return _seen_by(user, _listed(ImportRequest.objects.all()))


def _seen_by(user: AbstractBaseUser, requests: QuerySet[ImportRequest]) -> QuerySet[ImportRequest]:
    return requests if sees_all_requests(user) else requests.filter(requester=user)


def _listed(requests: QuerySet[ImportRequest]) -> QuerySet[ImportRequest]:
    # What templates/imports/_request_table.html shows of each row. A request's other columns
    # (its JSON: pre-flight, failures, plan, tags) are most of its size, and read for nothing.
    return requests.select_related("target", "requester").only(*LISTED)


def visible_request(user: AbstractBaseUser, pk: int) -> ImportRequest | None:
    """One request, or None when it does not exist *or* the user may not see it (so a guessed
    id tells nothing)."""
    return visible_requests(user).filter(pk=pk).first()


def approval_queue(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """Requests waiting for a decision that `user` may take: everyone's but their own."""
    if not roles.has_role(user, roles.APPROVERS):
        return ImportRequest.objects.none()
    return (
        _listed(ImportRequest.objects.filter(state=ImportRequest.State.SUBMITTED))
        .exclude(requester=user)
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class Desk:
    """The dashboard's own rows: the user's requests by state and the latest of them, and (for an
    approver) the approvals queue's size and its oldest requests."""

    my_counts: dict[str, int]
    my_latest: list[ImportRequest]
    queue_size: int
    queue: list[ImportRequest]


def desk(user: AbstractBaseUser, *, size: int) -> Desk:
    """Two queries whatever the history's size. The counts: the user's requests by state, and
    every submitted request (the queue is those less the user's own), one UNION ALL of two
    grouped counts, each read from an index alone (requester, or state). The rows: the user's
    `size` newest requests and the queue's `size` oldest, one UNION ALL, each half along its
    (requester | state, created_at, id) index."""
    mine = Q(requester=user)
    approves = roles.has_role(user, roles.APPROVERS)
    counts = _counts_by_state(ImportRequest.objects.filter(mine), "mine")
    if approves:
        counts = counts.union(_counts_by_state(ImportRequest.objects.filter(state=SUBMITTED), "all"), all=True)
    counted: dict[str, dict[str, int]] = {"mine": {}, "all": {}}
    for whose, state, n in counts:
        counted[whose][state] = n
    my_counts = counted["mine"]

    # A sliced query cannot stand in a UNION on SQLite: each half names its rows by a subquery.
    newest = ImportRequest.objects.filter(mine).order_by("-created_at", "-id").values("pk")[:size]
    rows = _listed(ImportRequest.objects.order_by())
    latest = rows.filter(pk__in=newest)
    if approves:
        latest = latest.union(rows.filter(pk__in=approval_queue(user).values("pk")[:size]), all=True)
    found = sorted(latest, key=lambda r: (r.created_at, r.pk))
    return Desk(
        my_counts=my_counts,
        my_latest=[r for r in reversed(found) if r.requester_id == user.pk],
        queue_size=counted["all"].get(SUBMITTED, 0) - my_counts.get(SUBMITTED, 0),
        queue=[r for r in found if r.requester_id != user.pk],
    )


def _counts_by_state(requests: QuerySet[ImportRequest], whose: str) -> QuerySet[ImportRequest]:
    return (
        requests.order_by()
        .values("state")
        .annotate(n=Count("pk"), whose=Value(whose))
        .values_list("whose", "state", "n")
    )


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
