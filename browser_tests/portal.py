"""Start the portal the way `make run` does, on free ports and in a throwaway folder, and stop it.

honcho runs the Procfile itself, so the tests exercise exactly the processes people run: the web
server, a Celery worker and beat on kombu's filesystem broker, and the local AWS sandbox.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.client import control_sandbox
from sandbox.seed import AUDIT_BUCKET

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
SANDBOX_IMPORT_DELAY = 5  # seconds an imported image stays PENDING in the sandbox
STARTUP_SECONDS = 60
STOP_SECONDS = 15
# honcho prints "web.1 started (pid=1234)" for each process it starts in its own session.
STARTED_PID_RE = re.compile(r"\| \S+ started \(pid=(\d+)\)")


@dataclass(frozen=True)
class Portal:
    url: str
    sandbox_url: str
    var_dir: Path
    mail_dir: Path
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        """Run a manage.py command against the portal's own database; return what it printed."""
        done = subprocess.run(  # noqa: S603 -- fixed argument list, no shell
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def control_sandbox(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """The sandbox's control endpoints, e.g. ("faults", {"latency_ms": 3000})."""
        return control_sandbox(self.sandbox_url, name, body)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def portal_environment(var_dir: Path, *, web_port: int, sandbox_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    return env | {
        "PATH": f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
        "PORTAL_VAR_DIR": str(var_dir),
        "DJANGO_DEBUG": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(var_dir / "mail"),
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PORTAL_POLL_SECONDS": "2",
        "PORTAL_SWEEP_SECONDS": "5",
        # An import gives up on an unreachable AWS after 10 s here (6 h by default), with tries
        # at most 2 s apart, so a journey sees both the wait and the give-up.
        "PORTAL_RETRY_BUDGET_SECONDS": "10",
        "PORTAL_RETRY_MAX_SECONDS": "2",
        "PORTAL_BASE_URL": f"http://127.0.0.1:{web_port}",
        "PORTAL_PORT": str(web_port),
        "SANDBOX_PORT": str(sandbox_port),
        "SANDBOX_IMPORT_DELAY": str(SANDBOX_IMPORT_DELAY),
        # Beat anchors the audit chains' heads in the sandbox's Object Lock bucket every few seconds.
        "PORTAL_AUDIT_ANCHOR_BUCKET": AUDIT_BUCKET,
        "PORTAL_AUDIT_ANCHOR_ENDPOINT_URL": f"http://127.0.0.1:{sandbox_port}",
        "PORTAL_AUDIT_ANCHOR_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def _wait_until_up(honcho: subprocess.Popen, urls: list[str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not all(_answers(url) for url in urls):
        if honcho.poll() is not None:
            raise RuntimeError(
                f"honcho stopped (rc={honcho.returncode}) before the portal answered:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the portal did not answer within {STARTUP_SECONDS}s:\n{log.read_text()}")
        time.sleep(0.25)


def _stop(honcho: subprocess.Popen, log: Path) -> None:
    # honcho stops its processes on SIGTERM (SIGKILL after 5 s). Each of them runs in a session
    # of its own, so anything still alive afterwards is ended by its process group id.
    if honcho.poll() is None:
        honcho.send_signal(signal.SIGTERM)
        try:
            honcho.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    for pid in STARTED_PID_RE.findall(log.read_text()):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)


@contextmanager
def running_portal(
    var_dir: Path, log: Path, *, web_port: int | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Portal]:
    """The portal as `make run` starts it; `extra_env` adds or overrides variables (single sign-on)."""
    web_port, sandbox_port = web_port or free_port(), free_port()
    env = portal_environment(var_dir, web_port=web_port, sandbox_port=sandbox_port) | (extra_env or {})
    portal = Portal(
        url=f"http://127.0.0.1:{web_port}",
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        var_dir=var_dir,
        mail_dir=var_dir / "mail",
        env=env,
    )
    portal.manage("migrate", "--noinput")
    portal.manage("seed_demo", "--sandbox-url", portal.sandbox_url)
    with log.open("w") as output:
        honcho = subprocess.Popen(  # noqa: S603 -- fixed argument list, no shell
            [str(BIN_DIR / "honcho"), "-f", "Procfile", "start"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(honcho, [f"{portal.url}/accounts/login/", f"{portal.sandbox_url}/_sandbox/health"], log)
        yield portal
    finally:
        _stop(honcho, log)
