"""The audit histories' chains: appending an event, and verifying a chain up to its head.

Two chains, each a single line: the request history (RequestEvent: every step of every import
request) and the admin history (AdminEvent: changes to targets, users, groups, memberships).
Each event carries an HMAC-SHA256 over its own fields, the acting user's id and name as they
were, and the previous event's MAC, under a key that lives outside the database
(PORTAL_AUDIT_KEY). Changing, removing or reordering an event breaks every link after it, and
nobody without the key can re-seal an edited history. What the key cannot catch, the newest
events cut together with the head row moved back, the anchors in S3 catch (imports.anchor).

The chain's head row is locked while an event is appended, which serialises appends.
Events written before the portal had a key (key_id "") were sealed with plain SHA-256. They are
accepted only at the start of the request chain, and only as many as PORTAL_AUDIT_UNKEYED_EVENTS
says (a setting, outside the database): otherwise someone could re-seal a history without a key.
"""

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from imports.models import AdminEvent, AuditChainHead, ImportRequest, RequestEvent

GENESIS_HASH = "0" * 64
KEY_ID_LABEL = b"byol-portal audit key id"


def canonical_json(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRing:
    current_id: str
    keys: dict[str, bytes]


def key_id_of(key: bytes) -> str:
    """A public name for a key: it tells which key sealed an event without revealing the key."""
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


@lru_cache(maxsize=4)
def _key_ring(current: str, retired: tuple[str, ...]) -> KeyRing:
    keys = {key_id_of(k.encode()): k.encode() for k in (*retired, current)}
    return KeyRing(current_id=key_id_of(current.encode()), keys=keys)


def key_ring() -> KeyRing:
    return _key_ring(settings.PORTAL_AUDIT_KEY, tuple(settings.PORTAL_AUDIT_RETIRED_KEYS))


def mac(key: bytes, payload: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(payload).encode(), hashlib.sha256).hexdigest()


# --- what each chain seals ---------------------------------------------------------------------


def _when(event: Any) -> str:
    return event.created_at.astimezone(UTC).isoformat()


def _request_event_fields(event: RequestEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "request": event.request_id,
        "created_at": _when(event),
        "actor": event.actor_id,
        "action": event.action,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "comment": event.comment,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }


def _admin_event_fields(event: AdminEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "created_at": _when(event),
        "actor": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "changes": event.changes,
        "prev_hash": event.prev_hash,
    }


@dataclass(frozen=True)
class Chain:
    name: str
    head_pk: int
    model: type[models.Model]
    fields: Callable[[Any], dict[str, Any]]
    # Whether events sealed before the portal had keys may open the chain.
    has_unkeyed_start: bool

    def unkeyed_events_allowed(self) -> int:
        return settings.PORTAL_AUDIT_UNKEYED_EVENTS if self.has_unkeyed_start else 0


REQUEST_CHAIN = Chain("request history", 1, RequestEvent, _request_event_fields, has_unkeyed_start=True)
ADMIN_CHAIN = Chain("admin history", 2, AdminEvent, _admin_event_fields, has_unkeyed_start=False)
CHAINS = (REQUEST_CHAIN, ADMIN_CHAIN)


def _chain_of(event: Any) -> Chain:
    return ADMIN_CHAIN if isinstance(event, AdminEvent) else REQUEST_CHAIN


class UnknownKey(Exception):
    pass


def event_hash(event: RequestEvent | AdminEvent) -> str:
    """The MAC `event` should carry, under the key its key_id names (UnknownKey if the portal
    does not have that key); SHA-256 without a key for an event from before keys."""
    chain = _chain_of(event)
    fields = chain.fields(event)
    if not event.key_id:
        return hashlib.sha256(canonical_json(fields).encode()).hexdigest()
    key = key_ring().keys.get(event.key_id)
    if key is None:
        raise UnknownKey(event.key_id)
    if chain is REQUEST_CHAIN:
        fields |= {"actor_username": event.actor_username}
    return mac(key, fields | {"key_id": event.key_id})


def _seal(event: RequestEvent | AdminEvent, chain: Chain) -> None:
    """Number `event`, link it to the chain's head and seal it; the head row stays locked
    until the caller's transaction ends."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_event must run inside the transaction of the change it records")
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        pk=chain.head_pk, defaults={"seq": 0, "hash": GENESIS_HASH}
    )
    event.seq = head.seq + 1
    event.prev_hash = head.hash
    event.key_id = key_ring().current_id
    event.hash = event_hash(event)
    event.save(force_insert=True)
    AuditChainHead.objects.filter(pk=chain.head_pk).update(seq=event.seq, hash=event.hash)


def _actor_fields(actor: AbstractBaseUser | None) -> tuple[Any, str]:
    if actor is None:
        return None, ""
    return actor.pk, actor.get_username()


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
    actor_id, actor_username = _actor_fields(actor)
    event = RequestEvent(
        request=request,
        created_at=timezone.now(),
        actor_id=actor_id,
        actor_username=actor_username,
        action=action,
        from_state=from_state,
        to_state=to_state,
        comment=comment,
        # Stored as it reads back from JSON, so the MAC verifies after a round trip.
        data=json.loads(canonical_json(data or {})),
    )
    _seal(event, REQUEST_CHAIN)
    return event


def append_admin_event(
    *,
    actor_id: int | None,
    actor_username: str,
    action: str,
    object_type: str,
    object_id: Any,
    object_repr: str,
    changes: dict[str, Any] | None = None,
) -> AdminEvent:
    """Write one admin history event, inside the transaction of the change it records."""
    event = AdminEvent(
        created_at=timezone.now(),
        actor_id=actor_id,
        actor_username=actor_username,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:200],
        changes=json.loads(canonical_json(changes or {})),
    )
    _seal(event, ADMIN_CHAIN)
    return event


# --- verifying ---------------------------------------------------------------------------------


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
    head_hash: str = GENESIS_HASH
    chain: str = REQUEST_CHAIN.name


def verify_chain(*, batch_size: int = 2000) -> tuple[int, list[ChainProblem]]:
    """verify_chain_report as (number of events checked, problems found): events appended after
    the chain head was read are not part of it."""
    report = verify_chain_report(batch_size=batch_size)
    return report.count, report.problems


def verify_chain_report(chain: Chain = REQUEST_CHAIN, *, batch_size: int = 2000) -> ChainReport:
    """Recompute every MAC of `chain` up to its head as it was when the verification started.

    The head is read first and only events up to it are checked: events appended after that
    moment are not part of this verification (the next one covers them), so a portal in use
    never looks like a broken chain. An append commits its event and the head together, in seq
    order, so every event up to the head is already there when the head is read.
    """
    with one_snapshot():
        head = AuditChainHead.objects.filter(pk=chain.head_pk).first()
        problems: list[ChainProblem] = []
        expected_prev, expected_seq, count, keyed = GENESIS_HASH, 1, 0, False
        unkeyed_allowed = chain.unkeyed_events_allowed()
        # Without a head row every event is checked, so events left without one are reported.
        for event in _events_in_order(chain, batch_size, up_to_seq=head.seq if head else None):
            count += 1
            if event.seq != expected_seq:
                problems.append(ChainProblem(event.seq, f"expected event #{expected_seq} here: events are missing"))
            if event.prev_hash != expected_prev:
                problems.append(ChainProblem(event.seq, "does not link to the event before it"))
            problems.extend(_seal_problems(event, keyed or event.seq > unkeyed_allowed))
            keyed = keyed or bool(event.key_id)
            expected_prev, expected_seq = event.hash, event.seq + 1
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        problems.append(ChainProblem(None, "the chain head does not match the last event: events were removed"))
    return ChainReport(up_to_seq=head_seq, count=count, problems=problems, head_hash=head_hash, chain=chain.name)


def _seal_problems(event: RequestEvent | AdminEvent, must_be_keyed: bool) -> list[ChainProblem]:
    if not event.key_id and must_be_keyed:
        return [
            ChainProblem(
                event.seq,
                "carries no key's seal: it was re-sealed without the key (events from before the portal had "
                "an audit key are accepted only up to PORTAL_AUDIT_UNKEYED_EVENTS)",
            )
        ]
    try:
        expected = event_hash(event)
    except UnknownKey:
        return [
            ChainProblem(
                event.seq,
                f"is sealed with key {event.key_id}, which the portal does not hold: add it to "
                "PORTAL_AUDIT_RETIRED_KEYS if it was rotated out; otherwise the event was forged",
            )
        ]
    if not hmac.compare_digest(expected, event.hash):
        return [ChainProblem(event.seq, "its content does not match its seal: it was changed")]
    return []


def event_at(chain: Chain, seq: int) -> Any:
    return chain.model.objects.filter(seq=seq).first()


@contextmanager
def one_snapshot() -> Iterator[None]:
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


def _events_in_order(chain: Chain, batch_size: int, *, up_to_seq: int | None) -> Iterator[Any]:
    events = chain.model.objects.order_by("seq")
    if up_to_seq is not None:
        events = events.filter(seq__lte=up_to_seq)
    last_seq = 0
    while True:
        batch = list(events.filter(seq__gt=last_seq)[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        last_seq = batch[-1].seq
