"""Audit exports: the request history as CSV, written by a worker into a file people download
when it is ready, so no export depends on how long a web request may last.

A file is either complete or absent: it is written under a temporary name and renamed only
once its last line is out, and that last line (`# end: ...`) names how many events it holds
and the chain head it covers, so a copy cut short on its way is recognisable too. Rows are
read in keyset batches over `seq` as plain tuples (no ORM objects, no OFFSET), up to the chain
head as it was when the build started.
"""

import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from imports import dispatch
from imports.audit import GENESIS_HASH, one_snapshot
from imports.models import AuditChainHead, AuditExport, RequestEvent, format_reference

logger = logging.getLogger(__name__)

State = AuditExport.State
BATCH_SIZE = 5000
HEADER = [
    "seq",
    "request",
    "created_at",
    "actor_id",
    "actor_username",
    "action",
    "from_state",
    "to_state",
    "comment",
    "data",
    "prev_hash",
    "hash",
    "key_id",
]
# A worker that died (killed at the hard time limit, the machine gone) leaves its export
# "running": once that limit has certainly passed, it is marked failed.
STUCK_MARGIN = timedelta(minutes=10)
# A queued export whose message the broker lost is sent again after this long.
RESEND_AFTER = timedelta(minutes=5)

MSG_FAILED = "The export stopped before it was complete ({error}); no file was kept. Ask for it again."
MSG_STUCK = "The worker building this export stopped before it was complete; no file was kept. Ask for it again."


def spreadsheet_safe(value: object) -> str:
    # Spreadsheets run cells that start with these as formulas (CSV injection).
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_dir() -> Path:
    return Path(settings.PORTAL_EXPORT_DIR)


def file_path(export: AuditExport) -> Path | None:
    return export_dir() / export.file_name if export.file_name else None


def request_export(
    *, user: Any, date_from: date | None = None, date_to: date | None = None, target: Any = None, request: Any = None
) -> AuditExport:
    export = AuditExport.objects.create(
        requested_by=user, date_from=date_from, date_to=date_to, target=target, request=request
    )
    dispatch.after_commit("build_audit_export", export.pk)
    return export


def describe_filters(export: AuditExport) -> str:
    """The filters in words ("target Sandbox, from 2026-11-01"), empty for the whole history."""
    parts = []
    if export.request_id:
        parts.append(f"request {format_reference(export.request_id)}")
    if export.target_id:
        parts.append(f"target {export.target.name if export.target else export.target_id}")
    if export.date_from:
        parts.append(f"from {export.date_from.isoformat()}")
    if export.date_to:
        parts.append(f"to {export.date_to.isoformat()}")
    return ", ".join(parts)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _event_filter(export: AuditExport) -> Q:
    condition = Q()
    if export.request_id:
        condition &= Q(request_id=export.request_id)
    if export.target_id:
        condition &= Q(request__target_id=export.target_id)
    # Dates are whole days in the portal's time zone, both ends included.
    if export.date_from:
        condition &= Q(created_at__gte=_day_start(export.date_from))
    if export.date_to and export.date_to < date.max:
        condition &= Q(created_at__lt=_day_start(export.date_to + timedelta(days=1)))
    return condition


