"""The import end to end with real Celery worker processes, celery beat and Redis (no eager
mode), against the local AWS sandbox: approve -> worker -> sandbox -> `available`, and every
fault that passes without ending a request: a worker killed while its import call is in flight
(another takes over), a worker shut down warmly mid-call, a broker that is down or paused when
a manager approves, AWS unreachable for a while, workers down while beat keeps sweeping.

Needs PostgreSQL (the worker is another process and must see this test's committed rows, which
SQLite's in-memory test database cannot share) and Redis on 127.0.0.1:6379; skipped with the
reason otherwise. `.ci/run` runs the suite on PostgreSQL with Redis up.

Each test claims an empty Redis database of its own (emptied again at the end), its own worker
and beat processes (their own session, so one killpg ends the prefork child too) and short timings from
the environment. The sandbox runs in a thread of this process; the worker reaches it over HTTP.
"""

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import kombu.pools
import pytest
import redis
from django.contrib.auth import get_user_model
from django.db import connection

from imports import dispatch, roles, webhooks, workflow
from imports.dispatch import publish as REAL_PUBLISH  # captured before the autouse fixture fakes it
from imports.models import AwsTarget, ImportRequest, RolloutStep, WebhookDelivery, WebhookSubscription
from imports.tests.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    Receiver,
    make_user,
    pass_preflight,
    request_fields,
    require_redis,
    unavailable,
)
from portal.celery import app as celery_app
from sandbox import DEFAULT_REGION, SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox, start_sandbox

pytestmark = pytest.mark.postgres

State = ImportRequest.State
PROJECT_DIR = Path(__file__).resolve().parents[2]
# Redis databases for these tests: away from 0 (the README's production default), from 8
# (test_settings' shared cache) and from 14 (bench/approval_latency.py's default). Each test
# claims an empty one, starting from the next number in turn, and empties it again at the end.
REDIS_DBS = (10, 11, 12, 13)
_next_redis_db = itertools.count()
REDIS_OWNER_KEY = "byol-portal:e2e-test-owner"
WINDOWS_AMI = "ami-05eed000000000001"  # seeded by the sandbox, owned by SANDBOX_ACCOUNT_ID
IMPORT_DELAY = 2.0  # seconds the sandbox keeps an imported image PENDING
CALL_LATENCY_MS = 3000  # injected on ImportWorkspaceImage in the crash test
# Short timings for the worker and beat. The lease outlasts the hard time limit, which outlasts
# the injected latency, as settings.py requires of real deployments.
LEASE_SECONDS = 8
SOFT_TIME_LIMIT = 6
HARD_TIME_LIMIT = 7
WORKER_READY_SECONDS = 30
DONE_WITHIN_SECONDS = 60
# Generous bounds, so that these tests fail on a click that waits for the broker, never on a slow
# machine; bench/recovery.py measures the real times with the default settings.
PAUSED_APPROVAL_BOUND_SECONDS = 10.0
OUTAGE_REQUESTS = 3
OUTAGE_SECONDS = 6.0
WORKERS_DOWN_SECONDS = 5.0
QUEUE = "celery"  # Celery's default queue: a Redis list of that name


# --- what the tests need from the machine ------------------------------------------------------


@pytest.fixture
def _postgresql_and_redis() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: the Celery worker is another process and cannot see SQLite's in-memory "
            "test database; run with DATABASE_URL=postgres://... (.ci/run does)"
        )
    require_redis()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=IMPORT_DELAY)
    yield handle
    handle.stop()


def control(sandbox: SandboxHandle, name: str, body: dict[str, Any] | None = None) -> Any:
    return control_sandbox(sandbox.url, name, body)


def import_calls(sandbox: SandboxHandle) -> int:
    return control(sandbox, "calls").get("ImportWorkspaceImage", 0)


def sandbox_images(sandbox: SandboxHandle, name: str) -> list[dict[str, Any]]:
    return [image for image in control(sandbox, "images")["Images"] if image["Name"] == name]


