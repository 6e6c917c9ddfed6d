"""How fast N approved requests are accepted by AWS at the default rate limit, into accounts that
already hold many WorkSpaces images.

Run by hand (not by CI), with PostgreSQL (trust auth) on 127.0.0.1:5432 and Redis on 127.0.0.1:6379:

    .venv/bin/python bench/throughput.py [--requests 500] [--existing 300] [--accounts 1|2]
        [--workers 1] [--concurrency 2] [--database-url postgres://postgres@127.0.0.1:5432/bench_throughput]
        [--redis-db 15] [--timeout 3600]

A database of its own (dropped and created afresh, dropped again at the end), a Redis database
of its own (flushed at the start and the end) and the local AWS sandbox in this process, its
imports PENDING for a day. Each account first gets `--existing` images, imported with plain
boto3 and no rate limiting; the sandbox's call counters are then reset. The N requests are
submitted (nothing queued), their pre-flight checks recorded as passed, then beat and the
worker processes start as production runs them, configured only through the environment, with
the default schedule and rate limit (2 WorkSpaces calls/s, burst 5, per account). Once a worker
is ready, all N are approved in a quick loop, each approval queueing its import for real.

The second account (`--accounts 2`) is reached the way a production target reaches another
account: an AssumeRole target. moto's STS hands out keys that act in the role's account, and the
sandbox answers WorkSpaces calls for the account of the calling key.

Measured: from the first approval to AWS's last acceptance (the sandbox's Created time of the
last image), against the floor the rate limit allows (one call per import: (n - 5) / 2 s for the
busiest account), and every AWS call the portal made, per import.
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::{account_id}:role/WorkSpacesImport"
WINDOWS_AMI = "ami-05eed000000000001"  # a seed AMI of the sandbox: Windows, one 60 GB volume
INGESTION_PROCESS = "BYOL_REGULAR_WSP"
IMPORT_DELAY = 86_400  # the sandbox's maximum: every image stays PENDING for the whole run
# AWS's documented WorkSpaces rate, per account: https://docs.aws.amazon.com/workspaces/latest/api/welcome.html
RATE_PER_SECOND, BURST = 2, 5
WORKSPACES_OPERATIONS = ("ImportWorkspaceImage", "DescribeWorkspaceImages", "DescribeAccount", "DescribeTags")
WAITING_STATES = ("approved", "submitting")
PASSING_CHECKS = [{"key": "ami", "title": "Source AMI", "outcome": "pass", "message": "ok", "aws": {}}]
WORKER_READY_SECONDS = 60
PROGRESS_EVERY_SECONDS = 15


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="approved requests, split evenly over the accounts")
    parser.add_argument("--existing", type=int, default=300, help="images already in each account")
    parser.add_argument("--accounts", type=int, choices=(1, 2), default=1)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/bench_throughput",
        help="a PostgreSQL database that is dropped and created afresh; its name must start with bench",
    )
    parser.add_argument("--redis-db", type=int, default=15, help="flushed at the start and the end")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait after the first approval")
    options = parser.parse_args()
    if options.requests < 1 or options.existing < 0 or options.workers < 1 or options.concurrency < 1:
        parser.error("--requests, --workers and --concurrency must be at least 1, --existing at least 0")
    if not urlsplit(options.database_url).path.lstrip("/").startswith("bench"):
        parser.error("--database-url must name a database starting with 'bench': it is dropped at start and end")
    return options


def portal_environment(options: argparse.Namespace, var_dir: str) -> dict[str, str]:
    """This shell's environment without the portal's own settings, plus the few a run must set:
    everything else (schedule, lease, rate limit) stays at production's defaults."""
    owned = ("AWS_", "CELERY_", "PORTAL_", "DJANGO_", "DATABASE_", "EMAIL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(owned)}
    return env | {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": options.database_url,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{options.redis_db}",
        "PORTAL_VAR_DIR": var_dir,
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
    }


# Before Django: the database and the broker come from the options.
OPTIONS = parse_options()
VAR = tempfile.mkdtemp(prefix="bench-throughput-")
ENV = portal_environment(OPTIONS, VAR)
os.environ.clear()
os.environ.update(ENV, PORTAL_LOG_LEVEL="WARNING")  # this process only: the workers log INFO, "ready" included

import boto3
import django
import psycopg
import redis

django.setup()

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connections

from imports import dispatch, workflow
from imports.models import AwsTarget, ImportRequest, RequestEvent
from sandbox import SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox, seed_images, start_sandbox

ACCOUNTS = (SANDBOX_ACCOUNT_ID, "222233334444")  # moto's default account, and one reached by AssumeRole

# --- the machine's services ----------------------------------------------------------------------


def maintenance_url(database_url: str) -> tuple[str, str]:
    """The URL of the server's `postgres` database, and the name of the benchmark's own."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres", query="")), parts.path.lstrip("/")


def recreate_database(database_url: str, *, create: bool) -> None:
    """Drop the benchmark's database and create it again when asked; refuse to take one that is in
    use. At the end, FORCE ends any session a killed worker left behind."""
    url, name = maintenance_url(database_url)
    with psycopg.connect(url, autocommit=True) as server:
        if create:
            [(sessions,)] = server.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name])
            if sessions:
                fail(f"{sessions} sessions use database {name}: another run of this benchmark, or its workers?")
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            server.execute(f'CREATE DATABASE "{name}"')


def flush_redis(db: int) -> None:
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


# --- worker and beat processes -------------------------------------------------------------------


@dataclass
class Processes:
    """Beat and the workers, each in a session of its own so that killpg reaches prefork children."""

    running: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def spawn(self, name: str, *args: str) -> Path:
        log = Path(VAR, f"{name}.log")
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter and arguments
                [sys.executable, "-m", "celery", "-A", "portal", *args],
                cwd=ROOT,
                env=ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append((name, process, log))
        return log

    def start(self, workers: int, concurrency: int) -> None:
        """As docker-compose runs them; a hostname each, as several workers share this host."""
        self.spawn("beat", "beat", "--loglevel", "INFO")
        logs = [
            self.spawn(
                f"worker-{n}",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"bench{n}@%h",
            )
            for n in range(workers)
        ]
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            self.ensure_alive()
            if time.monotonic() > deadline:
                fail(f"the workers did not report ready within {WORKER_READY_SECONDS} s; logs in {VAR}")
            time.sleep(0.1)

    def ensure_alive(self) -> None:
        for name, process, log in self.running:
            if process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                fail(f"{name} exited with {process.returncode}:\n{tail}")

    def kill(self) -> None:
        for _, process, _ in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.running.clear()


def fail(message: str) -> NoReturn:
    raise SystemExit(f"throughput: {message}")


def interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


# --- setting the scene ---------------------------------------------------------------------------


def boto3_session(sandbox: SandboxHandle, account_id: str) -> boto3.Session:
    """Plain boto3 acting in `account_id`: the sandbox's key, or keys from AssumeRole into it."""
    session = boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=REGION)
    if account_id != ACCOUNTS[0]:
        sts = session.client("sts", endpoint_url=sandbox.url)
        assumed = sts.assume_role(RoleArn=ROLE_ARN.format(account_id=account_id), RoleSessionName="bench-seed")
        keys = assumed["Credentials"]
        session = boto3.Session(
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
            region_name=REGION,
        )
    caller = session.client("sts", endpoint_url=sandbox.url).get_caller_identity()["Account"]
    if caller != account_id:
        fail(f"boto3 meant for account {account_id} acts in {caller}")
    return session


