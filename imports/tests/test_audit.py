"""The hash chain over the audit history, and the verify_audit command."""

import threading
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from imports import audit, roles, workflow
from imports.audit import GENESIS_HASH, append_event, event_hash, verify_chain, verify_chain_report
from imports.db_guards import remove_audit_guards
from imports.models import AuditChainHead, AwsTarget, EventAction, RequestEvent
from imports.tests.conftest import make_user, pass_preflight, request_fields


def tamper(sql: str, params: list[Any]) -> None:
    """Change history the way someone with database access could: guards off, raw SQL.
    The test's transaction rolls the guards back in afterwards."""
    remove_audit_guards(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def history(make_request: Any) -> list[RequestEvent]:
    first = make_request(checked=False)
    make_request(checked=False)
    pass_preflight(first)
    return list(RequestEvent.objects.order_by("seq"))


def test_events_link_into_one_chain_across_requests(history: list[RequestEvent]) -> None:
    assert [e.seq for e in history] == [1, 2, 3]
    assert history[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in history[1:]] == [e.hash for e in history[:-1]]
    assert all(event_hash(e) == e.hash for e in history)
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (3, history[-1].hash)


def test_an_intact_history_verifies(history: list[RequestEvent]) -> None:
    out = StringIO()

    call_command("verify_audit", stdout=out)

    assert verify_chain() == (3, [])
    assert "request history: 3 events up to #3" in out.getvalue()


def test_a_changed_comment_is_detected(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET comment = %s WHERE seq = 2", ["looks harmless"])

    count, problems = verify_chain()

    assert count == 3
    assert [(p.seq, p.message) for p in problems] == [(2, "its content does not match its seal: it was changed")]
    with pytest.raises(CommandError, match=r"NOT intact: 1 problem\(s\) \(request history: 3 events up to #3"):
        call_command("verify_audit", stdout=StringIO(), stderr=StringIO())


def test_a_changed_actor_with_a_recomputed_hash_breaks_the_next_link(
    history: list[RequestEvent], requester: Any
) -> None:
    event = history[2]
    event.actor_id = requester.pk
    tamper(
        "UPDATE imports_requestevent SET actor_id = %s, hash = %s WHERE seq = 3",
        [requester.pk, event_hash(event)],
    )

    _, problems = verify_chain()

    assert "chain head does not match" in problems[-1].message


def test_a_removed_event_is_detected(history: list[RequestEvent]) -> None:
    tamper("DELETE FROM imports_requestevent WHERE seq = 2", [])

    _, problems = verify_chain()

    assert [(p.seq, p.message) for p in problems] == [
        (3, "expected event #2 here: events are missing"),
        (3, "does not link to the event before it"),
    ]


def test_a_removed_last_event_is_detected_by_the_chain_head(history: list[RequestEvent]) -> None:
    tamper("DELETE FROM imports_requestevent WHERE seq = 3", [])

    _, problems = verify_chain()

    assert [(p.seq, p.message) for p in problems] == [
        (None, "the chain head does not match the last event: events were removed")
    ]


def test_a_removed_chain_head_is_detected(history: list[RequestEvent]) -> None:
    tamper("DELETE FROM imports_auditchainhead WHERE id = 1", [])

    report = verify_chain_report()

    assert (report.up_to_seq, report.count) == (0, 3)
    assert [(p.seq, p.message) for p in report.problems] == [
        (None, "the chain head does not match the last event: events were removed")
    ]


def test_events_appended_while_verifying_are_left_for_the_next_run(
    history: list[RequestEvent], make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_events_in_order = audit._events_in_order

    def reader_racing_the_portal(chain: audit.Chain, *args: Any, **kwargs: Any) -> Iterator[RequestEvent]:
        racing = chain is audit.REQUEST_CHAIN
        if racing:
            make_request(checked=False)  # lands after the head was read, before the first batch
        yield from read_events_in_order(chain, *args, **kwargs)
        if racing:
            make_request(checked=False)  # lands after the last batch, before the head is compared

    monkeypatch.setattr(audit, "_events_in_order", reader_racing_the_portal)
    out = StringIO()

    call_command("verify_audit", stdout=out)

    assert "request history: 3 events up to #3" in out.getvalue()
    report = verify_chain_report(batch_size=1)
    assert (report.up_to_seq, report.count, report.problems) == (5, 5, [])
    assert report.head_hash == RequestEvent.objects.get(seq=5).hash
    monkeypatch.undo()
    assert verify_chain(batch_size=2) == (7, [])


def test_data_with_dates_and_unicode_verifies_after_a_round_trip(make_request: Any) -> None:
    request = make_request(checked=False)
    with transaction.atomic():
        append_event(
            request,
            action="claim",
            actor=None,
            from_state="approved",
            to_state="submitting",
            data={"when": timezone.now(), "note": "Größe ✓", "nested": {"b": 1, "a": [1.5, None]}},
        )

    assert verify_chain() == (2, [])


def test_appending_outside_a_transaction_is_refused(make_request: Any) -> None:
    request = make_request()
    # pytest-django wraps each test in a transaction, so imitate a caller outside one.
    original = connection.in_atomic_block
    connection.in_atomic_block = False
    try:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            append_event(request, action="claim", actor=None, from_state="a", to_state="b")
    finally:
        connection.in_atomic_block = original


@pytest.fixture
def portal_in_use(committed_db: None) -> Callable[[], None]:
    """A function that submits one request and passes its pre-flight checks (two audit events),
    safe to call from several threads, each on its own connection."""
    if connection.vendor != "postgresql":
        pytest.skip("snapshots between connections are tested on PostgreSQL; .ci/run runs this with DATABASE_URL")
    requester = make_user("rita", groups=(roles.REQUESTERS,))
    target = AwsTarget.objects.create(name="Sandbox", account_id="123456789012", region="us-east-1")
    names = (f"busy-{n}" for n in range(1_000_000))
    lock = threading.Lock()

    def submit_and_check() -> None:
        with lock:
            name = next(names)
        pass_preflight(workflow.submit_request(requester=requester, fields=request_fields(target, image_name=name)))

    return submit_and_check


@pytest.mark.postgres
def test_verifying_while_the_portal_appends_never_reports_a_false_alarm(portal_in_use: Callable[[], None]) -> None:
    portal_in_use()
    stop, appended, errors = threading.Event(), threading.Semaphore(0), []

    def keep_appending() -> None:
        try:
            while not stop.is_set():
                portal_in_use()
                appended.release()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=keep_appending) for _ in range(3)]
    for writer in writers:
        writer.start()
    try:
        assert all(appended.acquire(timeout=10) for _ in writers)
        reports = [verify_chain_report() for _ in range(20)]
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)

    assert errors == []
    assert [r.problems for r in reports] == [[]] * 20
    assert all(r.count == r.up_to_seq for r in reports)
    counts = [r.count for r in reports]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0] > 2
    assert verify_chain() == (RequestEvent.objects.count(), [])


