"""Reads: what a user may see, the approval queue, who to tell, which AMIs to offer."""

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, prefetch_related_objects
from django.utils import timezone

from imports import aws, charts, dispatch, roles, rules
from imports.models import Approval, AwsTarget, Delegation, EventAction, ImportRequest, RequestEvent, RolloutStep
from imports.steps.copy import CopyImage

logger = logging.getLogger(__name__)
SUBMITTED = ImportRequest.State.SUBMITTED.value
# The columns of a request that a table of requests (templates/imports/_request_table.html)
# shows: a column it shows and this leaves out is read by a query per row.
LISTED = (
    *("image_name", "state", "rollout", "import_progress", "import_stage", "created_at"),
    *("target__name", "requester__username"),
)
# A rollout that is not finished: steps still run, or one failed (the list's "rollout" filter
# and the dashboard; the partial index request_rollout_open holds exactly these requests).
ROLLOUT_OPEN = (rules.Rollout.RUNNING.value, rules.Rollout.INCOMPLETE.value)


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
    id tells nothing), with its `available_image` (see below) in the same query."""
    return visible_requests(user).annotate(available_image=available_image()).filter(pk=pk).first()


# What the request page's status endpoint reports (views.request_status): the page polls it
# every few seconds while something is under way, so it reads these columns and nothing else.
STATUS_COLUMNS = (
    *("state", "version", "next_attempt_at", "import_path", "rollout"),
    *("import_stage", "import_stage_message", "import_progress", "progress_checked_at"),
)


def request_status(user: AbstractBaseUser, pk: int) -> ImportRequest | None:
    """One request's STATUS_COLUMNS, or None when it does not exist or `user` may not see it."""
    found = _seen_by(user, ImportRequest.objects.only(*STATUS_COLUMNS)).filter(pk=pk)[:1]
    return next(iter(found), None)


def available_image() -> Subquery:
    """For an annotation: what AWS said of a request's image when it last became available (its
    latest IMAGE_AVAILABLE event's "image", UpdateAvailable included), None before. One lookup
    along the events' (request, seq) index."""
    events = RequestEvent.objects.filter(request=OuterRef("pk"), action=EventAction.IMAGE_AVAILABLE)
    return Subquery(events.order_by("-seq").values("data__image")[:1])


def approval_queue(user: AbstractBaseUser) -> QuerySet[ImportRequest]:
    """Requests waiting for a decision that `user` may take: everyone's but their own, for the
    targets whose approval policy lets them (or an approver they stand in for today) decide,
    and not those whose version they approved already (those wait for other approvers)."""
    if not roles.has_role(user, roles.APPROVERS):
        return ImportRequest.objects.none()
    approved = Approval.objects.filter(request=OuterRef("pk"), version=OuterRef("version"), decided_by=user)
    return (
        _listed(ImportRequest.objects.filter(state=ImportRequest.State.SUBMITTED))
        .filter(target_id__in=decidable_targets(user))
        .exclude(requester=user)
        .exclude(Exists(approved))
        .order_by("created_at", "id")
    )


def decidable_targets(user: AbstractBaseUser) -> list[int]:
    """The targets whose requests `user` may decide, for themselves or as a stand-in today: those
    whose policy names no approver groups, or a group of theirs or of an approver they stand in
    for. One query over the targets, kept on the user object for the rest of the request."""
    cached = getattr(user, "_decidable_targets", None)
    if cached is None:
        # Written as SQL around the stand-ins in force (their rule stays Delegation's): the ORM
        # took three times as long to build this query as the database to answer it.
        stood_in_for, params = (
            Delegation.objects.in_force().filter(stand_in=user).values("approver_id").query.sql_with_params()
        )
        targets, policies = AwsTarget._meta.db_table, AwsTarget.approver_groups.through._meta.db_table
        members = Group.user_set.through._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.id FROM {targets} t WHERE NOT EXISTS "  # noqa: S608 -- tables' names, values as parameters
                f"(SELECT 1 FROM {policies} p WHERE p.awstarget_id = t.id) OR EXISTS "
                f"(SELECT 1 FROM {policies} p JOIN {members} m ON m.group_id = p.group_id "
                f"WHERE p.awstarget_id = t.id AND (m.user_id = %s OR m.user_id IN ({stood_in_for})))",
                [user.pk, *params],
            )
            cached = user._decidable_targets = [pk for (pk,) in cursor.fetchall()]
    return cached