def event_rows(condition: Q, *, up_to_seq: int, batch_size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    """The CSV rows of the events matching `condition` up to `up_to_seq`, oldest first."""
    events = (
        # No upper bound in SQL: "seq > last ORDER BY seq LIMIT n" is an index range scan whatever
        # the statistics say, where a closed range over a freshly loaded table was planned as a
        # bitmap scan and a sort of everything left (800 µs per event at a million).
        RequestEvent.objects.filter(condition)
        .order_by("seq")
        # The data as the database's JSON text: no decoding and encoding again for every row.
        .annotate(data_text=Cast("data", output_field=TextField()))
        .values_list(
            "seq",
            "request_id",
            "created_at",
            "actor_id",
            "actor_username",
            "action",
            "from_state",
            "to_state",
            "comment",
            "data_text",
            "prev_hash",
            "hash",
            "key_id",
        )
    )
    last_seq = 0
    while True:
        batch = list(events.filter(seq__gt=last_seq)[:batch_size])
        for (
            seq,
            request_id,
            created_at,
            actor_id,
            username,
            action,
            from_,
            to,
            comment,
            data,
            prev,
            hash_,
            key,
        ) in batch:
            if seq > up_to_seq:
                return
            # Only the free-text columns can start like a formula: the others are numbers,
            # timestamps, hex, fixed words, and JSON objects (which start with "{").
            yield [
                seq,
                format_reference(request_id),
                # As the seal has it (imports.audit), so the file can be verified offline.
                created_at.astimezone(UTC).isoformat(),
                actor_id,
                # As sealed: empty for the system (actor_id empty too).
                spreadsheet_safe(username),
                action,
                from_,
                to,
                spreadsheet_safe(comment),
                data,
                prev,
                hash_,
                key,
            ]
        if len(batch) < batch_size:
            return
        last_seq = batch[-1][0]


def trailer(export: AuditExport) -> str:
    filters = describe_filters(export)
    what = f"{export.rows} events matching {filters} (filtered)" if filters else f"{export.rows} events"
    return f"# end: {what}, up to #{export.head_seq}, head {export.head_hash}"


def write_file(export: AuditExport) -> int:
    """Write the export's CSV, trailer last, under a temporary name, and rename it when complete.
    Returns the number of events written; raises (leaving no file) if anything fails."""
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"audit-export-{export.pk}.csv"
    partial = _partial_path(export.pk)
    try:
        with one_snapshot(), partial.open("w", newline="", encoding="utf-8") as out:
            head = AuditChainHead.objects.filter(pk=1).first()
            export.head_seq, export.head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
            writer = csv.writer(out)
            writer.writerow(HEADER)
            rows = 0
            for row in event_rows(_event_filter(export), up_to_seq=export.head_seq):
                writer.writerow(row)
                rows += 1
            export.rows = rows
            out.write(trailer(export) + "\n")
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    export.file_name = final.name
    return rows


def build_export(export_id: int) -> AuditExport | None:
    """Claim a queued export (queued -> running), write it, and mark it done or failed."""
    claimed = AuditExport.objects.filter(pk=export_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return None  # built already, or being built: a message sent twice
    export = AuditExport.objects.select_related("target").get(pk=export_id)
    try:
        write_file(export)
    except Exception as error:
        logger.exception("audit export %s failed", export_id)
        _finish(export, State.FAILED, message=MSG_FAILED.format(error=type(error).__name__))
        return export
    _finish(
        export,
        State.DONE,
        rows=export.rows,
        head_seq=export.head_seq,
        head_hash=export.head_hash,
        file_name=export.file_name,
    )
    return export


def _partial_path(export_id: int) -> Path:
    return export_dir() / f".audit-export-{export_id}.csv.partial"


def _finish(export: AuditExport, state: str, **fields: Any) -> None:
    finished = timezone.now()
    AuditExport.objects.filter(pk=export.pk, state=State.RUNNING).update(state=state, finished_at=finished, **fields)
    export.refresh_from_db()


@dataclass(frozen=True)
class CleanUp:
    deleted: int
    failed_stuck: int
    resent: int


def clean_up(*, now: datetime | None = None) -> CleanUp:
    """Delete exports (and their files) older than PORTAL_EXPORT_RETENTION_DAYS, mark failed the
    ones a dead worker left running, and send again those the broker never delivered."""
    now = now or timezone.now()
    days = settings.PORTAL_EXPORT_RETENTION_DAYS
    old = list(AuditExport.objects.filter(created_at__lt=now - timedelta(days=days)).exclude(state=State.RUNNING))
    for export in old:
        path = file_path(export)
        if path:
            path.unlink(missing_ok=True)
    AuditExport.objects.filter(pk__in=[export.pk for export in old]).delete()
    stuck_after = timedelta(seconds=settings.PORTAL_EXPORT_TIME_LIMIT) + STUCK_MARGIN
    stuck_ids = list(
        AuditExport.objects.filter(state=State.RUNNING, started_at__lt=now - stuck_after).values_list("pk", flat=True)
    )
    stuck = AuditExport.objects.filter(pk__in=stuck_ids, state=State.RUNNING).update(
        state=State.FAILED, finished_at=now, message=MSG_STUCK
    )
    for export_id in stuck_ids:
        _partial_path(export_id).unlink(missing_ok=True)
    lost = list(
        AuditExport.objects.filter(state=State.QUEUED, created_at__lt=now - RESEND_AFTER).values_list("pk", flat=True)
    )
    for export_id in lost:
        dispatch.publish("build_audit_export", (export_id,))
    return CleanUp(deleted=len(old), failed_stuck=stuck, resent=len(lost))
