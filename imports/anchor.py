"""The audit chains' heads, anchored outside the database.

A beat task writes both chain heads (seq and MAC of the newest event of the request history
and of the admin history) to an S3 bucket created with Object Lock, each anchor a new object
locked in compliance mode: nobody, the bucket's owner included, can change or delete it before
its retention ends. The anchor itself is sealed with the audit key, so an anchor someone else
wrote is recognised as forged.

verify_audit then checks the database against the newest anchor: an event the anchor covers
that was changed and re-sealed, or cut together with the head row moved back, no longer
matches. Only events newer than the newest anchor (at most PORTAL_AUDIT_ANCHOR_SECONDS old)
are covered by the key alone.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
"""

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils import timezone

from imports import audit, aws
from imports.endpoints import endpoint_problem
from imports.models import AuditAnchor, AuditChainHead

ANCHOR_VERSION = 1


class AnchorError(Exception):
    """The anchors could not be written or read; the message says why in plain words."""


def configured() -> bool:
    return bool(settings.PORTAL_AUDIT_ANCHOR_BUCKET)


def _s3() -> Any:
    endpoint = settings.PORTAL_AUDIT_ANCHOR_ENDPOINT_URL
    problem = endpoint_problem(endpoint) if endpoint else ""
    if problem:
        raise AnchorError(f"PORTAL_AUDIT_ANCHOR_ENDPOINT_URL is not allowed: {problem}")
    return boto3.session.Session().client(
        "s3",
        region_name=settings.PORTAL_AUDIT_ANCHOR_REGION or None,
        endpoint_url=endpoint or None,
        config=aws._config(attempts=3),
    )


def _explain(exc: Exception) -> AnchorError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return AnchorError(f"S3 answered {error.get('Code', 'an error')}: {error.get('Message', '')}".rstrip(": "))
    return AnchorError(f"S3 could not be reached: {exc}")


def object_key(request_seq: int, admin_seq: int) -> str:
    # Both heads only ever grow, so the keys of later anchors sort after earlier ones.
    return f"{settings.PORTAL_AUDIT_ANCHOR_PREFIX}{request_seq:020d}-{admin_seq:020d}.json"


def _sealed_body(heads: dict[str, dict[str, Any]], written_at: datetime) -> dict[str, Any]:
    ring = audit.key_ring()
    body = {"version": ANCHOR_VERSION, "written_at": written_at.isoformat(), "chains": heads, "key_id": ring.current_id}
    return body | {"mac": audit.mac(ring.keys[ring.current_id], body)}


def current_heads() -> dict[str, dict[str, Any]]:
    heads = {row.pk: row for row in AuditChainHead.objects.filter(pk__in=[c.head_pk for c in audit.CHAINS])}
    return {
        chain.name: {
            "seq": heads[chain.head_pk].seq if chain.head_pk in heads else 0,
            "hash": heads[chain.head_pk].hash if chain.head_pk in heads else audit.GENESIS_HASH,
        }
        for chain in audit.CHAINS
    }


def anchor_heads() -> AuditAnchor | None:
    """Write the chain heads to the bucket, unless the newest anchor already holds them."""
    if not configured():
        return None
    with audit.one_snapshot():
        heads = current_heads()
    request_seq, admin_seq = (heads[c.name]["seq"] for c in audit.CHAINS)
    key = object_key(request_seq, admin_seq)
    if AuditAnchor.objects.filter(object_key=key).exists():
        return None
    written_at = timezone.now()
    retain_until = written_at + timedelta(days=settings.PORTAL_AUDIT_ANCHOR_RETENTION_DAYS)
    try:
        answer = _s3().put_object(
            Bucket=settings.PORTAL_AUDIT_ANCHOR_BUCKET,
            Key=key,
            Body=json.dumps(_sealed_body(heads, written_at), sort_keys=True).encode(),
            ContentType="application/json",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=retain_until,
            # Object Lock needs an integrity checksum on every write.
            ChecksumAlgorithm="SHA256",
        )
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc) from exc
    return AuditAnchor.objects.create(
        written_at=written_at,
        object_key=key,
        version_id=answer.get("VersionId") or "",
        request_seq=request_seq,
        admin_seq=admin_seq,
    )


