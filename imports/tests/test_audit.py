"""The hash chain over the audit history, and the verify_audit command."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from imports.audit import GENESIS_HASH, append_event, event_hash, verify_chain
from imports.db_guards import remove_audit_guards
from imports.models import AuditChainHead, RequestEvent
from imports.tests.conftest import pass_preflight


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
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (3, history[-1].hash)


def test_an_intact_history_verifies(history: list[RequestEvent]) -> None:
    out = StringIO()

    call_command("verify_audit", stdout=out)

    assert verify_chain() == (3, [])
    assert "intact: 3 events verified" in out.getvalue()


def test_a_changed_comment_is_detected(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET comment = %s WHERE seq = 2", ["looks harmless"])

    count, problems = verify_chain()

    assert count == 3
    assert [(p.seq, p.message) for p in problems] == [(2, "its content does not match its hash: it was changed")]
    with pytest.raises(CommandError, match="NOT intact"):
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
