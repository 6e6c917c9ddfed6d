"""Pages at scale: the same number of queries (at most 8) whatever the size of the history (the
dashboard's charts computed afresh included), keyset pages that neither repeat nor skip a
request, search on SQLite and PostgreSQL, and an admin that never counts a whole table."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from imports import audit, charts, filters, paging, roles, views
from imports.admin import ADMIN_MAX_ROWS, INLINE_EVENTS
from imports.models import AwsTarget, ImportRequest, RequestEvent
from imports.paging import keyset_page
from imports.tests.conftest import make_user
from imports.views import HISTORY_PAGE_SIZE, PAGE_SIZE

MAX_QUERIES = 8


@pytest.fixture
def admin_client_(client: Client, superuser: Any) -> Client:
    client.force_login(superuser)
    return client


def grow(requests: int, busy_events: int) -> None:
    """Add `requests` made-up requests (one of them with `busy_events` events) to the history."""
    call_command(
        "seed_scale",
        requests=requests,
        users=6,
        targets=2,
        busy_requests=1,
        busy_events=busy_events,
        append=True,
        seed=requests,
        verbosity=0,
    )


def busiest() -> int:
    return RequestEvent.objects.values("request").annotate(n=Count("id")).order_by("-n").first()["request"]


def pages(client: Client) -> dict[str, str]:
    first = client.get(reverse("request_list")).context["page"]
    submitted = ImportRequest.objects.filter(state=ImportRequest.State.SUBMITTED).first()
    name = ImportRequest.objects.order_by("pk").first().image_name
    return {
        "dashboard": reverse("dashboard"),
        "list": reverse("request_list"),
        "list, next page": f"{reverse('request_list')}?after={first.next_cursor}",
        "list by state": f"{reverse('request_list')}?state=available",
        "list by requester": f"{reverse('request_list')}?requester={submitted.requester.username}",
        "search": f"{reverse('request_list')}?q={name[6:14]}",
        "busiest request": reverse("request_detail", args=[busiest()]),
        "approvals": reverse("approval_queue"),
        "status": reverse("request_status", args=[busiest()]),
    }


def queries_per_page(client: Client) -> dict[str, int]:
    counts = {}
    for name, url in pages(client).items():
        # The dashboard's charts and the list's target choices read afresh, as at their first
        # view (they are cached a while).
        cache.delete_many([charts.CACHE_KEY, filters.TARGET_CHOICES_KEY])
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(queries)
    return counts


@pytest.fixture
def reader(db: None) -> Any:
    """An approver who is also an auditor: sees every page the portal has."""
    user = get_user_model().objects.create_user("reader", password="x")
    user.groups.add(*Group.objects.filter(name__in=[roles.APPROVERS, roles.AUDITORS]))
    return user


@pytest.mark.django_db
def test_every_page_runs_the_same_few_queries_at_any_size(client: Client, reader: Any, settings: Any) -> None:
    settings.DEBUG = True
    client.force_login(reader)
    grow(requests=40, busy_events=HISTORY_PAGE_SIZE - 10)
    small = queries_per_page(client)

    grow(requests=160, busy_events=HISTORY_PAGE_SIZE * 4)
    large = queries_per_page(client)

    assert large == small
    assert max(large.values()) <= MAX_QUERIES, large


@pytest.mark.django_db
@pytest.mark.parametrize(
    "groups",
    [(roles.APPROVERS,), (roles.AUDITORS,), (roles.APPROVERS, roles.AUDITORS), (roles.REQUESTERS, roles.APPROVERS)],
)
def test_the_dashboard_with_every_chart_and_table_runs_at_most_8_queries(
    client: Client, django_assert_max_num_queries: Any, settings: Any, groups: tuple[str, ...]
) -> None:
    settings.DEBUG = True
    grow(requests=120, busy_events=HISTORY_PAGE_SIZE)
    user = make_user("dashboard-reader", groups=groups)
    # Two of the user's own requests are available, one waits: not in the user's queue.
    mine = [*ImportRequest.objects.filter(state=ImportRequest.State.AVAILABLE)[:2]]
    mine += ImportRequest.objects.filter(state=ImportRequest.State.SUBMITTED)[:1]
    ImportRequest.objects.filter(pk__in=[r.pk for r in mine]).update(requester=user)
    client.force_login(user)
    cache.delete(charts.CACHE_KEY)

    with django_assert_max_num_queries(MAX_QUERIES):
        first = client.get(reverse("dashboard"))
    # The charts are kept a few minutes (the page says so): a second view reads only its own rows.
    with django_assert_max_num_queries(MAX_QUERIES - 2):
        again = client.get(reverse("dashboard"))

    page = first.content.decode()
    assert again.content.decode().count("<table") == page.count("<table")
    assert page.count('<canvas id="chart-') == 4
    assert page.count("<table") == 4 + 1 + (roles.APPROVERS in groups)
    assert first.context["my_counts"] == [("submitted", "Submitted", 1), ("available", "Available", 2)]
    assert [r.pk for r in first.context["my_requests"]] == sorted((r.pk for r in mine), reverse=True)
    if roles.APPROVERS in groups:
        waiting = (
            ImportRequest.objects.filter(state=ImportRequest.State.SUBMITTED)
            .exclude(requester=user)
            .order_by("created_at", "id")
        )
        assert first.context["queue_size"] == waiting.count() > 10
        assert [r.pk for r in first.context["queue"]] == [r.pk for r in waiting[:10]]
        assert all(r.requester.get_username() in page for r in first.context["queue"])


@pytest.mark.django_db
def test_the_busiest_request_shows_its_newest_events_and_pages_back(client: Client, reader: Any, settings: Any) -> None:
    settings.DEBUG = True
    grow(requests=20, busy_events=HISTORY_PAGE_SIZE * 2 + 5)
    client.force_login(reader)
    pk = busiest()
    seqs = list(RequestEvent.objects.filter(request_id=pk).order_by("seq").values_list("seq", flat=True))

    newest = client.get(reverse("request_detail", args=[pk]))
    older = client.get(reverse("request_detail", args=[pk]), {"events_before": newest.context["history"].older_than})
    oldest = client.get(reverse("request_detail", args=[pk]), {"events_before": older.context["history"].older_than})

    assert [e.seq for e in newest.context["events"]] == seqs[-HISTORY_PAGE_SIZE:]
    assert f'data-events="{len(seqs)}"' in newest.content.decode() or not newest.context["live"]
    assert [e.seq for e in older.context["events"]] == seqs[-2 * HISTORY_PAGE_SIZE : -HISTORY_PAGE_SIZE]
    assert [e.seq for e in oldest.context["events"]] == seqs[: -2 * HISTORY_PAGE_SIZE]
    assert oldest.context["history"].older_than is None
    assert "Older events" in newest.content.decode()
    assert "Newest events" in oldest.content.decode()


@pytest.mark.django_db
def test_events_from_before_usernames_were_recorded_name_their_actor_in_one_more_query(
    client: Client, reader: Any, make_request: Any, requester: Any, approver: Any, settings: Any
) -> None:
    settings.DEBUG = True
    request = make_request()
    client.force_login(reader)
    with CaptureQueriesContext(connection) as recorded:
        client.get(reverse("request_detail", args=[request.pk]))
    for actor in (requester, approver, requester):
        # As events were written before migration 0007: the actor's id, no username.
        event = RequestEvent(
            request=request,
            created_at=timezone.now(),
            actor=actor,
            action="comment",
            from_state=request.state,
            to_state=request.state,
        )
        with transaction.atomic():
            audit._seal(event, audit.REQUEST_CHAIN)

    with CaptureQueriesContext(connection) as legacy:
        page = client.get(reverse("request_detail", args=[request.pk]))

    names = [e.actor_name for e in page.context["events"][-3:]]
    assert names == [requester.get_username(), approver.get_username(), requester.get_username()]
    assert f"<strong>{approver.get_username()}</strong>" in page.content.decode()
    assert len(legacy) == len(recorded) + 1


# --- keyset pages ------------------------------------------------------------------------------


def walk(rows: Any, size: int) -> list[int]:
    seen, cursor = [], None
    while True:
        page = keyset_page(rows, size=size, after=cursor)
        seen += [r.pk for r in page.object_list]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


@pytest.mark.django_db
def test_keyset_pages_cover_every_request_once_in_order(make_request: Any) -> None:
    made = [make_request() for _ in range(7)]
    # Three share one creation time, across a page boundary.
    same = timezone.now() - timedelta(days=1)
    ImportRequest.objects.filter(pk__in=[r.pk for r in made[2:5]]).update(created_at=same)
    rows = ImportRequest.objects.all()

    seen = walk(rows, size=3)

    assert seen == list(rows.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert walk(rows.order_by(), size=2) == seen


@pytest.mark.django_db
def test_a_keyset_page_is_stable_while_requests_are_added(make_request: Any) -> None:
    before = [make_request() for _ in range(5)]
    rows = ImportRequest.objects.all()
    first = keyset_page(rows, size=2)

    added = [make_request() for _ in range(3)]
    second = keyset_page(rows, size=2, after=first.next_cursor)
    third = keyset_page(rows, size=2, after=second.next_cursor)

    shown = [r.pk for page in (first, second, third) for r in page.object_list]
    assert sorted(shown) == sorted(r.pk for r in before)
    assert not set(shown) & {r.pk for r in added}
    assert third.next_cursor is None


@pytest.mark.django_db
def test_a_keyset_page_goes_back_to_the_page_before(make_request: Any) -> None:
    for _ in range(7):
        make_request()
    rows = ImportRequest.objects.all()
    first = keyset_page(rows, size=3)
    second = keyset_page(rows, size=3, after=first.next_cursor)

    back = keyset_page(rows, size=3, before=second.previous_cursor)

    assert back.object_list == first.object_list
    assert back.previous_cursor is None
    assert back.next_cursor == first.next_cursor


@pytest.mark.django_db
def test_the_approvals_queue_pages_oldest_first(client: Client, make_request: Any, other_approver: Any) -> None:
    made = [make_request() for _ in range(PAGE_SIZE + 3)]
    client.force_login(other_approver)

    first = client.get(reverse("approval_queue")).context["page"]
    second = client.get(reverse("approval_queue"), {"after": first.next_cursor}).context["page"]

    assert [r.pk for r in first.object_list + second.object_list] == [r.pk for r in made]


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["junk", "1_2_3", "999999999999999999_1", "-99999999999999999_1", "_", ""])
def test_a_malformed_cursor_shows_the_first_page(client: Client, auditor: Any, make_request: Any, cursor: str) -> None:
    made = make_request()
    client.force_login(auditor)

    response = client.get(reverse("request_list"), {"after": cursor, "before": cursor})

    assert response.status_code == 200
    assert made.reference in response.content.decode()


# --- search ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "term",
    ["Win11-Design", "design laptops", "ami-0aaaaaaaaaaaaaaa1", "WSI-123ABC", "rita", "Rita"],
)
def test_search_finds_a_request_by_any_of_its_columns_in_any_case(
    client: Client, auditor: Any, make_request: Any, other_requester: Any, term: str
) -> None:
    found = make_request(
        image_name="win11-design-2026", image_description="Design laptops", ec2_image_id="ami-0aaaaaaaaaaaaaaa1"
    )
    ImportRequest.objects.filter(pk=found.pk).update(aws_image_id="wsi-123abc")
    other = make_request(by=other_requester, image_name="other")
    client.force_login(auditor)

    page = client.get(reverse("request_list"), {"q": term}).context["page"]

    assert [r.pk for r in page.object_list] == [found.pk]
    assert other.pk not in [r.pk for r in page.object_list]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "found"), [("rita", True), ("RITA", True), (" rita ", True), ("rit", False)])
def test_the_requester_filter_names_one_user_in_any_case(
    client: Client, auditor: Any, make_request: Any, other_requester: Any, settings: Any, name: str, found: bool
) -> None:
    settings.DEBUG = True
    ritas = [make_request(), make_request()]
    make_request(by=other_requester)
    client.force_login(auditor)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("request_list"), {"requester": name}).context["page"]

    assert [r.pk for r in page.object_list] == ([r.pk for r in reversed(ritas)] if found else [])
    # The list reads the requester's id, not a join on user names (for no such user: nothing).
    listed = [q["sql"] for q in queries if 'FROM "imports_importrequest"' in q["sql"]]
    assert len(listed) == found
    assert not [sql for sql in listed if '"auth_user"."username"' in sql.split("WHERE", 1)[1]]


@pytest.fixture
def named_history(make_request: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """30 requests a minute apart (the 11th and 12th at the same instant), named so that "every"
    matches them all, "even" every other one, "oldest" the oldest five and "fresh" two of the
    newest five and two old ones; a search's first window is 5 rows and its widest 20. The ids,
    newest first."""
    monkeypatch.setattr(paging, "SEARCH_WINDOW", 5)
    monkeypatch.setattr(paging, "WIDEST_WINDOW", 20)
    start = timezone.now() - timedelta(days=1)
    made = []
    for i in range(30):
        words = ["every", "even" if i % 2 == 0 else "odd", "oldest" if i < 5 else "newer"]
        words.append("fresh" if i in (29, 27, 3, 2) else "stale")
        made.append(make_request(image_name="-".join([*words, str(i)])).pk)
        ImportRequest.objects.filter(pk=made[-1]).update(
            created_at=start + timedelta(minutes=min(i, 10) + max(i - 11, 0))
        )
    return made[::-1]


@pytest.fixture
def searcher(client: Client, auditor: Any, named_history: list[int], settings: Any) -> Client:
    """An auditor's client over named_history, with every query logged."""
    settings.DEBUG = True
    client.force_login(auditor)
    return client