def seed_account(sandbox: SandboxHandle, account_id: str, existing: int) -> None:
    """A Windows AMI the account owns, and `existing` images imported from it."""
    seed_images(account_id=account_id, region=REGION)
    workspaces = boto3_session(sandbox, account_id).client("workspaces", endpoint_url=sandbox.url)
    for n in range(existing):
        workspaces.import_workspace_image(
            Ec2ImageId=WINDOWS_AMI,
            IngestionProcess=INGESTION_PROCESS,
            ImageName=f"existing-{account_id}-{n}",
            ImageDescription="bench - already in the account",
        )
    images = control_sandbox(sandbox.url, "images")["Images"]
    landed = sum(1 for i in images if i["AccountId"] == account_id and i["Name"].startswith(f"existing-{account_id}-"))
    if landed != existing:
        fail(f"{existing} images were imported for account {account_id}, the sandbox has {landed} there")


def make_targets(sandbox: SandboxHandle, accounts: int) -> list[AwsTarget]:
    targets = [
        AwsTarget.objects.create(name="bench-1", account_id=ACCOUNTS[0], region=REGION, endpoint_url=sandbox.url)
    ]
    if accounts == 2:
        targets.append(
            AwsTarget.objects.create(
                name="bench-2",
                account_id=ACCOUNTS[1],
                region=REGION,
                credentials="assume_role",
                role_arn=ROLE_ARN.format(account_id=ACCOUNTS[1]),
                endpoint_url=sandbox.url,
            )
        )
    return targets


def user_in(group: str, username: str) -> Any:
    user = get_user_model().objects.create_user(username)
    user.groups.add(Group.objects.get(name=group))
    return user