@dataclass(frozen=True)
class ApprovalStatus:
    """A request's approval policy and where its current version stands, for its page."""

    required: int
    # The approver groups of the target's policy (none: every approver).
    groups: list[str]
    # Who approved the current version, when, and who gave it (they, or their stand-in), the
    # earliest first.
    approved: list[tuple[str, Any, str]]
    # Who else may still approve it (a submitted request only), and whether the list goes on.
    may_still: list[str]
    more: bool

    @property
    def missing(self) -> int:
        return max(self.required - len(self.approved), 0)


MAY_STILL_SHOWN = 10


def policy_groups(target: AwsTarget, user: AbstractBaseUser) -> dict[str, bool]:
    """The approver groups of the target's policy, each with whether `user` is in it: one query
    per target, kept on the user object (as its roles are) for the rest of the request."""
    cache = getattr(user, "_policy_groups", None)
    if cache is None:
        cache = user._policy_groups = {}
    if target.pk not in cache:
        groups, members = Group._meta.db_table, Group.user_set.through._meta.db_table
        policies = AwsTarget.approver_groups.through._meta.db_table
        with connection.cursor() as cursor:
            # As SQL: on every request page, and the ORM took longer to build it than to run it.
            cursor.execute(
                f"SELECT g.name, EXISTS (SELECT 1 FROM {members} m WHERE m.group_id = g.id AND m.user_id = %s) "  # noqa: S608 -- tables' names, values as parameters
                f"FROM {groups} g JOIN {policies} p ON p.group_id = g.id WHERE p.awstarget_id = %s",
                [user.pk, target.pk],
            )
            cache[target.pk] = {name: bool(mine) for name, mine in cursor.fetchall()}
    return cache[target.pk]


def approval_status(request: ImportRequest, viewer: AbstractBaseUser) -> ApprovalStatus:
    """The target's policy (one query, which also answers whether `viewer` may decide its
    requests: workflow.approver_for), and, under a quorum, the version's approvers and who else
    may approve (one more)."""
    target = request.target
    groups = sorted(policy_groups(target, viewer))
    if target.approvals_required <= 1:
        return ApprovalStatus(target.approvals_required, groups, [], [], False)
    version_approvals = Approval.objects.filter(request=request, version=request.version, approver=OuterRef("pk"))
    approved_at = Subquery(version_approvals.values("created_at")[:1])
    given_by = Subquery(version_approvals.values("decided_by__username")[:1])
    eligible = Q(is_active=True, groups__name=roles.APPROVERS) & ~Q(pk=request.requester_id)
    if groups:
        eligible &= Q(pk__in=get_user_model().objects.filter(groups__name__in=groups).values("pk"))
    if request.state != SUBMITTED:
        eligible = Q(pk__in=[])
    people = (
        get_user_model()
        .objects.annotate(approved_at=approved_at, given_by=given_by)
        .filter(Q(approved_at__isnull=False) | eligible)
        .order_by(F("approved_at").asc(nulls_last=True), "username")
        .values_list("username", "approved_at", "given_by")
        .distinct()[: target.approvals_required + MAY_STILL_SHOWN + 1]
    )
    rows = list(people)
    approved = [(name, at, by) for name, at, by in rows if at is not None]
    may_still = [name for name, at, _ in rows if at is None]
    return ApprovalStatus(
        target.approvals_required, groups, approved, may_still[:MAY_STILL_SHOWN], len(may_still) > MAY_STILL_SHOWN
    )