@pytest.mark.postgres
def test_on_postgresql_the_head_and_events_come_from_one_read_only_snapshot(
    portal_in_use: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    portal_in_use()
    seen: list[tuple[str, str]] = []
    read_events_in_order = audit._events_in_order

    def reader_noting_the_transaction(*args: Any, **kwargs: Any) -> Iterator[RequestEvent]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
            seen.append(cursor.fetchone())
        yield from read_events_in_order(*args, **kwargs)

    monkeypatch.setattr(audit, "_events_in_order", reader_noting_the_transaction)

    assert verify_chain() == (2, [])
    assert seen == [("repeatable read", "on")]
    assert not connection.in_atomic_block


def test_on_sqlite_verifying_opens_no_transaction_that_would_take_the_write_lock(
    committed_db: None, make_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("on PostgreSQL the verification runs in one read-only snapshot instead (test above)")
    make_request()
    in_transaction: list[bool] = []
    read_events_in_order = audit._events_in_order

    def reader_noting_the_transaction(*args: Any, **kwargs: Any) -> Iterator[RequestEvent]:
        in_transaction.append(connection.in_atomic_block or not connection.get_autocommit())
        yield from read_events_in_order(*args, **kwargs)

    monkeypatch.setattr(audit, "_events_in_order", reader_noting_the_transaction)

    assert verify_chain() == (2, [])
    assert in_transaction == [False]


@pytest.mark.parametrize("action", [*EventAction.values, "an_action_from_later"])
def test_an_events_action_label_is_what_get_action_display_says(action: str) -> None:
    event = RequestEvent(action=action)

    assert event.action_label == event.get_action_display()
