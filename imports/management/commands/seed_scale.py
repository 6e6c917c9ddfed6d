"""Fill a database with years of made-up history, to see the portal and the admin at scale.

Users, targets, N requests in every state and about ten audit events each (a few requests with
thousands), sealed into a chain that verify_audit accepts. Rows go in with COPY on PostgreSQL
(psycopg 3) and bulk inserts elsewhere, a slice of requests per transaction, each slice moving
the chain's head with it: an interrupted seed leaves a shorter history that still verifies.

The history ends two days before the seed runs (a request every 16 minutes, in id order), so the
dashboard's last weeks hold as many requests as any other weeks.
"""

import random
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models.expressions import BaseExpression
from django.utils import timezone

from imports import audit, roles
from imports.models import AuditChainHead, AwsTarget, EventAction, ImportRequest, RequestEvent, RequestState

MSG_DEBUG_OFF = (
    "seed_scale fills the database with made-up requests and audit events: it runs only with DJANGO_DEBUG on "
    "(--allow-debug-off for a database made for a benchmark)"
)
MSG_NOT_EMPTY = (
    "the request history already holds {count} events: seed_scale adds to it only with --append "
    "(the new events continue the chain)"
)
SEED_PASSWORD = "scale-seed-2026"  # noqa: S105 -- made-up users of a made-up history
SLICE = 2000
# The final states, and how many requests in a hundred end in each: most imports end available.
STATE_WEIGHTS = {
    RequestState.AVAILABLE: 55,
    RequestState.FAILED: 8,
    RequestState.IMPORTING: 6,
    RequestState.SUBMITTING: 2,
    RequestState.APPROVED: 2,
    RequestState.SUBMITTED: 12,
    RequestState.CHANGES_REQUESTED: 4,
    RequestState.REJECTED: 7,
    RequestState.CANCELLED: 4,
}
S, A = RequestState, EventAction
# (action, from, to, who: "requester" | "approver" | None) up to each final state.
LIFECYCLE = {
    S.SUBMITTED: [(A.SUBMIT, "", S.SUBMITTED, "requester"), (A.PREFLIGHT, S.SUBMITTED, S.SUBMITTED, None)],
}
LIFECYCLE[S.CHANGES_REQUESTED] = [*LIFECYCLE[S.SUBMITTED], (A.REQUEST_CHANGES, S.SUBMITTED, S.CHANGES_REQUESTED, "a")]
LIFECYCLE[S.REJECTED] = [*LIFECYCLE[S.SUBMITTED], (A.REJECT, S.SUBMITTED, S.REJECTED, "a")]
LIFECYCLE[S.CANCELLED] = [*LIFECYCLE[S.SUBMITTED], (A.CANCEL, S.SUBMITTED, S.CANCELLED, "requester")]
LIFECYCLE[S.APPROVED] = [*LIFECYCLE[S.SUBMITTED], (A.APPROVE, S.SUBMITTED, S.APPROVED, "a")]
LIFECYCLE[S.SUBMITTING] = [
    *LIFECYCLE[S.APPROVED],
    (A.CLAIM, S.APPROVED, S.SUBMITTING, None),
    (A.IMPORT_CALL, S.SUBMITTING, S.SUBMITTING, None),
]
LIFECYCLE[S.IMPORTING] = [*LIFECYCLE[S.SUBMITTING], (A.AWS_ACCEPTED, S.SUBMITTING, S.IMPORTING, None)]
LIFECYCLE[S.AVAILABLE] = [*LIFECYCLE[S.IMPORTING], (A.IMAGE_AVAILABLE, S.IMPORTING, S.AVAILABLE, None)]
LIFECYCLE[S.FAILED] = [*LIFECYCLE[S.IMPORTING], (A.IMAGE_FAILED, S.IMPORTING, S.FAILED, None)]
ERROR_CODES = ["InvalidImage.BootMode", "OperatingSystem.NotSupported", "DiskSize.TooLarge", "Drivers.Missing"]
DEPARTMENTS = ["finance", "design", "dev", "sales", "support", "hr", "legal", "ops"]