@dataclass(frozen=True)
class Desk:
    """The dashboard's own rows: the user's requests by state and the latest of them, and (for an
    approver) the approvals queue's size and its oldest requests."""

    my_counts: dict[str, int]
    my_latest: list[ImportRequest]
    queue_size: int
    queue: list[ImportRequest]
    # Requests whose rollout is not finished, by rollout (running, incomplete): everyone's for
    # those who see every request, else the user's own.
    rollouts_open: dict[str, int]
    # Requests waiting for a decision past PORTAL_REMIND_AFTER_HOURS (their approvers reminded),
    # and those of them escalated: for those who see every request.
    overdue: int = 0
    escalated: int = 0


def desk(user: AbstractBaseUser, *, size: int) -> Desk:
    """Three queries whatever the history's size (the targets this user may decide among them:
    decidable_targets): the counts and which rows to show (desk_figures), and those rows."""
    approves = roles.has_role(user, roles.APPROVERS)
    figures = desk_figures(
        user, decidable=decidable_targets(user) if approves else [], sees_all=sees_all_requests(user), size=size
    )
    counted = figures.counts
    found = sorted(
        _listed(ImportRequest.objects.filter(pk__in=figures.latest + figures.queued)),
        key=lambda r: (r.created_at, r.pk),
    )
    return Desk(
        my_counts=counted["mine"],
        my_latest=[r for r in reversed(found) if r.requester_id == user.pk],
        queue_size=counted["queue"].get("", 0) - counted["approved"].get("", 0),
        queue=[r for r in found if r.requester_id != user.pk],
        rollouts_open=counted["rollouts"],
        overdue=counted["reminded"].get("", 0),
        escalated=counted["escalated"].get("", 0),
    )


@dataclass(frozen=True)
class DeskFigures:
    # By kind ("mine", "queue", ...: desk_figures), then by state, rollout or "".
    counts: dict[str, dict[str, int]]
    # The ids of the user's `size` newest requests, and of the approvals queue's `size` oldest.
    latest: list[int]
    queued: list[int]


