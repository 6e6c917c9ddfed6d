"""The audit history's hash chain: appending an event, and verifying the chain up to its head.

Each event's hash covers its own fields and the previous event's hash, so changing, removing
or reordering any event breaks every hash after it. The chain head row is locked while an
event is appended, which serialises appends and keeps the chain a single line.
"""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from imports.models import AuditChainHead, ImportRequest, RequestEvent

GENESIS_HASH = "0" * 64


def canonical_json(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: RequestEvent) -> str:
    payload = canonical_json(
        {
            "seq": event.seq,
            "request": event.request_id,
            "created_at": event.created_at.astimezone(UTC).isoformat(),
            "actor": event.actor_id,
            "action": event.action,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "comment": event.comment,
            "data": event.data,
            "prev_hash": event.prev_hash,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def append_event(
    request: ImportRequest,
    *,
    action: str,
    actor: AbstractBaseUser | None,
    from_state: str,
    to_state: str,
    comment: str = "",
    data: dict[str, Any] | None = None,
) -> RequestEvent:
    """Write one audit event. Must run inside the transaction that made the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_event must run inside the transaction of the change it records")
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1, defaults={"seq": 0, "hash": GENESIS_HASH})
    event = RequestEvent(
        request=request,
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        comment=comment,
        # Stored as it reads back from JSON, so the hash verifies after a round trip.
        data=json.loads(canonical_json(data or {})),
        prev_hash=head.hash,
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    AuditChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    message: str


@dataclass(frozen=True)
class ChainReport:
    """One verification: the chain head it was bounded by, the events it checked, what was wrong."""

    up_to_seq: int
    count: int
    problems: list[ChainProblem]


def verify_chain(*, batch_size: int = 2000) -> tuple[int, list[ChainProblem]]:
    """verify_chain_report as (number of events checked, problems found): events appended after
    the chain head was read are not part of it."""
    report = verify_chain_report(batch_size=batch_size)
    return report.count, report.problems


def verify_chain_report(*, batch_size: int = 2000) -> ChainReport:
    """Recompute every hash up to the chain head as it was when the verification started.

    The head is read first and only events up to it are checked: events appended after that
    moment are not part of this verification (the next one covers them), so a portal in use
    never looks like a broken chain. An append commits its event and the head together, in seq
    order, so every event up to the head is already there when the head is read.
    """
    with _one_snapshot():
        head = AuditChainHead.objects.filter(pk=1).first()
        problems: list[ChainProblem] = []
        expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
        # Without a head row every event is checked, so events left without one are reported.
        for event in _events_in_order(batch_size, up_to_seq=head.seq if head else None):
            count += 1
            if event.seq != expected_seq:
                problems.append(ChainProblem(event.seq, f"expected event #{expected_seq} here: events are missing"))
            if event.prev_hash != expected_prev:
                problems.append(ChainProblem(event.seq, "does not link to the event before it"))
            if event_hash(event) != event.hash:
                problems.append(ChainProblem(event.seq, "its content does not match its hash: it was changed"))
            expected_prev, expected_seq = event.hash, event.seq + 1
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        problems.append(ChainProblem(None, "the chain head does not match the last event: events were removed"))
    return ChainReport(up_to_seq=head_seq, count=count, problems=problems)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """On PostgreSQL, read the head and every event in one read-only snapshot.

    SQLite gets no transaction: the portal runs it with transaction_mode IMMEDIATE, where
    atomic() takes the write lock and would stall every request for the whole verification.
    Inside a caller's transaction the isolation level is already fixed, so it is used as it is.
    """
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    # https://www.postgresql.org/docs/current/transaction-iso.html#XACT-REPEATABLE-READ
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _events_in_order(batch_size: int, *, up_to_seq: int | None) -> Iterator[RequestEvent]:
    events = RequestEvent.objects.order_by("seq")
    if up_to_seq is not None:
        events = events.filter(seq__lte=up_to_seq)
    last_seq = 0
    while True:
        batch = list(events.filter(seq__gt=last_seq)[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        last_seq = batch[-1].seq
