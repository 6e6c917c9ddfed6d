"""Shared fixtures: one user per role, a target, and a factory for submitted requests.

Tests run on SQLite by default and on PostgreSQL when DATABASE_URL points at one.
"""

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from imports import aws, dispatch, filters, roles, selectors, workflow
from imports.db_guards import install_audit_guards, remove_audit_guards
from imports.models import AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from sandbox import SandboxHandle, control_sandbox, start_sandbox

PASSWORD = "correct-horse-battery"
# The local Redis that the tests needing one use, each in a database of its own.
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_target_choices_from_another_test() -> None:
    # Kept in each process's cache, and a test's targets are rolled back without a signal.
    cache.delete(filters.TARGET_CHOICES_KEY)


@pytest.fixture(autouse=True)
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Celery tasks the code queued, recorded instead of sent (test_celery_e2e puts the real
    publisher back for its worker)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(dispatch, "publish", lambda name, args, **marks: sent.append((name, tuple(args))))
    return sent


OFFERED_AMIS = [aws.Ami(image_id="ami-0aaaaaaaaaaaaaaa1", name="win11-golden", created="2026-11-01T00:00:00Z")]


@pytest.fixture(autouse=True)
def _no_aws_from_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request form offers each target's AMIs; page tests never ask AWS for them
    (selectors.offered_amis itself is tested against the sandbox in test_execution)."""
    monkeypatch.setattr(
        selectors, "offered_amis", lambda: {t.pk: OFFERED_AMIS for t in AwsTarget.objects.filter(is_active=True)}
    )


PASSING_CHECKS = [{"key": "ami", "title": "Source AMI", "outcome": "pass", "message": "ok", "aws": {}}]


def pass_preflight(request: ImportRequest) -> ImportRequest:
    """Record passing pre-flight checks for the request's current version, as the worker would."""
    return workflow.record_preflight(request_id=request.pk, version=request.version, checks=PASSING_CHECKS)


def make_user(username: str, *, groups: tuple[str, ...] = (), superuser: bool = False) -> Any:
    user = get_user_model().objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        is_staff=superuser,
        is_superuser=superuser,
    )
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


@pytest.fixture
def requester(db: None) -> Any:
    return make_user("rita", groups=(roles.REQUESTERS,))


@pytest.fixture
def other_requester(db: None) -> Any:
    return make_user("oscar", groups=(roles.REQUESTERS,))


@pytest.fixture
def approver(db: None) -> Any:
    return make_user("anna", groups=(roles.APPROVERS,))


@pytest.fixture
def other_approver(db: None) -> Any:
    return make_user("bert", groups=(roles.APPROVERS,))


@pytest.fixture
def approving_requester(db: None) -> Any:
    """A manager who also files requests: may approve others' requests, never their own."""
    return make_user("maria", groups=(roles.REQUESTERS, roles.APPROVERS))


@pytest.fixture
def auditor(db: None) -> Any:
    return make_user("audrey", groups=(roles.AUDITORS,))


@pytest.fixture
def superuser(db: None) -> Any:
    return make_user("root", superuser=True)


@pytest.fixture
def target(db: None) -> AwsTarget:
    return AwsTarget.objects.create(name="Sandbox", account_id="123456789012", region="us-east-1")


@pytest.fixture
def byop_target(db: None) -> AwsTarget:
    return AwsTarget.objects.create(name="Core", account_id="210987654321", region="eu-west-1", byop_allowed=True)