class Command(BaseCommand):
    help = (
        "Fill the database with N made-up requests across users, targets and every state, about ten audit "
        "events each and a few requests with thousands, sealed into a chain verify_audit accepts. "
        "DJANGO_DEBUG only, and only on an empty request history, unless told otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=100_000, help="requests to add (default 100000)")
        parser.add_argument("--events-per-request", type=int, default=10, help="about this many events each")
        parser.add_argument("--busy-requests", type=int, default=3, help="requests with --busy-events events each")
        parser.add_argument("--busy-events", type=int, default=5000, help="events of each busy request")
        parser.add_argument("--users", type=int, default=400, help="requesters to create (approvers: a tenth)")
        parser.add_argument("--targets", type=int, default=6, help="AWS targets to create")
        parser.add_argument("--seed", type=int, default=9, help="random seed, for the same history each time")
        parser.add_argument("--append", action="store_true", help="add to a non-empty history")
        parser.add_argument("--allow-debug-off", action="store_true", help="run even with DJANGO_DEBUG off")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_debug_off"]:
            raise CommandError(MSG_DEBUG_OFF)
        existing = RequestEvent.objects.count()
        if existing and not options["append"]:
            raise CommandError(MSG_NOT_EMPTY.format(count=existing))
        started = time.monotonic()
        # A made-up history, the same for the same --seed: no secret depends on it.
        rng = random.Random(options["seed"])  # noqa: S311
        seeder = Seeder(rng=rng, events_per_request=options["events_per_request"], requests=options["requests"])
        seeder.create_people_and_targets(users=options["users"], targets=options["targets"])
        busy = set(seeder.rng.sample(range(options["requests"]), min(options["busy_requests"], options["requests"])))
        done = 0
        for first in range(0, options["requests"], SLICE):
            count = min(SLICE, options["requests"] - first)
            seeder.add_slice(
                count, busy={i - first for i in busy if first <= i < first + count}, busy_events=options["busy_events"]
            )
            done += count
            if options["verbosity"] > 1 or done % 20_000 == 0 or done == options["requests"]:
                self.stdout.write(f"{done} requests, {seeder.events} events ({time.monotonic() - started:.0f} s)")
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [ImportRequest, RequestEvent]):
                cursor.execute(sql)
            if connection.vendor == "postgresql":
                # A history years old has been vacuumed (the visibility map lets a count read an
                # index alone); VACUUM cannot run in a transaction (a test's), ANALYZE can.
                vacuum = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
                cursor.execute(f"{vacuum} imports_importrequest, imports_requestevent")
        self.stdout.write(
            self.style.SUCCESS(
                f"added {done} requests and {seeder.events} audit events in {time.monotonic() - started:.0f} s"
            )
        )


