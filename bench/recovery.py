"""How long the portal takes to recover from the faults it is built to survive, measured from
outside with production's default timings.

Run by hand (not by CI), with PostgreSQL (trust auth) on 127.0.0.1:5432, Redis on 127.0.0.1:6379
and redis-server on PATH:

    .venv/bin/python bench/recovery.py [--scenario all|outage|broker-pause|broker-down|worker-kill|warm-shutdown]
        [--requests 10] [--outage-seconds 120] [--pause-seconds 30] [--latency-ms 5000]
        [--database-url postgres://postgres@127.0.0.1:5432/bench_recovery] [--redis-db 9]

Each scenario starts from nothing: its database dropped and created afresh (and dropped at the
end), the Redis database flushed, the sandbox's counters and faults reset. Then real worker and
beat processes (and, for the broker scenarios, gunicorn and a redis-server of the scenario's own)
configured only through the environment: the database, the broker, PORTAL_VAR_DIR, the sandbox's
credentials and a locmem email backend. Every timing is production's default: a lease of 30 s
renewed every 10 s, a sweep every 15 s that re-sends work unclaimed for 15 s, retries backing off
up to 60 s, the rate limit of 2 WorkSpaces calls/s (burst 5). The local AWS sandbox runs in this
process and keeps every imported image PENDING for a day, so `importing` is a request's last state.

- outage: N requests approved while AWS is down (every call's connection dropped) for D seconds,
  then AWS comes back. Measured: AWS's acceptance of each (the sandbox image's Created time) after
  the return, and the ImportWorkspaceImage calls made after it (exactly one per request).
  Goal: the issue asks for 2 minutes; held here to the bound the design gives, the retry cap
  (60 s) plus the rate limit's floor ((N - 5) / 2 s).
- broker-pause / broker-down: the broker of worker, beat and gunicorn is paused (SIGSTOP) or
  killed; the approver clicks Approve (a real login and POST to gunicorn); P seconds after the
  fault the broker resumes, or starts again on the same port (empty: nothing was persisted).
  Measured: the POST's time and status (goal: a 302 within 2 s) and the time from the broker's
  return to the ImportWorkspaceImage call at the sandbox (goal: within 60 s). This process sends
  nothing to that broker: its requests are set up with nothing queued, and the approval is the web's.
- worker-kill: two workers; the import call is slowed down (latency L); while it is in flight the
  worker that received the task is killed (SIGKILL to its process group). Measured: the time from
  the kill until the request is `importing` again, taken over by the other worker, which adopts
  the image by name (goal: within 60 s, one ImportWorkspaceImage call).
- warm-shutdown: one worker; SIGTERM to its main process while the slow import call is in flight.
  Measured: the time until the worker exits (goal: status 0 within docker-compose.yml's
  stop_grace_period of 75 s, the request `importing` after one call).

Prints one markdown table row per scenario, for bench/README.md, and the machine's load.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIO_NAMES = ("outage", "broker-pause", "broker-down", "worker-kill", "warm-shutdown")
WINDOWS_AMI = "ami-05eed000000000001"  # a seed AMI of the sandbox: Windows, one 60 GB volume
IMPORT_DELAY = 86_400  # the sandbox's maximum: every image stays PENDING for the whole run
PASSING_CHECKS = [{"key": "ami", "title": "Source AMI", "outcome": "pass", "message": "ok", "aws": {}}]
APPROVER = "bench-approver"
APPROVER_PASSWORD = "recovery-bench-approver"  # noqa: S105 -- a throw-away user of a throw-away database
WAITING_STATES = ("approved", "submitting")
# AWS's documented WorkSpaces burst and rate per account, the portal's defaults.
BURST, RATE_PER_SECOND = 5, 2
# The goals these numbers are held to.
APPROVAL_GOAL_SECONDS = 2.0
BROKER_RECOVERY_GOAL_SECONDS = 60.0
TAKEOVER_GOAL_SECONDS = 60.0
STOP_GRACE_SECONDS = 75.0  # docker-compose.yml: the worker's stop_grace_period
# How long to wait for things that should take far less; past these a scenario fails.
PROCESS_READY_SECONDS = 60
CALL_IN_FLIGHT_SECONDS = 60
RECOVERY_LIMIT_SECONDS = 300
POLL_SECONDS = 0.05
IMPORT_TASK = "imports.tasks.import_request["  # as a worker logs a task it received
HTTP_SECONDS = 30


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("all", *SCENARIO_NAMES), default="all")
    parser.add_argument("--requests", type=int, default=10, help="outage: requests approved while AWS is down")
    parser.add_argument("--outage-seconds", type=float, default=120, help="outage: how long AWS stays down")
    parser.add_argument(
        "--pause-seconds", type=float, default=30, help="broker-pause/-down: how long the broker is away"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=5000, help="worker-kill/warm-shutdown: ImportWorkspaceImage latency"
    )
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/bench_recovery",
        help="a PostgreSQL database that is dropped and created afresh; its name must start with bench",
    )
    parser.add_argument("--redis-db", type=int, default=9, help="on 127.0.0.1:6379, flushed at start and end")
    options = parser.parse_args()
    if options.requests < 1 or options.outage_seconds < 0 or options.pause_seconds < 0:
        parser.error("--requests must be at least 1, --outage-seconds and --pause-seconds at least 0")
    if not 1 <= options.latency_ms <= 60_000:
        parser.error("--latency-ms must be from 1 to 60000 (the sandbox's maximum)")
    if not urlsplit(options.database_url).path.lstrip("/").startswith("bench"):
        parser.error("--database-url must name a database starting with 'bench': it is dropped at start and end")
    return options


def portal_environment(database_url: str, broker_url: str, var_dir: Path | str) -> dict[str, str]:
    """This shell's environment without the portal's own settings, plus the few a run must set:
    every timing stays at production's default."""
    owned = ("AWS_", "CELERY_", "PORTAL_", "DJANGO_", "DATABASE_", "EMAIL_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(owned)}
    return env | {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "PORTAL_VAR_DIR": str(var_dir),
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
    }


# Before Django: the database and the broker come from the options.
OPTIONS = parse_options()
VAR = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
MAIN_BROKER = f"redis://127.0.0.1:6379/{OPTIONS.redis_db}"
ENV = portal_environment(OPTIONS.database_url, MAIN_BROKER, VAR)
os.environ.clear()
os.environ.update(ENV, PORTAL_LOG_LEVEL="WARNING")  # this process only: the children log INFO

import django
import psycopg
import redis
import requests

django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connections
from django.urls import reverse

from imports import dispatch, workflow
from imports.models import AwsTarget, ImportRequest, RequestEvent
from sandbox import DEFAULT_REGION, SANDBOX_ACCOUNT_ID, SandboxHandle, control_sandbox, start_sandbox

T = TypeVar("T")


class ScenarioFailed(Exception):
    """The scenario could not be measured: a process died, or something never happened."""


def interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


# --- the machine's services ----------------------------------------------------------------------


def maintenance_url(database_url: str) -> tuple[str, str]:
    """The URL of the server's `postgres` database, and the name of the benchmark's own."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres", query="")), parts.path.lstrip("/")


def recreate_database(database_url: str, *, create: bool, refuse_if_used: bool = False) -> None:
    """Drop the benchmark's database and create it again when asked. FORCE ends the sessions a
    killed worker left behind; at the very start, a database in use is refused instead."""
    url, name = maintenance_url(database_url)
    with psycopg.connect(url, autocommit=True) as server:
        if refuse_if_used:
            [(sessions,)] = server.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name])
            if sessions:
                raise SystemExit(f"recovery: {sessions} sessions use database {name}: another run of this benchmark?")
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            server.execute(f'CREATE DATABASE "{name}"')


def flush_redis(db: int) -> None:
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def unused_port() -> int:
    """A local TCP port that nothing listens on: one the kernel picks for a bind, released at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    # Must stay up while the scenario runs; a process the scenario stops on purpose is not.
    watched: bool

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Processes:
    """The scenario's processes, each in a session of its own so that killpg reaches its children."""

    directory: Path = VAR
    running: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], *, watched: bool = True) -> Child:
        log = self.directory / f"{name}.log"
        n = 1
        while log.exists():
            n += 1
            log = self.directory / f"{name}-{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter, redis-server, our arguments
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = Child(name, process, log, watched)
        self.running.append(child)
        return child

    def celery(self, name: str, env: dict[str, str], *args: str) -> Child:
        return self.spawn(name, [sys.executable, "-m", "celery", "-A", "portal", *args], env)

    def start_beat(self, env: dict[str, str]) -> Child:
        return self.celery("beat", env, "beat", "--loglevel", "INFO")

    def start_workers(self, env: dict[str, str], count: int) -> list[Child]:
        """As docker-compose.yml runs them (prefork, concurrency 2); a hostname each, as they share this host."""
        workers = [
            self.celery(
                f"worker-{n}",
                env,
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                f"recovery{n}@%h",
            )
            for n in range(count)
        ]
        wait_for(
            "the workers to report ready",
            lambda: all(" ready." in worker.log_text() for worker in workers),
            PROCESS_READY_SECONDS,
            self,
        )
        return workers

    def start_gunicorn(self, env: dict[str, str]) -> str:
        """The web server as the image runs it, with two workers; returns its base URL."""
        port = unused_port()
        argv = [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        self.spawn("gunicorn", [*argv, "--access-logfile", "-"], env | {"DJANGO_DEBUG": "true"})
        base = f"http://127.0.0.1:{port}"
        wait_for("gunicorn to answer", lambda: _answers(base + reverse("login")), PROCESS_READY_SECONDS, self)
        return base

    def workers_that_received(self, task_prefix: str) -> list[Child]:
        """The workers whose logs say they received a task whose name starts so."""
        return [
            child
            for child in self.running
            if child.name.startswith("worker-")
            and any(f"Task {task_prefix}" in line and "received" in line for line in child.log_text().splitlines())
        ]

    def ensure_alive(self) -> None:
        for child in self.running:
            if child.watched and child.process.poll() is not None:
                tail = "\n".join(child.log_text().splitlines()[-30:])
                raise ScenarioFailed(f"{child.name} exited with {child.process.returncode}:\n{tail}")

    def kill(self, child: Child) -> None:
        """SIGKILL the child's whole group (a stopped redis-server too) and reap it."""
        child.watched = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait(timeout=10)

    def kill_all(self) -> None:
        for child in self.running:
            self.kill(child)
        self.running.clear()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class BrokerServer:
    """A redis-server of the scenario's own, which it can pause (SIGSTOP: connections stay open and
    nothing answers, as a stuck or overloaded broker), or kill and start again on the same port."""

    processes: Processes
    port: int = field(default_factory=unused_port)
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ScenarioFailed("needs redis-server on PATH for a broker of its own")
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        directory = str(self.processes.directory)
        self.child = self.processes.spawn("redis-server", [*argv, "--dir", directory], ENV, watched=False)
        wait_for("redis-server to answer PING", self.answers, PROCESS_READY_SECONDS, self.processes)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def pause(self) -> None:
        assert self.child is not None
        self.child.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.child is not None
        self.child.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.child is not None
        self.processes.kill(self.child)


def wait_for(what: str, condition: Callable[[], T], seconds: float, processes: Processes) -> T:
    """Until `condition` returns something true, which is returned; ScenarioFailed after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        processes.ensure_alive()
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"{what}: not within {seconds:.0f} s; logs in {processes.directory}")
        time.sleep(POLL_SECONDS)
    return result


def sleep_until(moment: float, processes: Processes) -> None:
    """Until time.monotonic() reaches `moment`, watching that the processes stay up."""
    while (left := moment - time.monotonic()) > 0:
        processes.ensure_alive()
        time.sleep(min(left, 0.5))


# --- the approver in a browser -------------------------------------------------------------------


class FormReader(HTMLParser):
    """The forms of a page: each form's action -> the names and values of its inputs and textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._open = self.forms.setdefault(attributes.get("action") or "", {})
        elif self._open is not None and tag in ("input", "textarea") and attributes.get("name"):
            self._open[str(attributes["name"])] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


@dataclass
class Browser:
    """A session with the portal's cookies (session, CSRF), posting the forms its pages hold."""

    base: str
    session: requests.Session = field(default_factory=requests.Session)

    def form(self, page: str, action: str) -> dict[str, str]:
        answer = self.session.get(self.base + page, timeout=HTTP_SECONDS)
        answer.raise_for_status()
        reader = FormReader()
        reader.feed(answer.text)
        if action not in reader.forms:
            raise ScenarioFailed(f"{page} has no form posting to {action}; it has {sorted(reader.forms)}")
        return reader.forms[action]

    def post(self, action: str, fields: dict[str, str], *, timeout: float = HTTP_SECONDS) -> requests.Response:
        return self.session.post(self.base + action, data=fields, allow_redirects=False, timeout=timeout)

    def log_in(self, username: str, password: str) -> None:
        login = reverse("login")
        answer = self.post(login, self.form(login, login) | {"username": username, "password": password})
        if answer.status_code != 302:
            raise ScenarioFailed(f"logging in as {username} answered {answer.status_code}, not a redirect")


# --- setting the scene ---------------------------------------------------------------------------


@dataclass
class Scene:
    """One scenario's world: a fresh database and Redis database, the reset sandbox, its processes."""

    name: str
    sandbox: SandboxHandle
    processes: Processes
    target: AwsTarget
    requester: Any
    approver: Any

    def env(self, broker_url: str = MAIN_BROKER) -> dict[str, str]:
        return portal_environment(OPTIONS.database_url, broker_url, self.processes.directory)

    def control(self, name: str, body: dict[str, Any] | None = None) -> Any:
        return control_sandbox(self.sandbox.url, name, body)

    def import_calls(self) -> int:
        return self.control("calls").get("ImportWorkspaceImage", 0)

    def images(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The sandbox's imported images of each name."""
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for image in self.control("images")["Images"]:
            if image["Name"] in found:
                found[image["Name"]].append(image)
        return found

    def checked_requests(self, count: int) -> list[ImportRequest]:
        """Submitted with nothing queued, pre-flight checks recorded as passed."""
        made = []
        with_publish = dispatch.publish
        dispatch.publish = lambda *args, **kwargs: None
        try:
            for n in range(count):
                fields = {
                    "target": self.target,
                    "windows_version": "11",
                    "ec2_image_id": WINDOWS_AMI,
                    "ingestion_process": "BYOL_REGULAR_WSP",
                    "image_name": f"recovery-{self.name}-{n:02d}",
                    "image_description": "bench",
                    "tags": [],
                    "office": "",
                    "justification": "bench",
                }
                request = workflow.submit_request(requester=self.requester, fields=fields)
                made.append(
                    workflow.record_preflight(request_id=request.pk, version=request.version, checks=PASSING_CHECKS)
                )
        finally:
            dispatch.publish = with_publish
        return made

    def approve(self, request: ImportRequest) -> ImportRequest:
        return workflow.approve_request(request_id=request.pk, actor=self.approver, expected_version=request.version)


def user_in(group: str, username: str, password: str | None = None) -> Any:
    user = get_user_model().objects.create_user(username, password=password)
    user.groups.add(Group.objects.get(name=group))
    return user


def set_scene(name: str, sandbox: SandboxHandle, processes: Processes, *, first: bool) -> Scene:
    processes.directory = VAR / name
    processes.directory.mkdir()
    connections.close_all()
    recreate_database(OPTIONS.database_url, create=True, refuse_if_used=first)
    call_command("migrate", verbosity=0)
    flush_redis(OPTIONS.redis_db)
    control_sandbox(sandbox.url, "reset", {})
    control_sandbox(sandbox.url, "config", {"import_delay": IMPORT_DELAY, "image_quota": None})
    target = AwsTarget.objects.create(
        name="bench", account_id=SANDBOX_ACCOUNT_ID, region=DEFAULT_REGION, endpoint_url=sandbox.url
    )
    return Scene(
        name=name,
        sandbox=sandbox,
        processes=processes,
        target=target,
        requester=user_in("Requesters", "bench-requester"),
        approver=user_in("Approvers", APPROVER, APPROVER_PASSWORD),
    )


# --- the scenarios -------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    measured: str
    goal: str
    passed: bool
    notes: str


def actions(request: ImportRequest) -> list[str]:
    return list(request.events.order_by("seq").values_list("action", flat=True))


def rate_floor(count: int) -> float:
    """The last of `count` single WorkSpaces calls, at RATE_PER_SECOND after a burst of BURST."""
    return max(0.0, (count - BURST) / RATE_PER_SECOND)


def outage_goal(count: int) -> float:
    return settings.PORTAL_RETRY_MAX_SECONDS + rate_floor(count)


def outage(scene: Scene) -> Row:
    count, down_for = OPTIONS.requests, OPTIONS.outage_seconds
    batch = scene.checked_requests(count)
    ids, names = [r.pk for r in batch], [r.image_name for r in batch]
    env = scene.env()
    scene.processes.start_beat(env)
    scene.processes.start_workers(env, 1)
    scene.control("faults", {"down": True})
    back_at = time.monotonic() + down_for
    for request in batch:
        scene.approve(request)
    print(f"  {count} approved with AWS down; back in {down_for:.0f} s", flush=True)
    sleep_until(back_at, scene.processes)
    retries = RequestEvent.objects.filter(request_id__in=ids, action="import_retry").count()
    calls_while_down = scene.import_calls()
    scene.control("faults", {"down": False})
    back = time.time()
    wait_for(
        "every request accepted by AWS or failed",
        lambda: not ImportRequest.objects.filter(pk__in=ids, state__in=WAITING_STATES).exists(),
        RECOVERY_LIMIT_SECONDS,
        scene.processes,
    )
    calls_after = scene.import_calls() - calls_while_down
    images = scene.images(names)
    failed = ImportRequest.objects.filter(pk__in=ids, state="failed").count()
    importing = ImportRequest.objects.filter(pk__in=ids, state="importing").count()
    after_return = sorted(image["Created"] - back for found in images.values() for image in found)
    one_each = all(len(found) == 1 for found in images.values()) and calls_after == count
    last = after_return[-1] if after_return else None
    goal = outage_goal(count)
    notes = (
        f"{count} requests, AWS down {down_for:.0f} s: {retries} retries scheduled meanwhile, "
        f"{calls_while_down} ImportWorkspaceImage calls dropped; after the return: {importing} importing, "
        f"{failed} failed, {calls_after} ImportWorkspaceImage calls ({calls_after / count:.2f}/request), "
        f"images per name {sorted({len(found) for found in images.values()})}"
    )
    measured = (
        f"last accepted {last:.1f} s after AWS returned (median {statistics.median(after_return):.1f} s)"
        if last is not None
        else "nothing accepted"
    )
    passed = last is not None and last <= goal and failed == 0 and importing == count and one_each
    return Row("outage", measured, GOALS["outage"], passed, notes)


def broker_fault(scene: Scene, *, kill: bool) -> Row:
    away = OPTIONS.pause_seconds
    broker = BrokerServer(scene.processes)
    broker.start()
    env = scene.env(broker.url)
    [request] = scene.checked_requests(1)
    scene.processes.start_beat(env)
    scene.processes.start_workers(env, 1)
    browser = Browser(scene.processes.start_gunicorn(env))
    browser.log_in(APPROVER, APPROVER_PASSWORD)
    approve_action = reverse("request_action", args=[request.pk, "approve"])
    fields = browser.form(reverse("request_detail", args=[request.pk]), approve_action)
    fields["comment"] = "approved with the broker away"

    fault_at = time.monotonic()
    if kill:
        broker.kill()
    else:
        broker.pause()
    clicked = time.perf_counter()
    try:
        answer = browser.post(approve_action, fields, timeout=away + HTTP_SECONDS)
        click = f"{answer.status_code}"
    except requests.RequestException as error:
        answer, click = None, f"no answer: {type(error).__name__}"
    click_seconds = time.perf_counter() - clicked
    request.refresh_from_db()
    after_click = f"{request.state}, {'dispatched' if request.dispatched_at else 'not dispatched'}"
    sleep_until(fault_at + away, scene.processes)
    if kill:
        broker.start()
    else:
        broker.resume()
    back = time.time()
    images = wait_for(
        "the ImportWorkspaceImage call at the sandbox",
        lambda: scene.images([request.image_name])[request.image_name],
        RECOVERY_LIMIT_SECONDS,
        scene.processes,
    )
    import_after = images[0]["Created"] - back
    wait_for(
        "the request importing",
        lambda: ImportRequest.objects.filter(pk=request.pk, state="importing").exists(),
        HTTP_SECONDS,
        scene.processes,
    )
    request.refresh_from_db()
    calls = scene.import_calls()
    fault = "killed, started again" if kill else "paused (SIGSTOP), resumed (SIGCONT)"
    notes = (
        f"broker {fault} after {away:.0f} s; request after the click: {after_click}; "
        f"ImportWorkspaceImage calls {calls}; actions: {' > '.join(actions(request))}"
    )
    posted_ok = answer is not None and answer.status_code == 302 and click_seconds < APPROVAL_GOAL_SECONDS
    passed = posted_ok and import_after <= BROKER_RECOVERY_GOAL_SECONDS and calls == 1 and len(images) == 1
    back_word = "restart" if kill else "SIGCONT"
    measured = f"POST {click_seconds:.2f} s ({click}); {back_word} -> import call {import_after:.1f} s"
    return Row(scene.name, measured, GOALS[scene.name], passed, notes)


def broker_pause(scene: Scene) -> Row:
    return broker_fault(scene, kill=False)


def broker_down(scene: Scene) -> Row:
    return broker_fault(scene, kill=True)


def slow_import_in_flight(scene: Scene, request: ImportRequest) -> float:
    """Approve, and return (time.monotonic()) once the slowed import call reached the sandbox."""
    scene.approve(request)
    wait_for("the import call in flight", lambda: scene.import_calls() == 1, CALL_IN_FLIGHT_SECONDS, scene.processes)
    return time.monotonic()


def worker_kill(scene: Scene) -> Row:
    latency = OPTIONS.latency_ms
    [request] = scene.checked_requests(1)
    scene.control("faults", {"latency_ms": latency, "operations": ["ImportWorkspaceImage"]})
    env = scene.env()
    scene.processes.start_beat(env)
    scene.processes.start_workers(env, 2)
    arrived = slow_import_in_flight(scene, request)
    received = scene.processes.workers_that_received(IMPORT_TASK)
    if len(received) != 1:
        raise ScenarioFailed(f"{len(received)} worker logs say they received the import; logs in {VAR / scene.name}")
    holder = received[0]
    killed_at, into_call = time.time(), time.monotonic() - arrived
    scene.processes.kill(holder)
    request.refresh_from_db()
    at_kill = f"{request.state}, call pending {request.import_call_pending}"
    lease_left = request.lease_expires_at.timestamp() - killed_at if request.lease_expires_at else None
    wait_for(
        "the request importing again",
        lambda: ImportRequest.objects.filter(pk=request.pk, state="importing").exists(),
        RECOVERY_LIMIT_SECONDS,
        scene.processes,
    )
    request.refresh_from_db()
    accepted = request.events.get(action="aws_accepted")
    takeover = accepted.created_at.timestamp() - killed_at
    reclaim = request.events.filter(action="reclaim").first()
    reclaimed = f"+{reclaim.created_at.timestamp() - killed_at:.1f} s" if reclaim else "never"
    calls = scene.import_calls()
    images = scene.images([request.image_name])[request.image_name]
    adopted = bool(accepted.data.get("adopted"))
    takers = [child.name for child in scene.processes.workers_that_received(IMPORT_TASK) if child is not holder]
    same_image = len(images) == 1 and images[0]["ImageId"] == request.aws_image_id
    lease = f"+{lease_left:.1f} s" if lease_left is not None else "-"
    notes = (
        f"SIGKILL to {holder.name}'s group {into_call:.1f} s into a {latency} ms call ({at_kill}); "
        f"lease ran out {lease}, reclaim {reclaimed} by {', '.join(takers) or 'nobody'}; adopted {adopted}; "
        f"ImportWorkspaceImage calls {calls}, "
        f"images {len(images)}; actions: {' > '.join(actions(request))}"
    )
    passed = takeover < TAKEOVER_GOAL_SECONDS and calls == 1 and same_image and request.import_calls == 1
    return Row("worker-kill", f"takeover {takeover:.1f} s after the kill", GOALS["worker-kill"], passed, notes)


def warm_shutdown(scene: Scene) -> Row:
    latency = OPTIONS.latency_ms
    [request] = scene.checked_requests(1)
    scene.control("faults", {"latency_ms": latency, "operations": ["ImportWorkspaceImage"]})
    [worker] = scene.processes.start_workers(scene.env(), 1)
    arrived = slow_import_in_flight(scene, request)
    worker.watched = False
    stopping = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)  # what `docker compose stop` sends first
    try:
        status: int | None = worker.process.wait(timeout=RECOVERY_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        status = None
    shutdown = time.monotonic() - stopping
    request.refresh_from_db()
    calls = scene.import_calls()
    released = request.lease_token == ""
    notes = (
        f"SIGTERM {stopping - arrived:.1f} s into a {latency} ms ImportWorkspaceImage; exit status {status}; "
        f"request {request.state} after {request.import_calls} call(s) (sandbox: {calls}), lease released "
        f"{released}; actions: {' > '.join(actions(request))}"
    )
    passed = (
        status == 0
        and shutdown < STOP_GRACE_SECONDS
        and request.state == "importing"
        and request.import_calls == 1
        and calls == 1
        and released
    )
    measured = f"worker exited {shutdown:.1f} s after SIGTERM" if status is not None else "worker did not exit"
    return Row("warm-shutdown", measured, GOALS["warm-shutdown"], passed, notes)


SCENARIOS: dict[str, Callable[[Scene], Row]] = {
    "outage": outage,
    "broker-pause": broker_pause,
    "broker-down": broker_down,
    "worker-kill": worker_kill,
    "warm-shutdown": warm_shutdown,
}
GOALS = {
    "outage": (
        f"last <= {outage_goal(OPTIONS.requests):.1f} s (retry cap {settings.PORTAL_RETRY_MAX_SECONDS} s "
        f"+ rate floor); 0 failed; 1 call each"
    ),
    "broker-pause": f"302 in < {APPROVAL_GOAL_SECONDS:.0f} s; import <= {BROKER_RECOVERY_GOAL_SECONDS:.0f} s",
    "broker-down": f"302 in < {APPROVAL_GOAL_SECONDS:.0f} s; import <= {BROKER_RECOVERY_GOAL_SECONDS:.0f} s",
    "worker-kill": f"< {TAKEOVER_GOAL_SECONDS:.0f} s; 1 call",
    "warm-shutdown": f"exit 0 in < {STOP_GRACE_SECONDS:.0f} s; importing; 1 call",
}


# --- the run -------------------------------------------------------------------------------------


def loads(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in averages)


def run_scenario(name: str, sandbox: SandboxHandle, processes: Processes, *, first: bool) -> Row:
    print(f"{name}: starting; logs in {VAR / name}", flush=True)
    load_before = os.getloadavg()[0]
    try:
        row = SCENARIOS[name](set_scene(name, sandbox, processes, first=first))
    except ScenarioFailed as failure:
        print(f"{name}: {failure}", file=sys.stderr, flush=True)
        row = Row(name, "-", GOALS[name], False, str(failure).splitlines()[0])
    finally:
        processes.kill_all()
    row.notes += f"; load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    print(f"{name}: {'pass' if row.passed else 'FAIL'}: {row.measured}", flush=True)
    return row


def report(rows: list[Row], load_start: tuple[float, float, float]) -> None:
    print()
    if rows:
        print("| scenario | measured | goal | pass/fail | notes |")
        print("| --- | --- | --- | --- | --- |")
        for row in rows:
            verdict = "pass" if row.passed else "**FAIL**"
            print(f"| {row.scenario} | {row.measured} | {row.goal} | {verdict} | {row.notes} |")
        print()
    print(
        f"{os.cpu_count()} cores; load average (1, 5, 15 min) at start {loads(load_start)}, "
        f"at end {loads(os.getloadavg())}; logs in {VAR}"
    )


def main() -> None:
    signal.signal(signal.SIGTERM, interrupted)
    names = SCENARIO_NAMES if OPTIONS.scenario == "all" else (OPTIONS.scenario,)
    load_start = os.getloadavg()
    processes = Processes()
    sandbox = start_sandbox(port=0, import_delay=IMPORT_DELAY)
    rows: list[Row] = []
    status = 0
    try:
        for n, name in enumerate(names):
            rows.append(run_scenario(name, sandbox, processes, first=n == 0))
    except KeyboardInterrupt:
        status = 130
        print("\ninterrupted: processes stopped, database dropped", file=sys.stderr)
    finally:
        processes.kill_all()
        sandbox.stop()
        connections.close_all()
        recreate_database(OPTIONS.database_url, create=False)
        flush_redis(OPTIONS.redis_db)
    report(rows, load_start)
    if status == 0 and not all(row.passed for row in rows):
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