def search_pages(rows: Any, among: Any, *, size: int) -> tuple[list[int], list[int]]:
    """Every page of a search, forwards to the last and back again to the first."""
    forwards, page = [], paging.searched_page(rows, among=among, size=size)
    pages = [page]
    while page.next_cursor:
        page = paging.searched_page(rows, among=among, size=size, after=page.next_cursor)
        pages.append(page)
    backwards = [page]
    while page.previous_cursor:
        page = paging.searched_page(rows, among=among, size=size, before=page.previous_cursor)
        backwards.append(page)
    forwards = [r.pk for page in pages for r in page.object_list]
    return forwards, [r.pk for page in reversed(backwards) for r in page.object_list]


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["every", "even", "oldest", "fresh", "nothing"])
def test_a_search_pages_through_every_match_once_newest_first_and_back(named_history: list[int], term: str) -> None:
    among = ImportRequest.objects.all()
    rows = among.filter(image_name__icontains=term)

    forwards, backwards = search_pages(rows, among, size=3)

    assert forwards == [pk for pk in named_history if pk in set(rows.values_list("pk", flat=True))]
    assert len(forwards) == {"every": 30, "even": 15, "oldest": 5, "fresh": 4, "nothing": 0}[term]
    assert backwards == forwards


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("term", "reads"),
    [
        # The newest 5 rows hold a page of 3 and one more: one read.
        ("every", 1),
        # Two of the newest 5 match: the 20 newest (5 * 4 / 2, twice over) are read next.
        ("even", 2),
        # The same, but the 20 newest hold no more: every match is found and sorted.
        ("fresh", 3),
        # None of the newest 5: every match is found and sorted at once.
        ("oldest", 2),
    ],
)
def test_a_search_reads_the_newest_requests_first_and_all_of_them_only_when_it_must(
    searcher: Client, monkeypatch: pytest.MonkeyPatch, term: str, reads: int
) -> None:
    monkeypatch.setattr(views, "PAGE_SIZE", 3)

    with CaptureQueriesContext(connection) as queries:
        page = searcher.get(reverse("request_list"), {"q": term}).context["page"]

    listed = [q["sql"] for q in queries if q["sql"].startswith('SELECT "imports_importrequest"."id"')]
    assert [r.image_name.split("-")[-1] for r in page.object_list] == {
        "every": ["29", "28", "27"],
        "even": ["28", "26", "24"],
        "fresh": ["29", "27", "3"],
        "oldest": ["4", "3", "2"],
    }[term]
    windows = [re.findall(r"FROM \"imports_importrequest\" U0 [^()]* LIMIT (\d+)\)", sql) for sql in listed]
    assert len(listed) == reads
    assert (
        windows
        == {"every": [["5"]], "even": [["5"], ["20"]], "fresh": [["5"], ["20"], []], "oldest": [["5"], []]}[term]
    )