def desk_figures(user: AbstractBaseUser, *, decidable: list[int], sees_all: bool, size: int) -> DeskFigures:
    """The dashboard's figures in one statement, each read from an index:
    - "mine": the user's requests by state (request_requester_created);
    - "queue", "approved": the approvals queue's size (approval_queue) as the requests waiting on
      the `decidable` targets but the user's own (request_awaiting_decision alone), less those of
      them whose current version the user approved already (from the user's approvals);
    - "rollouts": the unfinished rollouts by rollout, everyone's for those who see every request
      (`sees_all`), else the user's (request_rollout_open);
    - "reminded", "escalated": decisions overdue, for those who see every request
      (request_overdue);
    - "latest", "queued": the ids of the user's `size` newest requests (along
      request_requester_created) and of approval_queue's `size` oldest (request_state_created).
    Written as SQL: the dashboard is the page everyone opens, and the ORM took longer to build
    these queries than the database took to answer them. tests/test_scale_pages.py and
    test_approval_policy.py hold the queue here to approval_queue's."""
    # Only the tables' names and runs of placeholders are written into the text; every value is
    # a parameter. A LIMIT inside a UNION stands in a subquery of its own, for SQLite.
    requests, approvals = ImportRequest._meta.db_table, Approval._meta.db_table
    parts = [
        f"SELECT 'mine', state, COUNT(*) FROM {requests} WHERE requester_id = %s GROUP BY state",  # noqa: S608
        f"SELECT 'latest', '', id FROM (SELECT id FROM {requests} WHERE requester_id = %s "  # noqa: S608
        "ORDER BY created_at DESC, id DESC LIMIT %s) latest",
    ]
    params: list[Any] = [user.pk, user.pk, size]
    if decidable:
        targets = ", ".join(["%s"] * len(decidable))
        waiting = f"FROM {requests} r WHERE r.state = %s AND r.requester_id <> %s AND r.target_id IN ({targets})"
        parts += [
            f"SELECT 'queue', '', COUNT(*) {waiting}",
            f"SELECT 'approved', '', COUNT(*) FROM {approvals} a JOIN {requests} r ON r.id = a.request_id "  # noqa: S608
            "WHERE a.decided_by_id = %s AND a.version = r.version AND r.state = %s AND r.requester_id <> %s "
            f"AND r.target_id IN ({targets})",
            f"SELECT 'queued', '', id FROM (SELECT r.id {waiting} AND NOT EXISTS (SELECT 1 FROM {approvals} a "  # noqa: S608
            "WHERE a.request_id = r.id AND a.version = r.version AND a.decided_by_id = %s) "
            "ORDER BY r.created_at, r.id LIMIT %s) queued",
        ]
        params += [SUBMITTED, user.pk, *decidable, user.pk, SUBMITTED, user.pk, *decidable]
        params += [SUBMITTED, user.pk, *decidable, user.pk, size]
    mine = "" if sees_all else "AND requester_id = %s"
    parts.append(
        f"SELECT 'rollouts', rollout, COUNT(*) FROM {requests} WHERE rollout IN (%s, %s) {mine} GROUP BY rollout"  # noqa: S608
    )
    params += [*ROLLOUT_OPEN, *([] if sees_all else [user.pk])]
    if sees_all:
        overdue = f"FROM {requests} WHERE state = %s AND reminded_at IS NOT NULL"
        parts += [
            f"SELECT 'reminded', '', COUNT(*) {overdue}",
            f"SELECT 'escalated', '', COUNT(*) {overdue} AND escalated_at IS NOT NULL",
        ]
        params += [SUBMITTED, SUBMITTED]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows: dict[str, list[int]] = {"latest": [], "queued": []}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for whose, key, n in cursor.fetchall():
            if whose in rows:
                rows[whose].append(n)
            else:
                counts[whose][key] = n
    return DeskFigures(counts=counts, latest=rows["latest"], queued=rows["queued"])


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
    with thousands of events costs what one with ten does. Two queries, and a third for the
    actors of events from before usernames were recorded (RequestEvent.actor_name), if any."""
    events = request.events.order_by("-seq")
    newest = not (before and before.isdigit() and len(before) <= 18)
    if not newest:
        events = events.filter(seq__lt=int(before))
    found = list(events[: size + 1])
    shown = found[:size][::-1]
    prefetch_related_objects([e for e in shown if e.actor_id and not e.actor_username], "actor")
    older_than = shown[0].seq if len(found) > size else None
    return HistoryPage(events=shown, total=request.events.count(), older_than=older_than, newest=newest)


def approvers_for(request: ImportRequest) -> QuerySet[AbstractBaseUser]:
    """Active users who may decide on `request`: members of Approvers other than its requester;
    when the target's policy names approver groups, those in them and their stand-ins today."""
    approvers = get_user_model().objects.filter(groups__name=roles.APPROVERS, is_active=True)
    groups = AwsTarget.approver_groups.through.objects.filter(awstarget_id=request.target_id).values("group_id")
    named = approvers.filter(groups__in=groups)
    stand_ins = Delegation.objects.in_force().filter(approver__in=named).values("stand_in_id")
    deciders = Q(pk__in=named.values("pk")) | Q(pk__in=stand_ins) | ~Exists(groups)
    return approvers.filter(deciders).exclude(pk=request.requester_id).distinct().order_by("pk")


def escalation_group(request: ImportRequest) -> QuerySet[AbstractBaseUser]:
    """Who an overdue request is escalated to: the active members of PORTAL_ESCALATION_GROUP, or
    every active approver when it names none; never its requester."""
    people = get_user_model().objects.filter(is_active=True).exclude(pk=request.requester_id)
    group = settings.PORTAL_ESCALATION_GROUP or roles.APPROVERS
    return people.filter(groups__name=group).distinct()