def database_url_for_workers(application_name: str) -> str:
    """The URL of the database this test runs on (pytest-django's test_... database), with an
    application_name that tells the workers' sessions apart in pg_stat_activity."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host, port, name = db["HOST"] or "127.0.0.1", db["PORT"] or 5432, quote(db["NAME"], safe="")
    return f"postgres://{credentials}@{host}:{port}/{name}?application_name={application_name}"


def unused_port() -> int:
    """A local TCP port that nothing listens on: one the kernel picks for a bind, released at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- worker and beat processes ------------------------------------------------------------------


@dataclass
class Workers:
    """Worker and beat subprocesses of one test, on one broker, and this process's publisher."""

    broker_url: str
    workdir: Path
    set_publisher_broker: Callable[[str], None]
    timings: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    application_name: str = field(default_factory=lambda: f"byol-e2e-{uuid.uuid4().hex[:12]}")

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CELERY_"))}
        env |= {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": database_url_for_workers(self.application_name),
            "CELERY_BROKER_URL": self.broker_url,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "PORTAL_VAR_DIR": str(self.workdir / "var"),
            "PORTAL_IMPORT_LEASE_SECONDS": str(LEASE_SECONDS),
            "PORTAL_POLL_SECONDS": "1",
            "PORTAL_SWEEP_SECONDS": "1",
            "PORTAL_UNCLAIMED_AFTER_SECONDS": "1",
            "PORTAL_RETRY_MAX_SECONDS": "5",
            "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_TIME_LIMIT),
            "CELERY_TASK_TIME_LIMIT": str(HARD_TIME_LIMIT),
            "PYTHONUNBUFFERED": "1",
        }
        return env | self.timings

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter and arguments
                [sys.executable, "-m", "celery", "-A", "portal", *args],
                cwd=PROJECT_DIR,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the prefork child
            )
        self.processes.append((name, process, log))
        return process

    def start_worker(self) -> subprocess.Popen[bytes]:
        process = self._spawn(
            "worker",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"e2e-{uuid.uuid4().hex[:8]}@%h",
        )
        log = self.processes[-1][2]
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if " ready." in log.read_text(errors="replace"):
                return process
            if process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"the worker did not report ready.:\n{self.logs()}")

    def worker_that_received(self, task_prefix: str) -> subprocess.Popen[bytes]:
        """The worker process whose log says it received a task whose id starts so."""
        for name, process, log in self.processes:
            if name == "worker" and f"Task {task_prefix}" in log.read_text(errors="replace"):
                return process
        pytest.fail(f"no worker received {task_prefix}:\n{self.logs()}")

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self._spawn("beat", "beat", "--loglevel", "INFO", "--schedule", str(self.workdir / "beat-schedule"))

    def start(self) -> None:
        self.start_worker()
        self.start_beat()

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process's whole group (the prefork child too) and reap the parent."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for _, process, _ in self.processes:
            self.kill(process)

    def logs(self) -> str:
        parts = []
        for name, process, log in self.processes:
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            parts.append(f"===== {name} pid {process.pid} ({log.name}), last 150 lines =====")
            parts.extend(lines[-150:])
        return "\n".join(parts)


def wait_for_sessions_to_end(application_name: str, seconds: float = 10) -> None:
    """A SIGKILLed worker's PostgreSQL session ends once the server notices; the clean-up flush and
    the final DROP DATABASE must not find it."""
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_redis_db() -> int:
    """An empty Redis database of REDIS_DBS, marked with this process's id so that a concurrent
    run passes it by. Never one that holds someone else's keys; a database left behind by a run
    that died (its owner process is gone) is emptied and taken."""
    start = next(_next_redis_db)
    for db in (REDIS_DBS[(start + i) % len(REDIS_DBS)] for i in range(len(REDIS_DBS))):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        owner = client.get(REDIS_OWNER_KEY)
        if owner is not None and not _alive(int(owner)):
            client.flushdb()
        if client.set(REDIS_OWNER_KEY, os.getpid(), nx=True):
            if client.dbsize() == 1:
                return db
            client.delete(REDIS_OWNER_KEY)
    unavailable(f"no empty Redis database among {REDIS_DBS} on {REDIS_HOST}:{REDIS_PORT}: they hold others' keys")