def checked_requests(targets: list[AwsTarget], count: int) -> list[ImportRequest]:
    """Submitted with nothing queued, pre-flight checks recorded as passed; spread round-robin."""
    requester = user_in("Requesters", "bench-requester")
    made = []
    with_publish = dispatch.publish
    dispatch.publish = lambda *args, **kwargs: None
    try:
        for n in range(count):
            fields = {
                "target": targets[n % len(targets)],
                "windows_version": "11",
                "ec2_image_id": WINDOWS_AMI,
                "ingestion_process": INGESTION_PROCESS,
                "image_name": f"throughput-{n:05d}",
                "image_description": "bench",
                "tags": [],
                "office": "",
                "justification": "bench",
            }
            request = workflow.submit_request(requester=requester, fields=fields)
            made.append(
                workflow.record_preflight(request_id=request.pk, version=request.version, checks=PASSING_CHECKS)
            )
    finally:
        dispatch.publish = with_publish
    return made


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Progress:
    accepted: int
    failed: int
    waiting: int


def progress(ids: list[int]) -> Progress:
    states = Counter(ImportRequest.objects.filter(pk__in=ids).values_list("state", flat=True))
    accepted = RequestEvent.objects.filter(request_id__in=ids, action="aws_accepted").values("request").distinct()
    return Progress(accepted=accepted.count(), failed=states["failed"], waiting=sum(states[s] for s in WAITING_STATES))


def wait_for_imports(ids: list[int], processes: Processes, timeout: float) -> bool:
    """Until no request is approved or submitting; False when `timeout` ran out first."""
    started = time.monotonic()
    reported = started
    while (current := progress(ids)).waiting:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            return False
        if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
            reported = time.monotonic()
            print(f"  {elapsed:6.0f} s: {current.accepted}/{len(ids)} accepted, {current.failed} failed", flush=True)
        processes.ensure_alive()
        time.sleep(0.5)
    return True


@dataclass
class Result:
    requests: list[ImportRequest]
    targets: list[AwsTarget]
    finished: bool
    approve_loop: float
    calls: dict[str, dict[str, int]]
    images: list[dict[str, Any]]
    first_approval: float
    done: Progress
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    now: float

    def own_images(self) -> list[dict[str, Any]]:
        names = {r.image_name for r in self.requests}
        return [image for image in self.images if image["Name"] in names]

    def last_accepted(self, account_id: str | None = None) -> float | None:
        created = [i["Created"] for i in self.own_images() if account_id in (None, i["AccountId"])]
        return max(created) - self.first_approval if created else None

    def per_account(self) -> list[tuple[str, int, int, float, float | None]]:
        """(account, requests, images made, floor, first approval -> last accepted) per account."""
        counts = Counter(r.target.account_id for r in self.requests)
        images = Counter(image["AccountId"] for image in self.own_images())
        return [
            (a, counts[a], images[a], floor(counts[a]), self.last_accepted(a))
            for a in (t.account_id for t in self.targets)
        ]

    def floor(self) -> float:
        return max(row[3] for row in self.per_account())

    def duplicates(self) -> tuple[int, int]:
        """(names with more than one image, ImportWorkspaceImage calls beyond one per image made)."""
        names = Counter(image["Name"] for image in self.own_images())
        import_calls = self.calls.get("workspaces", {}).get("ImportWorkspaceImage", 0)
        return sum(1 for n in names.values() if n > 1), max(0, import_calls - len(self.own_images()))

    def wrong_account(self) -> int:
        account_of = {r.image_name: r.target.account_id for r in self.requests}
        return sum(1 for image in self.own_images() if image["AccountId"] != account_of[image["Name"]])


def floor(requests: int) -> float:
    """The last of `requests` single calls, at RATE_PER_SECOND after a burst of BURST."""
    return max(0.0, (requests - BURST) / RATE_PER_SECOND)


def run(options: argparse.Namespace, processes: Processes) -> Result:
    load_start = os.getloadavg()
    call_command("migrate", verbosity=0)
    sandbox = start_sandbox(port=0, import_delay=IMPORT_DELAY)
    try:
        for account_id in ACCOUNTS[: options.accounts]:
            seed_account(sandbox, account_id, options.existing)
        control_sandbox(sandbox.url, "reset", {})
        targets = make_targets(sandbox, options.accounts)
        requests = checked_requests(targets, options.requests)
        approver = user_in("Approvers", "bench-approver")
        processes.start(options.workers, options.concurrency)
        started = time.monotonic()
        for request in requests:
            workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
        approve_loop = time.monotonic() - started
        ids = [r.pk for r in requests]
        approvals = RequestEvent.objects.filter(request_id__in=ids, action="approve")
        first_approval = min(approvals.values_list("created_at", flat=True)).timestamp()
        print(f"approved {len(ids)} in {approve_loop:.1f} s; waiting for AWS to accept them", flush=True)
        finished = wait_for_imports(ids, processes, options.timeout - (time.time() - first_approval))
        return Result(
            requests=list(ImportRequest.objects.filter(pk__in=ids).select_related("target")),
            targets=targets,
            finished=finished,
            approve_loop=approve_loop,
            calls=control_sandbox(sandbox.url, "calls?by=service"),
            images=control_sandbox(sandbox.url, "images")["Images"],
            first_approval=first_approval,
            done=progress(ids),
            load_start=load_start,
            load_end=os.getloadavg(),
            now=time.time(),
        )
    finally:
        processes.kill()
        sandbox.stop()