def offered_amis() -> dict[int, list[aws.Ami]]:
    """Each active target's own Windows AMIs, for the request form to suggest, as a worker last
    listed them: a page never waits on AWS, and a target that hangs or answers garbage offers
    none (the id can be typed). A list older than PORTAL_AMI_CACHE_SECONDS is refreshed in the
    background, asked for at most once a minute per target and cache, and not while its Redis is down."""
    offers = {}
    stale_before = timezone.now() - timedelta(seconds=settings.PORTAL_AMI_CACHE_SECONDS)
    for target in AwsTarget.objects.filter(is_active=True).only("pk", "ami_offers", "ami_offers_at"):
        offers[target.pk] = [aws.Ami(**ami) for ami in target.ami_offers]
        stale = target.ami_offers_at is None or target.ami_offers_at < stale_before
        if stale and cache.add(f"ami-offers-asked:{target.pk}", True, timeout=60):
            dispatch.publish("refresh_ami_offers", (target.pk,))
    return offers


# --- what the portal made in each target -----------------------------------------------------


def active_targets() -> QuerySet[AwsTarget]:
    """The active targets, each with the images the portal holds in its region (`held`): everyone
    who files or decides on imports sees where images go and how full each account is."""
    return charts.targets_with_images()


def visible_target(user: AbstractBaseUser, pk: int) -> AwsTarget | None:
    """An active target; an inactive one too for those who see every request (its images stay)."""
    targets = AwsTarget.objects.all() if sees_all_requests(user) else AwsTarget.objects.filter(is_active=True)
    return targets.filter(pk=pk).first()


def target_images(user: AbstractBaseUser, target: AwsTarget) -> QuerySet[ImportRequest]:
    """The requests `user` may see that made an image in `target`, each with its steps (copies,
    bundles, shares), and `available_image`: what AWS said of the image when it became available
    (its latest IMAGE_AVAILABLE event's, UpdateAvailable included; None before). Two queries a
    page (imports.paging), whatever the number of steps."""
    return (
        visible_requests(user)
        .filter(target=target)
        .exclude(aws_image_id="")
        .annotate(available_image=available_image())
        .prefetch_related(Prefetch("steps", queryset=RolloutStep.objects.order_by("position")))
    )


@dataclass(frozen=True)
class RegionQuota:
    """The images the portal holds in one region of an account, against AWS's default quota."""

    region: str
    held: int
    limit: int = aws.IMAGE_QUOTA

    @property
    def room(self) -> int:
        return max(self.limit - self.held, 0)

    @property
    def level(self) -> str:
        if self.held >= self.limit:
            return "full"
        return "warn" if self.held >= aws.IMAGE_QUOTA_WARNING_AT else "ok"


# A copy takes a slot in its region from the moment AWS accepts it.
HOLDS_A_COPY = (RolloutStep.State.TRACKING.value, RolloutStep.State.DONE.value)


def image_quota(target: AwsTarget) -> list[RegionQuota]:
    """The images the portal's requests hold in each region of the target's account (the quota
    is per account and region, whichever target made them): the requests' own images in their
    targets' regions (charts.holds_an_image, as the dashboard's chart counts them) and their
    copies; the target's own region first. One UNION ALL of two grouped counts. What was made
    outside the portal is not counted."""
    account = target.account_id
    images = (
        ImportRequest.objects.filter(charts.holds_an_image(), target__account_id=account)
        .order_by()
        .values(in_region=F("target__region"))
        .annotate(n=Count("pk"))
        .values_list("in_region", "n")
    )
    copies = (
        RolloutStep.objects.filter(kind=CopyImage.kind, state__in=HOLDS_A_COPY, request__target__account_id=account)
        .order_by()
        .values(in_region=F("region"))
        .annotate(n=Count("pk"))
        .values_list("in_region", "n")
    )
    held: Counter[str] = Counter({target.region: 0})
    for region, n in images.union(copies, all=True):
        held[region] += n
    return [RegionQuota(region, held[region]) for region in sorted(held, key=lambda r: (r != target.region, r))]
