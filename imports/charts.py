"""The dashboard's charts for approvers and auditors: a few aggregate reads over the last weeks,
kept in the cache for a few minutes (the figures move slowly, and each page view stays cheap
at hundreds of thousands of requests).

Every read is bounded: requests submitted in the last WEEKS weeks (the request list's
(created_at, id) index), their approval and availability events through the events' (request,
seq) index, and the images the portal holds per target. The medians and 90th percentiles are
computed in SQL on PostgreSQL (percentile_cont) and in Python on SQLite.
"""

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from imports.aws import IMAGE_QUOTA
from imports.models import AwsTarget, EventAction, ImportRequest, RequestState

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
# Images that take a slot of the account's quota: being imported, imported, or failed and not
# yet deleted (an ERROR image stays until the request is revised).
DURATION_KEYS = ("to_approval_p50", "to_approval_p90", "to_available_p50", "to_available_p90")
HOLDS_AN_IMAGE = [RequestState.IMPORTING, RequestState.AVAILABLE, RequestState.FAILED]


def dashboard_charts() -> dict[str, Any]:
    charts = cache.get(CACHE_KEY)
    if charts is None:
        charts = compute_charts()
        cache.set(CACHE_KEY, charts, CACHE_SECONDS)
    return charts


def compute_charts(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    weeks = _week_starts(now)
    since = weeks[0]
    labels = [week.date().isoformat() for week in weeks]
    outcomes = _outcomes_per_week(since, weeks)
    durations = _durations_per_week(since, weeks)
    return {
        "computed_at": now.isoformat(),
        "weeks": labels,
        "outcomes": outcomes,
        "durations": durations,
        "failures": _failures_by_code(since),
        "quota": _quota_per_target(),
        # The same numbers by week, for the tables under the charts.
        "outcome_rows": _rows(labels, outcomes),
        "duration_rows": _rows(labels, durations),
    }


def _rows(labels: list[str], series: list[dict[str, Any]]) -> list[list[Any]]:
    return [[label, *(s["values"][n] for s in series)] for n, label in enumerate(labels)]


def _week_starts(now: datetime) -> list[datetime]:
    local = timezone.localtime(now)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return [monday - timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1)]


def _week_index(weeks: list[datetime]) -> dict[str, int]:
    return {week.date().isoformat(): n for n, week in enumerate(weeks)}


def _outcomes_per_week(since: datetime, weeks: list[datetime]) -> list[dict[str, Any]]:
    rows = (
        ImportRequest.objects.filter(created_at__gte=since)
        .annotate(week=TruncWeek("created_at"))
        .order_by()
        .values("week", "state")
        .annotate(n=Count("id"))
    )
    index = _week_index(weeks)
    counts = {state: [0] * len(weeks) for state, _ in OUTCOMES}
    for row in rows:
        outcome = row["state"] if row["state"] in ENDED else OPEN
        week = index.get(timezone.localtime(row["week"]).date().isoformat())
        if week is not None:
            counts[outcome][week] += row["n"]
    return [{"key": state, "label": label, "values": counts[state]} for state, label in OUTCOMES]


def _durations_per_week(since: datetime, weeks: list[datetime]) -> list[dict[str, Any]]:
    """Hours from submission to approval, and from approval to available, median and p90, by the
    week each request was submitted (its first approval; its last time made available)."""
    requests = _durations_query(since)
    index = _week_index(weeks)
    in_sql = connection.vendor == "postgresql"
    by_week = _percentiles_in_sql(requests) if in_sql else _percentiles_in_python(requests)
    series: dict[str, list[float | None]] = {key: [None] * len(weeks) for key in DURATION_KEYS}
    for week, figures in by_week.items():
        n = index.get(timezone.localtime(week).date().isoformat())
        if n is None:
            continue
        for key, hours in figures.items():
            series[key][n] = None if hours is None else round(hours, 1)
    labels = {
        "to_approval_p50": "Submitted to approved, median",
        "to_approval_p90": "Submitted to approved, 90th percentile",
        "to_available_p50": "Approved to available, median",
        "to_available_p90": "Approved to available, 90th percentile",
    }
    return [{"key": key, "label": labels[key], "values": values} for key, values in series.items()]