# --- the report ----------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def loads(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in averages)


def per_import(result: Result, service: str, operation: str) -> float:
    return result.calls.get(service, {}).get(operation, 0) / max(1, result.done.accepted)


def report(options: argparse.Namespace, result: Result) -> int:
    """Print the numbers; return the exit status: 1 for a timeout, a failure or a duplicate."""
    elapsed, floor_seconds = result.last_accepted(), result.floor()
    accepted, failed = result.done.accepted, result.done.failed
    duplicate_names, extra_calls = result.duplicates()
    ratio = f"{elapsed / floor_seconds:.3f}" if elapsed is not None and floor_seconds else "-"
    waited = result.now - result.first_approval
    projected = waited * options.requests / accepted if accepted else None
    if not result.finished:
        elapsed_cell = f"TIMEOUT: {accepted} accepted in {waited:.0f} s"
        ratio = f"~{projected / floor_seconds:.1f} projected" if projected and floor_seconds else "-"
    else:
        elapsed_cell = seconds(elapsed)
    workspaces = [per_import(result, "workspaces", op) for op in WORKSPACES_OPERATIONS]
    others = ", ".join(
        f"{service} {operation} {count / max(1, accepted):.2f}"
        for service, operations in sorted(result.calls.items())
        if service != "workspaces"
        for operation, count in sorted(operations.items())
    )
    print()
    print(
        f"{options.requests} requests over {options.accounts} account(s) holding {options.existing} images each; "
        f"{options.workers} worker(s) x {options.concurrency}; {os.cpu_count()} cores; approval loop "
        f"{result.approve_loop:.1f} s; logs in {VAR}"
    )
    print()
    print(
        "| requests | accounts | existing | workers | first approval -> last accepted | floor | ratio "
        "| accepted | failed | duplicates | WorkSpaces calls/import (total: Import + DescribeImages + "
        "DescribeAccount + DescribeTags) | other calls/import | load 1 min start -> end |"
    )
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    print(
        f"| {options.requests} | {options.accounts} | {options.existing} | {options.workers} x {options.concurrency} "
        f"| {elapsed_cell} | {seconds(floor_seconds)} | {ratio} | {accepted} | {failed} "
        f"| {duplicate_names + extra_calls} | {sum(workspaces):.2f}: {' + '.join(f'{v:.2f}' for v in workspaces)} "
        f"| {others or '-'} | {result.load_start[0]:.2f} -> {result.load_end[0]:.2f} |"
    )
    print()
    for account_id, count, images, account_floor, last in result.per_account():
        print(
            f"account {account_id}: {count} requests, {images} images made there, "
            f"last accepted {seconds(last)}, floor {seconds(account_floor)}"
        )
    print(f"names with more than one image {duplicate_names}, extra ImportWorkspaceImage calls {extra_calls}")
    print(f"images in the wrong account {result.wrong_account()}")
    print(f"load average (1, 5, 15 min) at start {loads(result.load_start)}, at end {loads(result.load_end)}")
    status = 0
    if not result.finished:
        status = 1
        print(f"\nTIMEOUT after {waited:.0f} s: {accepted} of {options.requests} accepted, {failed} failed.")
        if projected:
            print(f"at this pace all {options.requests} would take about {projected:.0f} s")
    if failed or duplicate_names or extra_calls or result.wrong_account():
        status = 1
        print("\nFAILED: failed requests, duplicates or images in the wrong account (all must be 0)")
    return status


def main() -> None:
    signal.signal(signal.SIGTERM, interrupted)
    recreate_database(OPTIONS.database_url, create=True)
    flush_redis(OPTIONS.redis_db)
    processes = Processes()
    try:
        status = report(OPTIONS, run(OPTIONS, processes))
    except KeyboardInterrupt:
        status = 130
        print("\ninterrupted: workers stopped, database dropped", file=sys.stderr)
    finally:
        processes.kill()
        connections.close_all()
        recreate_database(OPTIONS.database_url, create=False)
        flush_redis(OPTIONS.redis_db)
    sys.exit(status)


if __name__ == "__main__":
    main()