def reset_publisher_pool() -> None:
    """Make this process's Celery app connect afresh, to whatever broker_url now says: close and
    forget kombu's pooled connections and producers, and the app's references to its pools
    (Celery itself does the same after a fork, in Celery._after_fork)."""
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def celery(
    _postgresql_and_redis: None,
    committed_db: None,
    published: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
) -> Iterator[Workers]:
    """Real publishing from this process, a fresh Redis database, and worker/beat processes that
    are always killed (and their logs printed, shown when the test fails) at the end."""
    broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{claim_redis_db()}"
    control(sandbox, "reset", {})
    control(sandbox, "config", {"import_delay": IMPORT_DELAY, "image_quota": None})
    original_broker = settings.CELERY_BROKER_URL
    monkeypatch.setattr(dispatch, "publish", REAL_PUBLISH)

    def set_publisher_broker(url: str) -> None:
        # portal.celery.app reads CELERY_* lazily from Django settings; check that it follows.
        settings.CELERY_BROKER_URL = url
        # The embedded broker's transport class (portal.filesystem_broker) is chosen in settings
        # for a filesystem:// URL; another URL goes with the transport its scheme names.
        settings.CELERY_BROKER_TRANSPORT = None
        assert celery_app.conf.broker_url == url
        reset_publisher_pool()

    cluster = Workers(broker_url=broker_url, workdir=tmp_path, set_publisher_broker=set_publisher_broker)
    set_publisher_broker(broker_url)
    try:
        yield cluster
    finally:
        cluster.stop()
        print(cluster.logs())  # pytest shows it only when the test fails
        settings.CELERY_BROKER_URL = original_broker
        reset_publisher_pool()
        redis.Redis.from_url(broker_url).flushdb()
        wait_for_sessions_to_end(cluster.application_name)


# --- the request --------------------------------------------------------------------------------


@dataclass
class Scenario:
    request: ImportRequest
    approver: Any


def make_checked_request(sandbox: SandboxHandle, name: str, plan: dict[str, Any] | None = None) -> Scenario:
    """A submitted request for the sandbox's Windows AMI whose pre-flight checks passed. Its
    submission's `run_preflight_checks` is not queued: only the approval's message is."""
    requester = get_user_model().objects.filter(username="rita").first() or make_user(
        "rita", groups=(roles.REQUESTERS,)
    )
    approver = get_user_model().objects.filter(username="anna").first() or make_user("anna", groups=(roles.APPROVERS,))
    target, _ = AwsTarget.objects.get_or_create(
        name="Sandbox",
        defaults={"account_id": SANDBOX_ACCOUNT_ID, "region": DEFAULT_REGION, "endpoint_url": sandbox.url},
    )
    image_name = f"e2e-{name}-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "publish", lambda name, args, **marks: None)
        request = workflow.submit_request(
            requester=requester,
            fields=request_fields(target, ec2_image_id=WINDOWS_AMI, image_name=image_name, delivery_plan=plan or {}),
        )
    return Scenario(request=pass_preflight(request), approver=approver)


@pytest.fixture
def checked_request(celery: Workers, sandbox: SandboxHandle) -> Scenario:
    return make_checked_request(sandbox, "one")


