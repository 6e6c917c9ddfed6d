"""The chain heads anchored in an S3 bucket with Object Lock (the sandbox's moto S3), and what
verify_audit finds with them that the seal alone cannot: events cut with the head moved back,
and a history re-sealed by someone holding the key."""

import json
import socket
import uuid
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command
from django.db import connection

from imports import anchor, audit, tasks
from imports.db_guards import remove_audit_guards
from imports.models import AuditAnchor, RequestEvent
from sandbox import AUDIT_BUCKET, SandboxHandle, start_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0)
    yield handle
    handle.stop()


@pytest.fixture
def s3(sandbox: SandboxHandle, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "sandbox")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings.PORTAL_AUDIT_ANCHOR_BUCKET = AUDIT_BUCKET
    settings.PORTAL_AUDIT_ANCHOR_ENDPOINT_URL = sandbox.url
    settings.PORTAL_AUDIT_ANCHOR_REGION = "us-east-1"
    # moto's buckets outlive a test's database: each test anchors under a prefix of its own.
    settings.PORTAL_AUDIT_ANCHOR_PREFIX = f"test-{uuid.uuid4().hex}/"
    return boto3.client("s3", endpoint_url=sandbox.url, region_name="us-east-1")


def tamper(sql: str, params: list[Any]) -> None:
    remove_audit_guards(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify() -> tuple[bool, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError as exc:
        return False, out.getvalue(), err.getvalue() + str(exc)
    return True, out.getvalue(), err.getvalue()


@pytest.fixture
def anchored(make_request: Any, s3: Any) -> AuditAnchor:
    for _ in range(3):
        make_request(checked=False)
    written = anchor.anchor_heads()
    assert written is not None
    return written


def test_an_anchor_is_written_locked_in_compliance_mode_and_cannot_be_deleted(
    anchored: AuditAnchor, s3: Any, settings: Any
) -> None:
    # HeadObject reports the lock (moto's server answers GetObjectRetention with a 500).
    head = s3.head_object(Bucket=AUDIT_BUCKET, Key=anchored.object_key, VersionId=anchored.version_id)
    body = json.loads(s3.get_object(Bucket=AUDIT_BUCKET, Key=anchored.object_key)["Body"].read())

    assert head["ObjectLockMode"] == "COMPLIANCE"
    retained = head["ObjectLockRetainUntilDate"] - anchored.written_at
    assert round(retained.total_seconds() / 86400) == settings.PORTAL_AUDIT_ANCHOR_RETENTION_DAYS
    assert body["chains"]["request history"] == {"seq": 3, "hash": RequestEvent.objects.get(seq=3).hash}
    assert body["key_id"] == audit.key_ring().current_id
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=AUDIT_BUCKET, Key=anchored.object_key, VersionId=anchored.version_id)


def test_heads_already_anchored_are_not_written_again(anchored: AuditAnchor, make_request: Any, s3: Any) -> None:
    assert anchor.anchor_heads() is None

    make_request(checked=False)
    newer = anchor.anchor_heads()

    assert newer is not None
    assert (newer.request_seq, newer.object_key > anchored.object_key) == (4, True)


def test_an_intact_history_matches_its_newest_anchor(anchored: AuditAnchor, make_request: Any) -> None:
    make_request(checked=False)  # newer than the anchor: covered by the seal alone, and fine

    intact, out, _ = verify()

    assert intact
    assert f"matches the newest anchor ({anchored.object_key}" in out


def test_cutting_the_newest_events_and_moving_the_head_back_is_caught_only_by_the_anchor(
    anchored: AuditAnchor, settings: Any
) -> None:
    second = RequestEvent.objects.get(seq=2)
    tamper("DELETE FROM imports_requestevent WHERE seq = 3", [])
    tamper("UPDATE imports_auditchainhead SET seq = 2, hash = %s WHERE id = 1", [second.hash])

    # Every remaining seal and link is right: the chain alone cannot tell.
    assert audit.verify_chain_report().problems == []
    intact, _, err = verify()

    assert not intact
    assert "holds event #3, but the database ends at #2: events #3 to #3 were cut" in err


def test_a_history_resealed_by_someone_with_the_key_differs_from_the_anchor(anchored: AuditAnchor) -> None:
    tamper("UPDATE imports_requestevent SET comment = %s WHERE seq = 2", ["rewritten"])
    prev = RequestEvent.objects.get(seq=1).hash
    for event in RequestEvent.objects.filter(seq__gte=2).order_by("seq"):
        event.prev_hash = prev
        event.hash = audit.event_hash(event)
        tamper(
            "UPDATE imports_requestevent SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, event.hash, event.seq]
        )
        prev = event.hash
    tamper("UPDATE imports_auditchainhead SET hash = %s WHERE id = 1", [prev])

    assert audit.verify_chain_report().problems == []
    intact, _, err = verify()

    assert not intact
    assert "anchor, event #3: request history: differs from the anchor written" in err
    assert "the history up to it was rewritten" in err


def test_an_anchor_written_without_the_key_is_called_forged(anchored: AuditAnchor, s3: Any, settings: Any) -> None:
    forged = json.loads(s3.get_object(Bucket=AUDIT_BUCKET, Key=anchored.object_key)["Body"].read())
    forged["chains"]["request history"]["seq"] = 1
    s3.put_object(Bucket=AUDIT_BUCKET, Key=anchor.object_key(99, 99), Body=json.dumps(forged).encode())

    intact, _, err = verify()

    assert not intact
    assert f"the anchor {anchor.object_key(99, 99)} does not carry the portal's seal: it was forged" in err


def test_the_database_note_only_says_where_to_start_listing(anchored: AuditAnchor, make_request: Any) -> None:
    make_request(checked=False)
    newest = anchor.anchor_heads()
    assert newest is not None
    # Someone moves the note back to the older anchor: the newer one is listed all the same.
    AuditAnchor.objects.filter(pk=newest.pk).delete()

    assert anchor.newest_anchor().object_key == newest.object_key

    AuditAnchor.objects.all().delete()
    assert anchor.newest_anchor().object_key == newest.object_key

    AuditAnchor.objects.create(object_key=anchor.object_key(50, 50), request_seq=50, admin_seq=50)
    with pytest.raises(anchor.AnchorError, match=r"notes an anchor .* that the bucket does not hold"):
        anchor.newest_anchor()


def test_an_unreachable_bucket_fails_verification_with_a_clear_message(anchored: AuditAnchor, settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.PORTAL_AUDIT_ANCHOR_ENDPOINT_URL = f"http://127.0.0.1:{closed_port}"

    intact, _, err = verify()

    assert not intact
    assert "anchor, chain: S3 could not be reached" in err


def test_the_beat_task_logs_a_failed_write_and_leaves_it_to_the_next_run(
    make_request: Any, s3: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_request(checked=False)
    settings.PORTAL_AUDIT_ANCHOR_BUCKET = "no-such-bucket"

    assert tasks.anchor_audit_heads() == ""
    assert "could not anchor the audit chain heads: S3 answered NoSuchBucket" in caplog.text
    assert not AuditAnchor.objects.exists()


def test_an_endpoint_the_rules_refuse_is_never_sent_the_anchor(make_request: Any, s3: Any, settings: Any) -> None:
    settings.PORTAL_AUDIT_ANCHOR_ENDPOINT_URL = "http://169.254.169.254/"
    make_request(checked=False)

    with pytest.raises(anchor.AnchorError, match="PORTAL_AUDIT_ANCHOR_ENDPOINT_URL is not allowed"):
        anchor.anchor_heads()


def test_without_an_anchor_bucket_verification_warns_that_cuts_go_unseen(make_request: Any, settings: Any) -> None:
    settings.PORTAL_AUDIT_ANCHOR_BUCKET = ""
    make_request(checked=False)

    intact, _, err = verify()

    assert intact
    assert "no anchor is configured (PORTAL_AUDIT_ANCHOR_BUCKET)" in err
    assert anchor.anchor_heads() is None