class Seeder:
    def __init__(self, *, rng: random.Random, events_per_request: int, requests: int) -> None:
        self.rng = rng
        self.events_per_request = events_per_request
        self.events = 0
        self.next_request_id = (ImportRequest.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
        self.next_event_id = (RequestEvent.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
        # The last request two days ago: its events, 30 s apart (5,000 take 42 hours), are past.
        ends = timezone.now().replace(second=0, microsecond=0) - timedelta(days=2)
        self.started = ends - timedelta(minutes=16 * (self.next_request_id - 1 + requests))
        self.key_id = audit.key_ring().current_id

    def create_people_and_targets(self, *, users: int, targets: int) -> None:
        user_model = get_user_model()
        password = make_password(SEED_PASSWORD)
        tag = f"{self.next_request_id:x}"
        people = [
            user_model(username=f"scale-{tag}-{role}{i:04d}", email=f"{role}{i}@scale.example.com", password=password)
            for role, n in (("requester", users), ("approver", max(1, users // 10)))
            for i in range(n)
        ]
        user_model.objects.bulk_create(people, batch_size=1000)
        people = list(user_model.objects.filter(username__startswith=f"scale-{tag}-").order_by("username"))
        self.approvers = [u for u in people if "-approver" in u.username]
        self.requesters = [u for u in people if "-requester" in u.username]
        groups = {g.name: g for g in Group.objects.filter(name__in=[roles.REQUESTERS, roles.APPROVERS])}
        membership = user_model.groups.through
        membership.objects.bulk_create(
            [membership(user_id=u.pk, group_id=groups[roles.REQUESTERS].pk) for u in self.requesters]
            + [membership(user_id=u.pk, group_id=groups[roles.APPROVERS].pk) for u in self.approvers],
            batch_size=1000,
        )
        AwsTarget.objects.bulk_create(
            [
                AwsTarget(
                    name=f"Scale {tag} {region} {i}",
                    account_id=f"{100000000000 + self.rng.randrange(10**11):012d}",
                    region=region,
                    is_active=True,
                )
                for i, region in enumerate(["eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2"] * targets)
                if i < targets
            ]
        )
        self.targets = list(AwsTarget.objects.filter(name__startswith=f"Scale {tag} "))

    def add_slice(self, count: int, *, busy: set[int], busy_events: int) -> None:
        with transaction.atomic():
            head, _ = AuditChainHead.objects.select_for_update().get_or_create(
                pk=audit.REQUEST_CHAIN.head_pk, defaults={"seq": 0, "hash": audit.GENESIS_HASH}
            )
            requests = [self._request(self.next_request_id + i) for i in range(count)]
            self.next_request_id += count
            events = list(self._events(requests, head, busy=busy, busy_events=busy_events))
            insert(ImportRequest, requests)
            insert(RequestEvent, events)
            if events:
                AuditChainHead.objects.filter(pk=head.pk).update(seq=events[-1].seq, hash=events[-1].hash)
            self.events += len(events)

    def _request(self, pk: int) -> ImportRequest:
        rng = self.rng
        state = rng.choices(list(STATE_WEIGHTS), weights=list(STATE_WEIGHTS.values()))[0]
        # About 90 requests a day (100,000 take three years), in id order.
        created = self.started + timedelta(minutes=16 * (pk - 1) + rng.randrange(15))
        requester = rng.choice(self.requesters)
        decided = state not in (S.SUBMITTED,)
        windows = rng.choice(["10", "11"])
        department = rng.choice(DEPARTMENTS)
        aws_image = state in (S.IMPORTING, S.AVAILABLE, S.FAILED)
        return ImportRequest(
            pk=pk,
            target=rng.choice(self.targets),
            requester=requester,
            approver=rng.choice(self.approvers) if decided and state not in (S.CANCELLED,) else None,
            state=state,
            windows_version=windows,
            ec2_image_id=f"ami-{rng.getrandbits(68):017x}",
            ingestion_process=rng.choice(["BYOL_REGULAR_WSP", "BYOL_REGULAR", "BYOL_GRAPHICS_G4DN_WSP"]),
            image_name=f"win{windows}-{department}-{created:%Y%m%d}-{pk:07d}",
            image_description=f"Windows {windows} golden image for {department}, build {rng.randrange(1000, 9999)}",
            justification=f"Quarterly refresh of the {department} desktops.",
            aws_image_id=f"wsi-{rng.getrandbits(36):09x}" if aws_image else "",
            failure={"code": rng.choice(ERROR_CODES), "message": "AWS refused the image"} if state == S.FAILED else {},
            preflight={"version": 1, "ran_at": created.isoformat(), "passed": True, "checks": []},
            import_started_at=created + timedelta(hours=2) if aws_image else None,
            created_at=created,
            updated_at=created + timedelta(hours=3),
        )

    def _events(
        self, requests: Sequence[ImportRequest], head: AuditChainHead, *, busy: set[int], busy_events: int
    ) -> Iterator[RequestEvent]:
        seq, prev = head.seq, head.hash
        for index, request in enumerate(requests):
            for step, (action, from_state, to_state, who) in enumerate(
                self._steps(request, index in busy, busy_events)
            ):
                actor = request.requester if who == "requester" else request.approver if who else None
                seq += 1
                event = RequestEvent(
                    id=self.next_event_id,
                    request_id=request.pk,
                    seq=seq,
                    created_at=request.created_at + timedelta(seconds=30 * step + 1),
                    actor_id=actor.pk if actor else None,
                    actor_username=actor.get_username() if actor else "",
                    action=action,
                    from_state=from_state,
                    to_state=to_state,
                    comment="Looks good." if action == A.APPROVE else "",
                    data=self._data(request, action),
                    prev_hash=prev,
                    key_id=self.key_id,
                )
                self.next_event_id += 1
                event.hash = audit.event_hash(event)
                prev = event.hash
                yield event

    def _steps(self, request: ImportRequest, busy: bool, busy_events: int) -> list[tuple[str, str, str, Any]]:
        steps = [(a, f, t, "approver" if who == "a" else who) for a, f, t, who in LIFECYCLE[request.state]]
        extra = (
            busy_events - len(steps) if busy else max(0, self.events_per_request - len(steps) + self.rng.randint(-2, 2))
        )
        # Filler: checks run again while waiting for a decision, or retries while submitting.
        at = 2 if len(steps) < 5 else 4
        state = steps[at - 1][2]
        filler_action = A.PREFLIGHT if state == S.SUBMITTED else A.IMPORT_RETRY
        filler = [(filler_action, state, state, None)] * extra
        return steps[:at] + filler + steps[at:]

    def _data(self, request: ImportRequest, action: str) -> dict[str, Any]:
        if action == A.PREFLIGHT:
            return {"version": 1, "passed": True, "checks": 5}
        if action == A.IMPORT_CALL:
            return {"ImageName": request.image_name, "Ec2ImageId": request.ec2_image_id}
        if action == A.IMPORT_RETRY:
            return {"error": {"code": "ThrottlingException"}, "wait_seconds": 30}
        if action == A.AWS_ACCEPTED:
            return {"image_id": request.aws_image_id}
        if action == A.IMAGE_FAILED:
            return {"failure": request.failure}
        return {}


def insert(model: type[models.Model], rows: Sequence[models.Model]) -> None:
    """COPY on PostgreSQL (about ten times as fast as INSERT); bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        model.objects.bulk_create(rows, batch_size=500)
        return
    # Fields left to their database default (db_default) are left out of the COPY.
    fields = [f for f in model._meta.concrete_fields if not isinstance(getattr(rows[0], f.attname), BaseExpression)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    # https://www.psycopg.org/psycopg3/docs/basic/copy.html
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [
                    audit.canonical_json(getattr(row, f.attname))
                    if f.attname in json_fields
                    else f.get_db_prep_save(getattr(row, f.attname), connection)
                    for f in fields
                ]
            )
