"""The audit chains' seal: HMAC under a key outside the database, the acting username kept in
the event, key rotation, and what someone with only database access can try against it."""

import hashlib
import os
import subprocess
import sys
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from imports import audit
from imports.db_guards import remove_audit_guards
from imports.models import AuditChainHead, RequestEvent

OLD_KEY = "an-older-audit-key-that-was-rotated-out-0001"
NEW_KEY = "the-current-audit-key-after-the-rotation-0002"


def tamper(sql: str, params: list[Any]) -> None:
    remove_audit_guards(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def problems() -> list[tuple[int | None, str]]:
    return [(p.seq, p.message) for p in audit.verify_chain_report().problems]


def reseal_from(seq: int, seal: Any) -> None:
    """Rewrite every event from `seq` on, and the head, with `seal(event)` as its hash: what an
    insider with database access but without the key can do."""
    events = list(RequestEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev = RequestEvent.objects.get(seq=seq - 1).hash if seq > 1 else audit.GENESIS_HASH
    for event in events:
        event.prev_hash = prev
        event.hash = seal(event)
        tamper(
            "UPDATE imports_requestevent SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, event.hash, event.seq]
        )
        prev = event.hash
    tamper("UPDATE imports_auditchainhead SET seq = %s, hash = %s WHERE id = 1", [events[-1].seq, prev])


@pytest.fixture
def history(make_request: Any) -> list[RequestEvent]:
    for _ in range(3):
        make_request(checked=False)
    return list(RequestEvent.objects.order_by("seq"))


def test_each_event_is_sealed_with_the_current_key_and_names_its_actor(history: list[RequestEvent]) -> None:
    ring = audit.key_ring()

    assert {e.key_id for e in history} == {ring.current_id}
    assert {e.actor_username for e in history} == {"rita"}
    # The seal is an HMAC under the key: not the plain SHA-256 anyone could recompute.
    unkeyed = hashlib.sha256(audit.canonical_json(audit.REQUEST_CHAIN.fields(history[0])).encode()).hexdigest()
    assert history[0].hash != unkeyed
    assert problems() == []


def test_the_key_id_does_not_reveal_the_key(settings: Any) -> None:
    settings.PORTAL_AUDIT_KEY = NEW_KEY

    assert NEW_KEY not in audit.key_ring().current_id
    assert audit.key_ring().current_id == audit.key_id_of(NEW_KEY.encode())


def test_renaming_a_user_changes_no_past_event(history: list[RequestEvent], requester: Any) -> None:
    requester.username = "renamed"
    requester.save()

    events = list(RequestEvent.objects.order_by("seq"))
    assert [e.actor_name for e in events] == ["rita"] * 3
    assert problems() == []


def test_an_actor_renamed_in_the_history_itself_is_detected(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET actor_username = %s WHERE seq = 2", ["someone-else"])

    assert problems() == [(2, "its content does not match its seal: it was changed")]


def test_an_edit_resealed_with_a_guessed_key_breaks_every_seal_from_there(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET comment = %s WHERE seq = 2", ["approved by phone"])
    history[1].comment = "approved by phone"
    reseal_from(2, lambda e: audit.mac(b"a guess at the key", audit.REQUEST_CHAIN.fields(e) | {"key_id": e.key_id}))

    found = problems()

    assert found == [(seq, "its content does not match its seal: it was changed") for seq in (2, 3)]


def test_a_history_resealed_without_a_key_is_refused(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET key_id = ''", [])

    def unkeyed(event: RequestEvent) -> str:
        event.key_id = ""
        return audit.event_hash(event)

    reseal_from(1, unkeyed)

    assert [seq for seq, message in problems() if "carries no key's seal" in message] == [1, 2, 3]


def test_events_from_before_keys_are_accepted_only_as_many_as_configured(
    history: list[RequestEvent], settings: Any
) -> None:
    tamper("UPDATE imports_requestevent SET key_id = '' WHERE seq <= 2", [])

    def legacy_then_keyed(event: RequestEvent) -> str:
        if event.seq <= 2:
            event.key_id = ""
        return audit.event_hash(event)

    reseal_from(1, legacy_then_keyed)
    assert [seq for seq, _ in problems()] == [1, 2]

    settings.PORTAL_AUDIT_UNKEYED_EVENTS = 2
    assert problems() == []

    settings.PORTAL_AUDIT_UNKEYED_EVENTS = 1
    assert [seq for seq, _ in problems()] == [2]


def test_after_a_rotation_old_events_verify_with_the_retired_key(make_request: Any, settings: Any) -> None:
    settings.PORTAL_AUDIT_KEY = OLD_KEY
    make_request(checked=False)
    settings.PORTAL_AUDIT_KEY, settings.PORTAL_AUDIT_RETIRED_KEYS = NEW_KEY, [OLD_KEY]
    make_request(checked=False)

    key_ids = list(RequestEvent.objects.order_by("seq").values_list("key_id", flat=True))
    assert key_ids == [audit.key_id_of(OLD_KEY.encode()), audit.key_id_of(NEW_KEY.encode())]
    assert problems() == []

    settings.PORTAL_AUDIT_RETIRED_KEYS = []
    [(seq, message)] = problems()
    assert seq == 1
    assert f"sealed with key {key_ids[0]}, which the portal does not hold" in message
    assert "PORTAL_AUDIT_RETIRED_KEYS" in message


def test_verify_audit_names_a_forged_event_and_fails(history: list[RequestEvent]) -> None:
    tamper("UPDATE imports_requestevent SET data = %s WHERE seq = 1", ['{"forged": true}'])
    err = StringIO()

    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", stdout=StringIO(), stderr=err)

    assert "request history, event #1: its content does not match its seal" in err.getvalue()


def test_the_head_of_each_chain_is_its_own_row(history: list[RequestEvent]) -> None:
    heads = dict(AuditChainHead.objects.values_list("pk", "seq"))

    assert heads[1] == 3
    assert set(heads) <= {1, 2}


def test_settings_refuse_a_short_key_and_a_missing_one_in_production(tmp_path: Any) -> None:
    def start(env: dict[str, str]) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "import portal.settings"],
            env={k: v for k, v in os.environ.items() if not k.startswith("PORTAL_AUDIT")} | env,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stderr

    production = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50, "PORTAL_VAR_DIR": str(tmp_path)}
    assert "PORTAL_AUDIT_KEY (or PORTAL_AUDIT_KEY_FILE) must be set" in start(production)
    assert "at least 32 characters" in start(production | {"PORTAL_AUDIT_KEY": "short"})
    key_file = tmp_path / "audit-key"
    key_file.write_text("k" * 40 + "\n")
    assert start(production | {"PORTAL_AUDIT_KEY_FILE": str(key_file)}) == ""
    assert "cannot read" in start(production | {"PORTAL_AUDIT_KEY_FILE": str(tmp_path / "missing")})