@dataclass(frozen=True)
class Anchor:
    object_key: str
    written_at: str
    heads: dict[str, dict[str, Any]]


def newest_anchor() -> Anchor | None:
    """The newest anchor in the bucket (None if there is none yet), its seal checked.

    The database's note of the newest anchor it wrote only says where to start listing: every
    anchor written after that one is listed too, so a note moved back changes nothing, and a
    note naming an anchor the bucket lacks is reported.
    """
    s3, bucket, prefix = _s3(), settings.PORTAL_AUDIT_ANCHOR_BUCKET, settings.PORTAL_AUDIT_ANCHOR_PREFIX
    noted = AuditAnchor.objects.order_by("-request_seq", "-admin_seq").first()
    newest = None
    try:
        if noted is not None:
            s3.head_object(Bucket=bucket, Key=noted.object_key)
            newest = noted.object_key
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, **({"StartAfter": newest} if newest else {})
        ):
            keys = [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")]
            newest = max([*keys, *([newest] if newest else [])]) if keys else newest
        if newest is None:
            return None
        body = s3.get_object(Bucket=bucket, Key=newest)["Body"].read()
    except ClientError as exc:
        if noted is not None and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise AnchorError(f"the database notes an anchor {noted.object_key} that the bucket does not hold") from exc
        raise _explain(exc) from exc
    except BotoCoreError as exc:
        raise _explain(exc) from exc
    return _opened(newest, body)


def _opened(key: str, body: bytes) -> Anchor:
    try:
        document = json.loads(body)
        sealed = {k: v for k, v in document.items() if k != "mac"}
        key_bytes = audit.key_ring().keys.get(document.get("key_id", ""))
        heads = document["chains"]
    except (ValueError, AttributeError, KeyError) as exc:
        raise AnchorError(f"the anchor {key} is not one the portal wrote: it cannot be read") from exc
    if key_bytes is None:
        raise AnchorError(
            f"the anchor {key} is sealed with key {document.get('key_id')!r}, which the portal does not hold"
        )
    if not hmac.compare_digest(audit.mac(key_bytes, sealed), str(document.get("mac", ""))):
        raise AnchorError(f"the anchor {key} does not carry the portal's seal: it was forged")
    return Anchor(object_key=key, written_at=str(document.get("written_at", "")), heads=heads)


def check_against(anchor: Anchor, reports: dict[str, audit.ChainReport]) -> list[audit.ChainProblem]:
    """What in the database disagrees with `anchor`: per chain, the anchored event must still be
    there with the anchored seal, and the head must not be behind it."""
    problems = []
    for chain in audit.CHAINS:
        anchored = anchor.heads.get(chain.name, {"seq": 0, "hash": audit.GENESIS_HASH})
        seq, sealed = int(anchored["seq"]), anchored["hash"]
        if seq == 0:
            continue
        where = f"the anchor written {_when(anchor.written_at)} ({anchor.object_key})"
        report = reports[chain.name]
        if report.up_to_seq < seq:
            problems.append(
                audit.ChainProblem(
                    None,
                    f"{chain.name}: {where} holds event #{seq}, but the database ends at #{report.up_to_seq}: "
                    f"events #{report.up_to_seq + 1} to #{seq} were cut",
                )
            )
            continue
        event = audit.event_at(chain, seq)
        if event is None or not hmac.compare_digest(event.hash, sealed):
            problems.append(
                audit.ChainProblem(
                    seq,
                    f"{chain.name}: differs from {where}: the history up to it was rewritten",
                )
            )
    return problems


def _when(written_at: str) -> str:
    try:
        return datetime.fromisoformat(written_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return "at an unknown time"