def request_fields(target: AwsTarget, **overrides: Any) -> dict[str, Any]:
    fields = {
        "target": target,
        "windows_version": "10",
        "ec2_image_id": "ami-0123456789abcdef0",
        "ingestion_process": "BYOL_REGULAR_WSP",
        "image_name": "win10-finance-2026",
        "image_description": "Windows 10 22H2 for the finance team",
        "tags": [{"Key": "CostCenter", "Value": "4711"}],
        "office": "",
        "justification": "Finance needs the new accounting add-in.",
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def make_request(target: AwsTarget, requester: Any) -> Callable[..., ImportRequest]:
    counter = iter(range(1, 10_000))

    def make(*, by: Any = None, checked: bool = True, **overrides: Any) -> ImportRequest:
        overrides.setdefault("image_name", f"win10-image-{next(counter)}")
        request = workflow.submit_request(requester=by or requester, fields=request_fields(target, **overrides))
        return pass_preflight(request) if checked else request

    return make


def form_data(target: AwsTarget, /, **overrides: Any) -> dict[str, Any]:
    """The POST body of the request form, with one tag row."""
    data = {
        "target": str(target.pk),
        "windows_version": "10",
        "ec2_image_id": "ami-0123456789abcdef0",
        "ingestion_process": "BYOL_REGULAR_WSP",
        "office": "",
        "image_name": "win10-finance-2026",
        "image_description": "Windows 10 22H2 for the finance team",
        "justification": "Finance needs the new accounting add-in.",
        "tags-TOTAL_FORMS": "1",
        "tags-INITIAL_FORMS": "0",
        "tags-MIN_NUM_FORMS": "0",
        "tags-MAX_NUM_FORMS": "47",
        "tags-0-key": "CostCenter",
        "tags-0-value": "4711",
    }
    data.update(overrides)
    return data


@pytest.fixture
def committed_db(transactional_db: None) -> Iterator[None]:
    """Real commits, for tests between several connections (threads, worker processes).

    The audit guards refuse the flush that cleans up after such a test, so this fixture
    lifts them, empties the tables itself and restores them; pytest-django's own flush
    then finds nothing left to remove.
    """
    yield
    remove_audit_guards(connection)
    try:
        call_command("flush", interactive=False, verbosity=0)
    finally:
        install_audit_guards(connection)


@pytest.fixture(scope="module")
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """The local AWS sandbox, one per test module; imports take the module's IMPORT_DELAY seconds."""
    handle = start_sandbox(port=0, import_delay=getattr(request.module, "IMPORT_DELAY", 0.5))
    yield handle
    handle.stop()


@pytest.fixture
def sandbox_aws(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[SandboxHandle]:
    """boto3 with the sandbox's credentials, its faults and counters cleared, its import delay the
    module's, and the real rate limiter made roomy (test_ratelimit is about the rate)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "sandbox")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    control_sandbox(sandbox.url, "reset", {})
    delay = getattr(request.module, "IMPORT_DELAY", 0.5)
    control_sandbox(sandbox.url, "config", {"import_delay": delay, "image_quota": None})
    aws.forget_clients()
    aws.use_rate_limiter(DatabaseTokenBucket(rate=1000, burst=1000))
    yield sandbox
    aws.use_rate_limiter(DatabaseTokenBucket())
    aws.forget_clients()


# --- a webhook receiver -------------------------------------------------------------------------


@dataclass
class Receiver:
    """What the receiver answers (status, headers, seconds it sleeps first) and what it was sent."""

    url: str
    status: int = 200
    sleep: float = 0.0
    location: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            time.sleep(state.sleep)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/byol?team=it"
    yield state
    server.shutdown()
    server.server_close()


# --- services on this machine ------------------------------------------------------------------


def unavailable(reason: str) -> NoReturn:
    """Skip where a service is missing, but fail in CI (CI=true), which starts every service
    these tests need: there a skip would hide that they did not run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI should have provided this: {reason}")
    pytest.skip(reason)


def require_redis() -> None:
    """Go on only where Redis answers PING at REDIS_HOST:REDIS_PORT."""
    # A plain socket: redis-py would retry a refused connection with backoff for seconds.
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            answer = probe.recv(64)
    except OSError as error:
        answer = str(error).encode()
    if not answer.startswith(b"+PONG"):
        unavailable(f"needs Redis answering PING at {REDIS_HOST}:{REDIS_PORT} (got {answer!r})")