def search_plans(client: Client, term: str, *settings_: str) -> list[str]:
    """PostgreSQL's plan for each read of the request list's search for `term`, under `settings_`
    (SET LOCAL statements)."""
    if connection.vendor != "postgresql":
        pytest.skip("the query plans asked about are PostgreSQL's")
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("request_list"), {"q": term})
    reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "imports_importrequest"."id"')]
    plans = []
    with transaction.atomic(), connection.cursor() as cursor:
        for setting in settings_:
            cursor.execute(f"SET LOCAL {setting}")
        for sql in reads:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.mark.django_db
def test_a_search_that_must_find_every_match_sorts_them_instead_of_walking_the_newest(searcher: Client) -> None:
    # With sorting all but forbidden, PostgreSQL walks any index that gives the page's order.
    last = search_plans(searcher, "oldest", "enable_sort = off")[-1]

    assert "Sort Key" in last, last
    assert "request_created" not in last, last


@pytest.mark.django_db
def test_a_search_reads_its_window_of_newest_requests_by_key_not_through_the_trigram_indexes(
    searcher: Client,
) -> None:
    # Reading a whole table and nested loops all but forbidden: a join of the window's ids would
    # start from the trigram indexes.
    first = search_plans(searcher, "fresh", "enable_seqscan = off", "enable_nestloop = off")[0]

    assert "Index Cond: (id = ANY ($" in first, first
    assert "_trgm" not in first, first