def _durations_query(since: datetime) -> Any:
    return (
        ImportRequest.objects.filter(created_at__gte=since)
        # Before the annotations, so that they join only these events (about 2 of 10), through
        # the events' (request, seq) index.
        .filter(events__action__in=[EventAction.APPROVE, EventAction.IMAGE_AVAILABLE])
        .order_by()
        .annotate(
            week=TruncWeek("created_at"),
            approved_at=Min("events__created_at", filter=Q(events__action=EventAction.APPROVE)),
            available_at=Max("events__created_at", filter=Q(events__action=EventAction.IMAGE_AVAILABLE)),
        )
        .filter(approved_at__isnull=False)
        .annotate(
            to_approval=ExpressionWrapper(F("approved_at") - F("created_at"), output_field=DurationField()),
            to_available=ExpressionWrapper(F("available_at") - F("approved_at"), output_field=DurationField()),
        )
    )


def _percentiles_in_sql(requests: Any) -> dict[datetime, dict[str, float | None]]:
    # https://www.postgresql.org/docs/current/functions-aggregate.html#FUNCTIONS-ORDEREDSET-TABLE
    sql, params = requests.values("week", "to_approval", "to_available").query.sql_with_params()
    hours = "extract(epoch from {column}) / 3600"
    percentiles = ", ".join(
        f"percentile_cont({fraction}) within group (order by {hours.format(column=column)})"
        for column in ("to_approval", "to_available")
        for fraction in (0.5, 0.9)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT week, {percentiles} FROM ({sql}) AS durations GROUP BY week", params)  # noqa: S608
        rows = cursor.fetchall()
    # The raw cursor gives TruncWeek's local midnight without its time zone, as the ORM would add.
    return {_aware(row[0]): dict(zip(DURATION_KEYS, row[1:], strict=True)) for row in rows}


def _aware(moment: datetime) -> datetime:
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _percentiles_in_python(requests: Any) -> dict[datetime, dict[str, float | None]]:
    samples: dict[datetime, dict[str, list[float]]] = defaultdict(lambda: {"to_approval": [], "to_available": []})
    for week, to_approval, to_available in requests.values_list("week", "to_approval", "to_available"):
        samples[week]["to_approval"].append(to_approval.total_seconds() / 3600)
        if to_available is not None:
            samples[week]["to_available"].append(to_available.total_seconds() / 3600)
    result: dict[datetime, dict[str, float | None]] = {}
    for week, values in samples.items():
        result[week] = {}
        for column, hours in values.items():
            result[week][f"{column}_p50"] = _percentile(hours, 0.5)
            result[week][f"{column}_p90"] = _percentile(hours, 0.9)
    return result


def _percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _failures_by_code(since: datetime) -> list[dict[str, Any]]:
    """Failed requests submitted in the window, by AWS's error code: each validation code of a
    failed image, else the code of the error, else the pre-import checks that stopped it."""
    codes: Counter[str] = Counter()
    failures = ImportRequest.objects.filter(created_at__gte=since, state=RequestState.FAILED).values_list(
        "failure", flat=True
    )
    for failure in failures:
        for code in _codes_of(failure or {}):
            codes[code] += 1
    return [{"label": code, "value": n} for code, n in codes.most_common(10)]


def _codes_of(failure: dict[str, Any]) -> list[str]:
    details = [detail.get("code") for detail in failure.get("details", []) if detail.get("code")]
    if details:
        return details
    code = failure.get("error_code") or failure.get("code")
    if code:
        return [code]
    return ["pre-import checks"] if failure.get("checks") else ["unknown"]


def _quota_per_target() -> list[dict[str, Any]]:
    held = dict(
        ImportRequest.objects.filter(state__in=HOLDS_AN_IMAGE)
        .exclude(aws_image_id="")
        .order_by()
        .values_list("target")
        .annotate(n=Count("id"))
    )
    return [
        {"label": target.name, "value": held.get(target.pk, 0), "limit": IMAGE_QUOTA}
        for target in AwsTarget.objects.filter(is_active=True).order_by("name")
    ]
