"""How fast the audit export writes rows: the old streaming view's row loop against the worker's
file writer (imports.exports), both over the same events, in µs per event.

Run by hand (not by CI), with PostgreSQL (trust auth) on 127.0.0.1:5432:

    .venv/bin/python bench/export.py [--events 1000000] [--requests 1000]
        [--database-url postgres://postgres@127.0.0.1:5432/bench_export] [--skip-before]

The database is created and migrated if missing, then topped up to N events (kept between runs:
sealing and inserting a million events takes a couple of minutes), each sealed as the portal
seals them (imports.audit), so the chain verifies. "before" is the row loop of the streaming view
this replaced (an ORM object per event, a join for the actor, every cell checked for formulas),
measured without HTTP; "after" is a real export built as the worker builds it, into a file.
Prints a markdown table for bench/README.md, and the machine's load.
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_export")
    parser.add_argument("--skip-before", action="store_true", help="measure the new export only")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    server = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(events_wanted: int, requests_wanted: int) -> None:
    """Top the history up to `events_wanted` events over `requests_wanted` requests."""
    import json

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from imports import audit
    from imports.models import AuditChainHead, AwsTarget, ImportRequest, RequestEvent

    have = RequestEvent.objects.count()
    if have >= events_wanted:
        return
    user, _ = get_user_model().objects.get_or_create(username="bench-requester")
    target, _ = AwsTarget.objects.get_or_create(
        name="bench", defaults={"account_id": "123456789012", "region": "us-east-1"}
    )
    missing = requests_wanted - ImportRequest.objects.count()
    if missing > 0:
        ImportRequest.objects.bulk_create(
            ImportRequest(
                target=target,
                requester=user,
                windows_version="11",
                ec2_image_id="ami-0123456789abcdef0",
                ingestion_process="BYOL_REGULAR_WSP",
                image_name=f"bench-{n}-{time.time_ns()}",
                image_description="bench",
                justification="bench",
                state="rejected",
            )
            for n in range(missing)
        )
    request_ids = list(ImportRequest.objects.values_list("pk", flat=True)[:requests_wanted])
    key_id = audit.key_ring().current_id
    started = time.perf_counter()
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"seq": 0, "hash": audit.GENESIS_HASH}
        )
        seq, prev = head.seq, head.hash
        batch: list[RequestEvent] = []
        for n in range(events_wanted - have):
            seq += 1
            event = RequestEvent(
                request_id=request_ids[n % len(request_ids)],
                seq=seq,
                created_at=timezone.now(),
                actor_id=user.pk,
                actor_username=user.username,
                action="reject",
                from_state="submitted",
                to_state="rejected",
                comment="=SUM(A1)" if n % 100 == 0 else "not this quarter",
                data=json.loads(audit.canonical_json({"n": n, "reason": "bench"})),
                prev_hash=prev,
                key_id=key_id,
            )
            event.hash = audit.event_hash(event)
            prev = event.hash
            batch.append(event)
            if len(batch) == 5000:
                RequestEvent.objects.bulk_create(batch)
                batch = []
        RequestEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=prev)
    print(f"seeded {events_wanted - have} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _spreadsheet_safe(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def before(out_path: Path) -> int:
    """The row loop of the streaming view this replaced (views.audit_export at d6539b2)."""
    from imports.audit import canonical_json
    from imports.models import RequestEvent, format_reference

    writer = csv.writer(_Echo())
    rows = 0
    with out_path.open("w", encoding="utf-8") as out:
        for event in RequestEvent.objects.select_related("actor").order_by("seq").iterator(chunk_size=1000):
            out.write(
                writer.writerow(
                    _spreadsheet_safe(value)
                    for value in (
                        event.seq,
                        format_reference(event.request_id),
                        event.created_at.isoformat(),
                        event.actor_name,
                        event.action,
                        event.from_state,
                        event.to_state,
                        event.comment,
                        canonical_json(event.data),
                        event.prev_hash,
                        event.hash,
                    )
                )
            )
            rows += 1
    return rows


def after() -> tuple[int, Path]:
    from django.contrib.auth import get_user_model

    from imports import exports

    user = get_user_model().objects.get(username="bench-requester")
    export = exports.AuditExport.objects.create(requested_by=user)
    built = exports.build_export(export.pk)
    if built is None or built.state != "done":
        raise SystemExit(f"the export failed: {built and built.message}")
    return built.rows, exports.file_path(built)


def main() -> None:
    args = parse_args()
    ensure_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ.update(
        DATABASE_URL=args.database_url, PORTAL_VAR_DIR=str(workdir), DJANGO_SETTINGS_MODULE="portal.settings"
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed(args.events, args.requests)
    results = []
    if not args.skip_before:
        started = time.perf_counter()
        rows = before(workdir / "before.csv")
        seconds = time.perf_counter() - started
        results.append(("before: streaming view's row loop", rows, seconds, (workdir / "before.csv").stat().st_size))
    started = time.perf_counter()
    rows, path = after()
    seconds = time.perf_counter() - started
    results.append(("after: worker's export into a file", rows, seconds, path.stat().st_size))
    print(f"trailer: {path.read_text().splitlines()[-1]}")
    print("| code | events | time | µs per event | file |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rows, seconds, size in results:
        print(f"| {name} | {rows:,} | {seconds:.1f} s | {seconds / rows * 1e6:.1f} | {size / 1e6:.0f} MB |")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