@dataclass
class PausableRedis:
    """A Redis server of this test's own, which it can pause (SIGSTOP: connections stay open and
    nothing answers, as a stuck or overloaded broker) and resume."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def paused_redis(tmp_path: Path) -> Iterator[PausableRedis]:
    server = shutil.which("redis-server")
    if server is None:
        unavailable("needs redis-server on PATH to run a broker it can pause")
    port = unused_port()
    process = subprocess.Popen(  # noqa: S603 -- Debian's redis-server with our arguments
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    handle = PausableRedis(process=process, port=port)
    try:
        deadline = time.monotonic() + 10
        while not _answers_ping(port):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("the test's own redis-server did not start")
            time.sleep(0.05)
        yield handle
    finally:
        handle.resume()
        process.kill()
        process.wait(timeout=10)


def _answers_ping(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.ConnectionError:
        return False


def approve(scenario: Scenario) -> ImportRequest:
    return workflow.approve_request(request_id=scenario.request.pk, actor=scenario.approver, expected_version=1)


def actions(request: ImportRequest) -> list[str]:
    return list(request.events.order_by("seq").values_list("action", flat=True))


def wait_until(
    what: str | Callable[[], str], condition: Callable[[], bool], celery: Workers, seconds: float = DONE_WITHIN_SECONDS
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"not within {seconds} s: {what() if callable(what) else what}\n{celery.logs()}")


# States the worker and beat never move a request out of by themselves.
SETTLED = (State.AVAILABLE, State.FAILED, State.REJECTED, State.CANCELLED)


def wait_until_settled(request: ImportRequest, celery: Workers) -> None:
    """Until the request is available, or failed (returns at once: the caller's assertions say why,
    and the `celery` fixture prints the processes' logs for a failed test)."""

    def settled() -> bool:
        request.refresh_from_db()
        return request.state in SETTLED

    def progress() -> str:
        return f"{request.reference} available or failed; it is {request.state}, history {actions(request)}"

    wait_until(progress, settled, celery)


def queued_tasks(broker_url: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of every message waiting in the Redis queue, oldest first."""
    messages = [json.loads(raw) for raw in reversed(redis.Redis.from_url(broker_url).lrange(QUEUE, 0, -1))]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


# --- the tests ----------------------------------------------------------------------------------


def test_an_approved_request_is_imported_by_a_real_worker_until_available(
    celery: Workers, checked_request: Scenario, sandbox: SandboxHandle
) -> None:
    # The sweeper stays out of it: only the approval's own message can start this import.
    celery.timings["PORTAL_UNCLAIMED_AFTER_SECONDS"] = "300"

    approved = approve(checked_request)

    assert approved.state == State.APPROVED
    assert dispatch.flush(10)
    assert queued_tasks(celery.broker_url) == [("imports.tasks.import_request", [approved.pk])]
    approved.refresh_from_db()
    assert approved.dispatched_at is not None  # the broker took the message

    celery.start()
    wait_until_settled(approved, celery)

    assert approved.state == State.AVAILABLE, (approved.failure, actions(approved))
    assert approved.aws_image_id.startswith("wsi-")
    assert approved.import_calls == 1
    assert approved.lease_expires_at is None
    assert actions(approved) == [
        "submit",
        "preflight",
        "approve",
        "claim",
        "import_call",
        "aws_accepted",
        "image_available",
    ]
    assert approved.events.get(action="approve").actor == checked_request.approver
    worker_events = approved.events.filter(action__in=["claim", "import_call", "aws_accepted", "image_available"])
    assert {event.actor_id for event in worker_events} == {None}
    assert approved.events.get(action="aws_accepted").data["aws_image_id"] == approved.aws_image_id
    assert import_calls(sandbox) == 1
    [image] = sandbox_images(sandbox, approved.image_name)
    assert (image["ImageId"], image["State"], image["Ec2ImageId"]) == (approved.aws_image_id, "AVAILABLE", WINDOWS_AMI)


def test_a_worker_killed_during_the_import_call_is_taken_over_by_another_and_aws_is_called_once(
    celery: Workers, checked_request: Scenario, sandbox: SandboxHandle
) -> None:
    # The sweeper's re-sending of `approved` requests is off: only the lapsed lease can bring the
    # import back, to the worker that is still running.
    celery.timings["PORTAL_UNCLAIMED_AFTER_SECONDS"] = "300"
    control(sandbox, "faults", {"latency_ms": CALL_LATENCY_MS, "operations": ["ImportWorkspaceImage"]})
    celery.start_worker()
    celery.start_worker()
    celery.start_beat()
    request = approve(checked_request)

    # record_import_call commits before the call; the sandbox counts the call as it arrives and
    # answers CALL_LATENCY_MS later, so the worker is now waiting for AWS's answer.
    def call_in_flight() -> bool:
        return request.events.filter(action="import_call").exists() and import_calls(sandbox) == 1

    wait_until("the import call in flight", call_in_flight, celery)
    holder = celery.worker_that_received("imports.tasks.import_request[")
    Workers.kill(holder)

    request.refresh_from_db()
    assert request.state == State.SUBMITTING, "the worker died before it could record AWS's answer"
    assert (request.import_calls, request.import_call_pending) == (1, True)
    wait_until_settled(request, celery)

    assert request.state == State.AVAILABLE, (request.failure, actions(request))
    assert request.import_calls == 1
    assert actions(request) == [
        "submit",
        "preflight",
        "approve",
        "claim",
        "import_call",
        "reclaim",
        "aws_accepted",
        "image_available",
    ]
    assert request.events.get(action="reclaim").data == {
        "reason": "lease expired",
        "import_calls_so_far": 1,
        "outcome_unknown": True,
    }
    # The killed call still reached AWS (the sandbox made the image once its latency was over):
    # the other worker found it by name and adopted it instead of calling again.
    accepted = request.events.get(action="aws_accepted").data
    assert accepted["adopted"] is True
    assert accepted["aws_image_id"] == request.aws_image_id
    assert import_calls(sandbox) == 1
    [image] = sandbox_images(sandbox, request.image_name)
    assert (image["ImageId"], image["State"]) == (request.aws_image_id, "AVAILABLE")


def test_a_worker_shut_down_warmly_during_a_slow_aws_call_finishes_the_import_first(
    celery: Workers, checked_request: Scenario, sandbox: SandboxHandle
) -> None:
    control(sandbox, "faults", {"latency_ms": CALL_LATENCY_MS, "operations": ["ImportWorkspaceImage"]})
    worker = celery.start_worker()
    request = approve(checked_request)
    wait_until("the import call in flight", lambda: import_calls(sandbox) == 1, celery)

    worker.send_signal(signal.SIGTERM)  # what `docker compose stop` sends first

    assert worker.wait(timeout=HARD_TIME_LIMIT + 10) == 0, celery.logs()
    request.refresh_from_db()
    assert (request.state, request.import_calls) == (State.IMPORTING, 1), actions(request)
    assert request.lease_token == ""
    assert import_calls(sandbox) == 1


def test_an_approval_with_the_broker_down_returns_at_once_and_the_sweeper_imports_it_later(
    celery: Workers, checked_request: Scenario, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    dead_broker = f"redis://127.0.0.1:{unused_port()}/0"
    celery.set_publisher_broker(dead_broker)

    request = approve(checked_request)

    assert request.state == State.APPROVED
    request.refresh_from_db()
    assert request.state == State.APPROVED
    approval = request.events.get(action="approve")
    assert (approval.actor, approval.from_state, approval.to_state) == (
        checked_request.approver,
        "submitted",
        "approved",
    )
    assert dispatch.flush(10)  # the outbox tried, and gave up on the dead broker
    assert any(
        r.name == "imports.dispatch" and "could not queue import_request" in r.getMessage() for r in caplog.records
    )
    request.refresh_from_db()
    assert request.dispatched_at is None  # nothing says it is on its way: the sweeper will send it
    assert queued_tasks(celery.broker_url) == []

    # The broker is back: the sweeper sends the approval's import.
    celery.set_publisher_broker(celery.broker_url)
    celery.start()
    wait_until_settled(request, celery)

    assert request.state == State.AVAILABLE, (request.failure, actions(request))
    assert request.import_calls == 1
    assert actions(request)[2:] == ["approve", "claim", "import_call", "aws_accepted", "image_available"]
    assert import_calls(sandbox) == 1


def test_an_approval_while_the_broker_is_paused_answers_and_the_import_starts_when_it_resumes(
    celery: Workers, checked_request: Scenario, sandbox: SandboxHandle, paused_redis: "PausableRedis"
) -> None:
    celery.broker_url = paused_redis.url
    celery.set_publisher_broker(paused_redis.url)
    celery.start()
    dispatch.publish("sweep_lost_work", ())  # a first message, so the publisher's connection is open
    assert dispatch.flush(10)
    paused_redis.pause()

    approving = threading.Thread(target=approve, args=(checked_request,), daemon=True)
    approving.start()
    approving.join(timeout=PAUSED_APPROVAL_BOUND_SECONDS)

    assert not approving.is_alive(), "the approval waited for the paused broker"
    request = checked_request.request
    request.refresh_from_db()
    assert request.state == State.APPROVED
    assert import_calls(sandbox) == 0

    paused_redis.resume()
    wait_until_settled(request, celery)

    assert request.state == State.AVAILABLE, (request.failure, actions(request))
    assert import_calls(sandbox) == 1


def test_every_request_waiting_through_an_aws_outage_is_imported_once_aws_is_back(
    celery: Workers, sandbox: SandboxHandle
) -> None:
    celery.timings["PORTAL_RETRY_MAX_SECONDS"] = "2"
    scenarios = [make_checked_request(sandbox, f"outage-{n}") for n in range(OUTAGE_REQUESTS)]
    control(sandbox, "faults", {"down": True})
    celery.start()
    for scenario in scenarios:
        approve(scenario)
    requests = [scenario.request for scenario in scenarios]

    def all_waiting_for_aws() -> bool:
        waiting = ImportRequest.objects.filter(pk__in=[r.pk for r in requests], waiting__reason="transient")
        return waiting.count() == len(requests)

    wait_until("every request waiting for AWS", all_waiting_for_aws, celery)
    time.sleep(OUTAGE_SECONDS)
    for request in requests:
        request.refresh_from_db()
        assert request.state == State.SUBMITTING, (request.failure, actions(request))
        assert request.waiting["message"].startswith("The portal could not reach AWS")
    assert import_calls(sandbox) == 0  # AWS was never reached: the connections were dropped

    control(sandbox, "faults", {"down": False})
    for request in requests:
        wait_until_settled(request, celery)

    for request in requests:
        assert request.state == State.AVAILABLE, (request.failure, actions(request))
        assert request.import_calls == 1
        assert actions(request).count("import_retry") >= 1
    assert import_calls(sandbox) == len(requests)
    for request in requests:
        [image] = sandbox_images(sandbox, request.image_name)
        assert image["ImageId"] == request.aws_image_id


def test_while_workers_are_down_the_sweeper_queues_nothing_twice(celery: Workers, sandbox: SandboxHandle) -> None:
    scenarios = [make_checked_request(sandbox, f"down-{n}") for n in range(2)]
    celery.start_beat()  # beat keeps sending sweeps; nobody runs them
    for scenario in scenarios:
        approve(scenario)
    assert dispatch.flush(10)
    time.sleep(WORKERS_DOWN_SECONDS)

    celery.start_worker()
    for scenario in scenarios:
        wait_until_settled(scenario.request, celery)
    time.sleep(3)  # a few sweeps with the requests imported

    log = celery.logs()
    for scenario in scenarios:
        request = scenario.request
        assert request.state == State.AVAILABLE, (request.failure, actions(request))
        assert actions(request).count("claim") == 1
    received = [
        line for line in log.splitlines() if "Task imports.tasks.import_request[" in line and "received" in line
    ]
    # One message per approval, and not one more from the sweeps that ran once the worker was back.
    assert len(received) == len(scenarios), received
    assert import_calls(sandbox) == len(scenarios)


# --- the delivery plan's steps ------------------------------------------------------------------

AWAY_REGION = "eu-west-1"
PARTNER_ACCOUNT = "210987654321"
STEP_CALLS = ["CreateWorkspaceBundle", "CopyWorkspaceImage", "UpdateWorkspaceImagePermission"]


def rollout_plan(name: str) -> dict[str, Any]:
    bundle = {
        "name": name,
        "description": "Standard desktops",
        "compute_type": "STANDARD",
        "root_gb": 80,
        "user_gb": 50,
    }
    return {
        "bundle": bundle,
        "copies": [{"region": AWAY_REGION, "bundle": True}],
        "shares": [{"account_id": PARTNER_ACCOUNT, "region": DEFAULT_REGION}],
    }


def bundles_named(sandbox: SandboxHandle, region: str, name: str) -> list[dict[str, Any]]:
    workspaces = boto3.client(
        "workspaces",
        region_name=region,
        endpoint_url=sandbox.url,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    return [b for b in workspaces.describe_workspace_bundles()["Bundles"] if b["Name"] == name]


def wait_until_rolled_out(request: ImportRequest, celery: Workers) -> None:
    def ended() -> bool:
        request.refresh_from_db()
        return request.state == State.FAILED or (request.state == State.AVAILABLE and request.rollout != "running")

    def progress() -> str:
        steps = list(request.steps.values_list("kind", "region", "state"))
        return f"{request.reference} rolled out; it is {request.state}/{request.rollout}, steps {steps}"

    wait_until(progress, ended, celery, seconds=DONE_WITHIN_SECONDS * 2)


def test_every_step_of_a_plan_waits_through_throttling_and_server_errors_and_ends_done_once(
    celery: Workers, sandbox: SandboxHandle
) -> None:
    name = f"e2e-bundle-{uuid.uuid4().hex[:8]}"
    scenario = make_checked_request(sandbox, "plan", rollout_plan(name))
    # Every step's call is throttled, then answered with a 5xx (which may hide what it made), then
    # AWS is well again: each step waits and tries again, and none is made twice.
    control(sandbox, "faults", {"throttle_rate": 1.0, "operations": STEP_CALLS})
    celery.start()
    request = approve(scenario)
    wait_until_settled(request, celery)
    assert request.state == State.AVAILABLE, (request.failure, actions(request))

    def every_step_throttled() -> bool:
        retried = request.events.filter(action="step_retry").values_list("data__step", flat=True)
        # The steps that can start at once (the bundle, the copy, the share); the copy's bundle waits.
        return {1, 2, 4} <= set(retried)

    wait_until("each startable step throttled", every_step_throttled, celery)
    control(sandbox, "faults", {"throttle_rate": 0.0, "server_error_rate": 1.0, "operations": STEP_CALLS})

    def server_errors_seen() -> bool:
        retried = request.events.filter(action="step_retry", data__error__code="InternalFailure")
        return retried.values_list("data__step", flat=True).distinct().count() >= 3

    wait_until("a 5xx for each startable step", server_errors_seen, celery)
    control(sandbox, "faults", {"server_error_rate": 0.0})
    wait_until_rolled_out(request, celery)

    assert request.rollout == "done", list(request.steps.values("kind", "region", "state", "failure"))
    steps = list(request.steps.order_by("position"))
    assert [s.state for s in steps] == [RolloutStep.State.DONE] * 4
    copy = steps[1]
    assert len(bundles_named(sandbox, DEFAULT_REGION, name)) == 1
    assert [b["ImageId"] for b in bundles_named(sandbox, AWAY_REGION, name)] == [copy.resource_id]
    copies = [i for i in control(sandbox, "images", None)["Images"] if i["Name"] == request.image_name]
    assert sorted(i["ImageId"] for i in copies) == sorted([request.aws_image_id, copy.resource_id])
    codes = set(request.events.filter(action="step_retry").values_list("data__error__code", flat=True))
    assert codes == {"ThrottlingException", "InternalFailure"}


def test_a_worker_killed_during_a_step_call_is_taken_over_and_aws_makes_the_bundle_once(
    celery: Workers, sandbox: SandboxHandle
) -> None:
    name = f"e2e-bundle-{uuid.uuid4().hex[:8]}"
    plan = {"bundle": rollout_plan(name)["bundle"]}
    scenario = make_checked_request(sandbox, "kill", plan)
    control(sandbox, "faults", {"latency_ms": CALL_LATENCY_MS, "operations": ["CreateWorkspaceBundle"]})
    celery.start_worker()
    celery.start_worker()
    celery.start_beat()
    request = approve(scenario)
    wait_until_settled(request, celery)

    # The call is recorded before it is sent; the sandbox counts it as it arrives and answers
    # CALL_LATENCY_MS later, so the worker is now waiting for AWS's answer.
    def call_in_flight() -> bool:
        arrived = control(sandbox, "calls").get("CreateWorkspaceBundle", 0) == 1
        return request.events.filter(action="step_call").exists() and arrived

    wait_until("the bundle call in flight", call_in_flight, celery)
    Workers.kill(celery.worker_that_received("imports.tasks.run_step["))
    step = request.steps.get()
    assert (step.state, step.calls, step.call_pending) == (RolloutStep.State.RUNNING, 1, True)

    wait_until_rolled_out(request, celery)

    step.refresh_from_db()
    assert (step.state, step.calls) == (RolloutStep.State.DONE, 1)
    assert request.events.get(action="step_done").data["adopted"] is True
    [bundle] = bundles_named(sandbox, DEFAULT_REGION, name)
    assert bundle["BundleId"] == step.resource_id
    assert control(sandbox, "calls").get("CreateWorkspaceBundle", 0) == 1


def test_a_webhook_is_sent_signed_by_a_real_worker_and_again_by_beat_once_the_receiver_is_back(
    celery: Workers, checked_request: Scenario, receiver: Receiver
) -> None:
    # The worker and beat may post to this test's receiver on 127.0.0.1, and retry within seconds.
    celery.timings |= {
        "PORTAL_ALLOW_HTTP_ENDPOINTS": "true",
        "PORTAL_WEBHOOK_ALLOW_PRIVATE": "true",
        "PORTAL_WEBHOOK_RETRY_BASE_SECONDS": "1",
        "PORTAL_WEBHOOK_SWEEP_SECONDS": "1",
    }
    subscription = WebhookSubscription.objects.create(
        name="ops", target=checked_request.request.target, url=receiver.url, events=["approved"]
    )
    receiver.status = 503  # down when the approval's delivery first comes

    started = time.monotonic()
    approved = approve(checked_request)
    assert time.monotonic() - started < 2  # the decision never waits for the receiver
    assert dispatch.flush(10)
    celery.start()
    wait_until("the receiver's first answer", lambda: len(receiver.received) >= 1, celery)
    receiver.status = 200

    delivery = WebhookDelivery.objects.get(subscription=subscription)

    def delivered() -> bool:
        delivery.refresh_from_db()
        return delivery.outcome == WebhookDelivery.Outcome.DELIVERED

    wait_until("the delivery delivered", delivered, celery)
    attempts = list(delivery.log.order_by("started_at").values_list("status_code", "outcome"))
    assert attempts[0] == (503, "retry")
    assert attempts[-1] == (200, "delivered")
    assert len(receiver.received) == len(attempts)
    # Every attempt carries the same event id and a signature the receiver can check.
    assert {headers["X-Portal-Event-Id"] for headers, _ in receiver.received} == {str(delivery.uid)}
    for headers, body in receiver.received:
        assert webhooks.verify_signature(subscription.secret, headers["X-Portal-Signature"], body)
        assert json.loads(body)["request"]["reference"] == approved.reference