@pytest.mark.django_db
def test_postgresql_has_trigram_indexes_for_the_search() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's (SQLite searches the same columns without them)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'request_%_trgm' ORDER BY 1")
        names = [row[0] for row in cursor.fetchall()]

    assert names == [
        "request_aws_image_id_trgm",
        "request_ec2_image_id_trgm",
        "request_image_description_trgm",
        "request_image_name_trgm",
    ]


@pytest.mark.django_db
def test_the_lists_target_filter_reads_its_choices_once_in_one_plain_query_and_again_after_a_change(
    client: Client, auditor: Any, target: Any, settings: Any
) -> None:
    settings.DEBUG = True
    other = AwsTarget.objects.create(name="Another account", account_id="210987654321", region="eu-west-1")
    client.force_login(auditor)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("request_list"), {"target": other.pk}).content.decode()
    first = [q["sql"] for q in queries]
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("request_list"))
    second = [q["sql"] for q in queries]
    other.name = "Renamed account"
    other.save()
    renamed = client.get(reverse("request_list")).content.decode()

    assert f'<option value="{other.pk}" selected>Another account (210987654321, eu-west-1)</option>' in page
    assert f'<option value="{target.pk}">{target}</option>' in page
    assert f'<option value="{other.pk}">Renamed account (210987654321, eu-west-1)</option>' in renamed
    # On PostgreSQL Django would read the choices through a server-side cursor (three round trips).
    assert not [sql for sql in first if sql.startswith(("DECLARE", "FETCH", "CLOSE"))]
    assert [sql for sql in first if 'FROM "imports_awstarget" ORDER BY' in sql]
    assert not [sql for sql in second if 'FROM "imports_awstarget"' in sql]


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_changelists_count_no_whole_table_and_run_no_distinct(admin_client_: Client, settings: Any) -> None:
    settings.DEBUG = True
    grow(requests=150, busy_events=INLINE_EVENTS * 3)
    urls = [
        reverse("admin:imports_importrequest_changelist"),
        reverse("admin:imports_importrequest_changelist") + "?state__exact=available",
        reverse("admin:imports_requestevent_changelist"),
        reverse("admin:imports_requestevent_changelist") + "?to_state=failed&action__exact=image_failed",
        reverse("admin:imports_requestevent_changelist") + "?q=IMP-000001",
        reverse("admin:imports_requestevent_changelist") + "?p=3",
    ]

    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client_.get(url)
        sql = [q["sql"].upper() for q in queries]

        assert response.status_code == 200, url
        assert not [q for q in sql if "DISTINCT" in q and "REQUESTEVENT" in q], url
        counts = [q for q in sql if "COUNT(" in q]
        assert all("LIMIT" in q for q in counts), (url, counts)


