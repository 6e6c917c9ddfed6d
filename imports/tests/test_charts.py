"""The dashboard's charts: what each one counts, for whom, and in how many queries."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from imports import charts, workflow
from imports.models import ImportRequest


@pytest.fixture(autouse=True)
def _no_cached_charts() -> None:
    cache.delete(charts.CACHE_KEY)


def submitted_hours_ago(request: ImportRequest, hours: float) -> None:
    # Requests (not events) may be moved back in time: their submission is created_at.
    ImportRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(hours=hours))


def make_available(request: ImportRequest, approver: Any, image_id: str) -> None:
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=300)
    workflow.record_import_accepted(
        request_id=request.pk, lease_token=claimed.lease_token, aws_image_id=image_id, data={}
    )
    workflow.record_image_available(request_id=request.pk, data={})


def make_failed(request: ImportRequest, approver: Any, image_id: str, codes: list[str]) -> None:
    workflow.approve_request(request_id=request.pk, actor=approver, expected_version=request.version)
    claimed = workflow.claim_for_import(request_id=request.pk, lease_seconds=300)
    workflow.record_import_accepted(
        request_id=request.pk, lease_token=claimed.lease_token, aws_image_id=image_id, data={}
    )
    failure = {"error_code": "ValidationFailed", "details": [{"code": code} for code in codes]}
    workflow.record_image_failed(request_id=request.pk, failure=failure, data={})


@pytest.fixture
def activity(make_request: Any, approver: Any) -> dict[str, ImportRequest]:
    available = make_request(image_name="available")
    submitted_hours_ago(available, 10)
    make_available(available, approver, "wsi-000000001")
    slower = make_request(image_name="slower")
    submitted_hours_ago(slower, 30)
    make_available(slower, approver, "wsi-000000002")
    failed = make_request(image_name="failed")
    make_failed(failed, approver, "wsi-000000003", ["InsufficientDiskSpace", "OutdatedPowershellVersion"])
    rejected = make_request(image_name="rejected")
    workflow.reject_request(request_id=rejected.pk, actor=approver, expected_version=1, comment="no")
    waiting = make_request(image_name="waiting")
    return {"available": available, "slower": slower, "failed": failed, "rejected": rejected, "waiting": waiting}


def this_week(series: list[dict[str, Any]], key: str) -> Any:
    return next(s for s in series if s["key"] == key)["values"][-1]


def test_requests_per_week_are_counted_by_what_became_of_them(activity: dict[str, ImportRequest]) -> None:
    figures = charts.compute_charts()

    assert len(figures["weeks"]) == charts.WEEKS
    counts = {key: sum(next(s for s in figures["outcomes"] if s["key"] == key)["values"]) for key, _ in charts.OUTCOMES}
    assert counts == {"available": 2, "failed": 1, "rejected": 1, "cancelled": 0, "open": 1}
    assert figures["outcome_rows"][-1][0] == figures["weeks"][-1]


def test_time_to_approval_and_to_available_have_a_median_and_a_90th_percentile(
    activity: dict[str, ImportRequest],
) -> None:
    figures = charts.compute_charts()

    weeks = {figures["weeks"].index(row[0]): row for row in figures["duration_rows"] if row[1] is not None}
    assert len(weeks) in (1, 2)  # the 30 hours may reach back into last week
    values = [v for row in weeks.values() for v in row[1:]]
    assert all(v is not None and v >= 0 for v in values)
    to_approval_p90 = max(row[2] for row in weeks.values())
    assert 9.9 <= to_approval_p90 <= 30.1
    to_available_median = max(row[3] for row in weeks.values())
    assert to_available_median < 0.1  # made available at once in this test


def test_failures_are_counted_by_each_validation_code(activity: dict[str, ImportRequest]) -> None:
    figures = charts.compute_charts()

    assert figures["failures"] == [
        {"label": "InsufficientDiskSpace", "value": 1},
        {"label": "OutdatedPowershellVersion", "value": 1},
    ]


def test_quota_use_counts_the_images_each_target_holds(activity: dict[str, ImportRequest], target: Any) -> None:
    figures = charts.compute_charts()

    assert figures["quota"] == [{"label": target.name, "value": 3, "limit": 40}]


def test_the_charts_take_two_queries_whatever_the_number_of_requests(activity: dict[str, ImportRequest]) -> None:
    with CaptureQueriesContext(connection) as queries:
        charts.compute_charts()

    assert len(queries) == 2


@pytest.mark.parametrize(("values", "fraction", "expected"), [([1, 2, 3, 4], 0.9, 3.7), ([5], 0.5, 5), ([], 0.5, None)])
def test_percentiles_interpolate_as_postgresqls_percentile_cont(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert charts._percentile(values, fraction) == pytest.approx(expected)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="percentile_cont is PostgreSQL's")
def test_postgresql_computes_the_same_figures_as_the_portable_fallback(activity: dict[str, ImportRequest]) -> None:
    figures = charts.compute_charts()

    fallback = charts._weekly_in_python(charts._requests_query(timezone.now() - timedelta(weeks=charts.WEEKS)))
    in_sql = charts._weekly_in_sql(charts._requests_query(timezone.now() - timedelta(weeks=charts.WEEKS)))

    assert figures["duration_rows"]
    assert in_sql.keys() == fallback.keys()
    for week, figures_in_sql in in_sql.items():
        assert +figures_in_sql.outcomes == +fallback[week].outcomes
        assert figures_in_sql.failures == fallback[week].failures
        assert figures_in_sql.hours.keys() == set(charts.DURATION_KEYS)
        for key, hours in figures_in_sql.hours.items():
            assert hours == pytest.approx(fallback[week].hours.get(key))


# --- the page ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "sees"), [("approver", True), ("auditor", True), ("requester", False)])
def test_approvers_and_auditors_see_the_charts_and_their_numbers(
    client: Client, activity: dict[str, ImportRequest], who: str, sees: bool, request: Any
) -> None:
    client.force_login(request.getfixturevalue(who))

    response = client.get(reverse("dashboard"))

    page = response.content.decode()
    assert response.status_code == 200
    assert ('id="dashboard-charts" type="application/json"' in page) is sees
    assert ('<caption class="visually-hidden">Failed imports by error code</caption>' in page) is sees
    assert ("InsufficientDiskSpace</th><td>1</td>" in page) is sees
    assert ("chartkick/Chart.bundle" in page) is sees
