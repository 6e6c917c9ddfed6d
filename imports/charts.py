"""The dashboard's charts for approvers and auditors: two aggregate reads, kept in the cache for
a few minutes (the figures move slowly, and each page view stays cheap at hundreds of thousands
of requests; the page says they may be a few minutes old).

One read for the weekly figures: the requests submitted in the last WEEKS weeks (the request
list's (created_at, id) index) with their approval and availability events (the events'
(request, seq) index), grouped by week into outcomes, times to approval and to available, and
the failures' error codes. The medians and 90th percentiles are computed in SQL on PostgreSQL
(percentile_cont) and in Python on SQLite. One more for the images the portal holds per target.
"""

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from imports.aws import IMAGE_QUOTA
from imports.models import HOLDS_AN_IMAGE, AwsTarget, EventAction, ImportRequest, RequestState

WEEKS = 12
CACHE_KEY = "dashboard-charts-v1"
CACHE_SECONDS = 300
OPEN = "open"
# Each request submitted in a week, by what became of it (so far).
OUTCOMES = [
    (RequestState.AVAILABLE.value, "Available"),
    (RequestState.FAILED.value, "Failed"),
    (RequestState.REJECTED.value, "Rejected"),
    (RequestState.CANCELLED.value, "Cancelled"),
    (OPEN, "Still open"),
]
ENDED = {state for state, _ in OUTCOMES if state != OPEN}
DURATION_LABELS = {
    "to_approval_p50": "Submitted to approved, median",
    "to_approval_p90": "Submitted to approved, 90th percentile",
    "to_available_p50": "Approved to available, median",
    "to_available_p90": "Approved to available, 90th percentile",
}
DURATION_KEYS = tuple(DURATION_LABELS)


def dashboard_charts() -> dict[str, Any]:
    charts = cache.get(CACHE_KEY)
    if charts is None:
        charts = compute_charts()
        cache.set(CACHE_KEY, charts, CACHE_SECONDS)
    return charts


def compute_charts(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    weeks = _week_starts(now)
    labels = [week.date().isoformat() for week in weeks]
    figures = _weekly_figures(weeks[0])
    by_label = {timezone.localtime(week).date().isoformat(): week_figures for week, week_figures in figures.items()}
    per_week = [by_label.get(label, Week()) for label in labels]
    outcomes = [
        {"key": state, "label": label, "values": [week.outcomes[state] for week in per_week]}
        for state, label in OUTCOMES
    ]
    durations = [
        {"key": key, "label": label, "values": [_hours(week.hours.get(key)) for week in per_week]}
        for key, label in DURATION_LABELS.items()
    ]
    return {
        "computed_at": now.isoformat(),
        "weeks": labels,
        "outcomes": outcomes,
        "durations": durations,
        "failures": _failures_by_code(week.failures for week in per_week),
        "quota": _quota_per_target(),
        # The same numbers by week, for the tables under the charts.
        "outcome_rows": _rows(labels, outcomes),
        "duration_rows": _rows(labels, durations),
    }


@dataclass
class Week:
    """What became of the requests submitted in one week."""

    # By outcome (OUTCOMES' keys).
    outcomes: Counter[str] = field(default_factory=Counter)
    # By DURATION_KEYS; None where no request got that far.
    hours: dict[str, float | None] = field(default_factory=dict)
    # The `failure` of each failed request.
    failures: list[dict[str, Any]] = field(default_factory=list)


def _hours(hours: float | None) -> float | None:
    return None if hours is None else round(hours, 1)


def _rows(labels: list[str], series: list[dict[str, Any]]) -> list[list[Any]]:
    return [[label, *(s["values"][n] for s in series)] for n, label in enumerate(labels)]


def _week_starts(now: datetime) -> list[datetime]:
    local = timezone.localtime(now)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return [monday - timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1)]


def _weekly_figures(since: datetime) -> dict[datetime, Week]:
    requests = _requests_query(since)
    return _weekly_in_sql(requests) if connection.vendor == "postgresql" else _weekly_in_python(requests)


def _requests_query(since: datetime) -> Any:
    """Each request submitted since `since`: its week, state and failure, and the hours from its
    submission to its first approval and from there to its last time made available (None where
    it got not so far). Only its approval and availability events (about 2 of 10) are joined."""
    milestones = FilteredRelation(
        "events", condition=Q(events__action__in=[EventAction.APPROVE, EventAction.IMAGE_AVAILABLE])
    )
    return (
        ImportRequest.objects.filter(created_at__gte=since)
        .alias(milestones=milestones)
        .order_by()
        .annotate(
            week=TruncWeek("created_at"),
            approved_at=Min("milestones__created_at", filter=Q(milestones__action=EventAction.APPROVE)),
            available_at=Max("milestones__created_at", filter=Q(milestones__action=EventAction.IMAGE_AVAILABLE)),
        )
        .annotate(
            to_approval=ExpressionWrapper(F("approved_at") - F("created_at"), output_field=DurationField()),
            to_available=ExpressionWrapper(F("available_at") - F("approved_at"), output_field=DurationField()),
        )
        .values_list("week", "state", "failure", "to_approval", "to_available")
    )