@pytest.mark.django_db
def test_the_admin_paginator_stops_at_its_cap(admin_client_: Client, settings: Any, monkeypatch: Any) -> None:
    settings.DEBUG = True
    grow(requests=30, busy_events=20)
    monkeypatch.setattr("imports.admin.ADMIN_MAX_ROWS", 50)

    response = admin_client_.get(reverse("admin:imports_requestevent_changelist"))

    assert response.context["cl"].result_count == 50
    assert ADMIN_MAX_ROWS == 10_000


@pytest.mark.django_db
def test_the_admin_request_page_lists_the_newest_events_and_links_to_all(admin_client_: Client, settings: Any) -> None:
    settings.DEBUG = True
    grow(requests=10, busy_events=INLINE_EVENTS * 3)
    pk = busiest()
    newest = list(RequestEvent.objects.filter(request_id=pk).order_by("-seq").values_list("seq", flat=True))

    response = admin_client_.get(reverse("admin:imports_importrequest_change", args=[pk]))
    shown = [form.instance.seq for form in response.context["inline_admin_formsets"][0].formset.forms]
    events = admin_client_.get(reverse("admin:imports_requestevent_changelist"), {"request__exact": pk})

    assert shown == newest[:INLINE_EVENTS]
    assert f"?request__exact={pk}" in response.content.decode()
    assert events.status_code == 200
    assert {e.request_id for e in events.context["cl"].result_list} == {pk}