def _weekly_in_sql(requests: Any) -> dict[datetime, Week]:
    # https://www.postgresql.org/docs/current/functions-aggregate.html#FUNCTIONS-ORDEREDSET-TABLE
    sql, params = requests.query.sql_with_params()
    ended = sorted(ENDED)
    counts = ", ".join("count(*) FILTER (WHERE state = %s)" for _ in ended)
    hours = "extract(epoch from {column}) / 3600"
    percentiles = ", ".join(
        f"percentile_cont({fraction}) within group (order by {hours.format(column=column)})"
        for column in ("to_approval", "to_available")
        for fraction in (0.5, 0.9)
    )
    query = (
        f"SELECT week, count(*), {counts}, {percentiles}, jsonb_agg(failure) FILTER (WHERE state = %s) "  # noqa: S608
        f"FROM ({sql}) AS requests GROUP BY week"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [*ended, RequestState.FAILED.value, *params])
        rows = cursor.fetchall()
    figures = {}
    for week, total, *rest in rows:
        by_state, hours, failures = rest[: len(ended)], rest[len(ended) : -1], rest[-1]
        outcomes = Counter(dict(zip(ended, by_state, strict=True)))
        outcomes[OPEN] = total - sum(by_state)
        # Django reads jsonb as text (JSONField decodes it); the raw cursor gives that text.
        failed = json.loads(failures) if isinstance(failures, str) else failures or []
        # The raw cursor gives TruncWeek's local midnight without its time zone, as the ORM would add.
        figures[_aware(week)] = Week(outcomes, dict(zip(DURATION_KEYS, hours, strict=True)), failed)
    return figures


def _aware(moment: datetime) -> datetime:
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _weekly_in_python(requests: Any) -> dict[datetime, Week]:
    figures: dict[datetime, Week] = defaultdict(Week)
    samples: dict[datetime, dict[str, list[float]]] = defaultdict(lambda: {"to_approval": [], "to_available": []})
    for week, state, failure, to_approval, to_available in requests:
        figures[week].outcomes[state if state in ENDED else OPEN] += 1
        if state == RequestState.FAILED:
            figures[week].failures.append(failure or {})
        for column, duration in (("to_approval", to_approval), ("to_available", to_available)):
            if duration is not None:
                samples[week][column].append(duration.total_seconds() / 3600)
    for week, values in samples.items():
        for column, hours in values.items():
            figures[week].hours[f"{column}_p50"] = _percentile(hours, 0.5)
            figures[week].hours[f"{column}_p90"] = _percentile(hours, 0.9)
    return dict(figures)


def _percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _failures_by_code(failures: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Failed requests submitted in the window, by AWS's error code: each validation code of a
    failed image, else the code of the error, else the pre-import checks that stopped it."""
    codes: Counter[str] = Counter()
    for week in failures:
        for failure in week:
            codes.update(_codes_of(failure or {}))
    return [{"label": code, "value": n} for code, n in codes.most_common(10)]


def _codes_of(failure: dict[str, Any]) -> list[str]:
    details = [detail.get("code") for detail in failure.get("details", []) if detail.get("code")]
    if details:
        return details
    code = failure.get("error_code") or failure.get("code")
    if code:
        return [code]
    return ["pre-import checks"] if failure.get("checks") else ["unknown"]


def holds_an_image() -> Q:
    """A request whose image takes a slot of the quota in its target's region (HOLDS_AN_IMAGE,
    once AWS named the image): the condition of the partial index request_holds_image."""
    return Q(state__in=HOLDS_AN_IMAGE) & ~Q(aws_image_id="")


def targets_with_images() -> QuerySet[AwsTarget]:
    """Each active target, annotated with the images the portal holds there (`held`): one query,
    each target's count read from the partial index request_holds_image alone (a join of every
    request holding an image took 55 ms at 100,000 requests, the count per target 6 ms)."""
    held = (
        ImportRequest.objects.filter(holds_an_image(), target=OuterRef("pk"))
        .order_by()
        .values("target")
        .annotate(n=Count("*"))
        .values("n")
    )
    return AwsTarget.objects.filter(is_active=True).annotate(held=Coalesce(Subquery(held), 0)).order_by("name")


def _quota_per_target() -> list[dict[str, Any]]:
    targets = targets_with_images().values_list("name", "held")
    return [{"label": name, "value": held, "limit": IMAGE_QUOTA} for name, held in targets]
