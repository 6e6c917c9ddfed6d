"""Issue 10's findings measured from outside, on two checkouts side by side.

Each checkout's portal is started the way `make run` starts it (its own Procfile through honcho,
DJANGO_DEBUG on, SQLite and the filesystem broker in a throwaway folder, free ports), then probed
over HTTP as its demo users would be, and, for the audit history, as an attacker who can write to
the database (SQLite opened directly, the append-only triggers dropped). Prints one markdown
table: probe | before | after.

Run by hand (not by CI), from the repository, with two worktrees:

    git worktree add /tmp/probe-before 123b334
    git worktree add /tmp/probe-after HEAD
    .venv/bin/python bench/security_probe.py --before /tmp/probe-before --after /tmp/probe-after
    git worktree remove --force /tmp/probe-before; git worktree remove --force /tmp/probe-after

Both portals run at once (about 5 minutes; the idle-timeout probe waits 125 s). The "after" portal
runs with PORTAL_SESSION_IDLE_MINUTES=2 so that its idle timeout can be seen, and with audit
anchoring on (as the Makefile's embedded default); the admin's second factor is off in both,
because PORTAL_ADMIN_OTP follows DEBUG. A probe that cannot run says why in its cell.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import requests

BIN_DIR = Path(sys.executable).parent
DEMO_PASSWORD = "demo-portal-2026"  # noqa: S105 -- the published demo password (seed_demo)
ANCHOR_BUCKET = "byol-portal-audit-anchors"
# The "after" portal's idle limit is 2 minutes: it notes a click at most once a minute
# (imports.middleware.TOUCH_SECONDS), so a 1-minute limit would also end busy sessions.
IDLE_MINUTES = 2
IDLE_WAIT_SECONDS = IDLE_MINUTES * 60 + 5
STARTUP_SECONDS = 120
HTTP_TIMEOUT = 120
STARTED_PID_RE = re.compile(r"\| \S+ started \(pid=(\d+)\)")
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SSRF_ENDPOINTS = ("http://169.254.169.254/", "http://10.0.0.1/", "https://user:pw@example.com/")
PROBES = [
    ("1", "50 wrong passwords for approver, then the right one"),
    ("2a", "session cookie lifetime"),
    ("2b", f"idle timeout: signed in, one page, {IDLE_WAIT_SECONDS} s idle, next page"),
    ("2c", f"idle timeout: signed in, no page at all, {IDLE_WAIT_SECONDS} s idle, next page"),
    ("3", "anonymous GET /accounts/password_reset/"),
    ("4", "target endpoints 169.254.169.254, 10.0.0.1, user:pw@ saved in the admin"),
    ("5a", "target answering 200 `<html>not aws</html>`: GET /requests/new/ (and the dashboard meanwhile)"),
    ("5b", "target answering 200 `<html><body>not aws<br></body></html>` (not XML): the same"),
    ("6a", "headers on the dashboard"),
    ("6b", "headers on the audit export"),
    ("7", "admin changelist ?created_at__year=-1"),
    ("8a", "audit: event edited, hash (sha256, old way) and head recomputed -> verify_audit"),
    ("8b", "audit: newest event deleted, head moved back -> verify_audit"),
    ("8c", "audit: actor renamed -> past event's name, verify_audit"),
    ("9a", "superuser (not an approver) POSTs approve"),
    ("9b", "requester removed from every group POSTs an edit of their own request"),
    ("10", "change to a target in an audit history auditors can read"),
]


# --- pages and forms ----------------------------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page with the values a browser would submit by default."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {}})
        if not self.forms:
            return
        fields = self.forms[-1]["fields"]
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields[name] = a.get("value", "on")
            elif kind not in ("submit", "button", "image", "file"):
                fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            if self._select not in fields or "selected" in a:
                fields[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data


def main_form(html: str) -> dict[str, str]:
    """The fields of the page's largest POST form (the one the page is about)."""
    parser = _Forms()
    parser.feed(html)
    posts = [f["fields"] for f in parser.forms if f["method"] == "post"]
    return max(posts, key=len) if posts else {}


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    return match.group(1) if match else ""


# --- one portal ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Portal:
    checkout: Path
    var_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log(self) -> Path:
        return self.var_dir / "honcho.log"

    @property
    def db(self) -> Path:
        return self.var_dir / "portal.sqlite3"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "VIRTUAL_ENV"}}
        return (
            env
            | {
                "PATH": f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
                "PORTAL_VAR_DIR": str(self.var_dir),
                "DJANGO_DEBUG": "true",
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(self.var_dir / "mail"),
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PORTAL_POLL_SECONDS": "2",
                "PORTAL_SWEEP_SECONDS": "5",
                "PORTAL_PORT": str(self.web_port),
                "SANDBOX_PORT": str(self.sandbox_port),
                "SANDBOX_IMPORT_DELAY": "5",
                "PORTAL_AUDIT_ANCHOR_BUCKET": ANCHOR_BUCKET,
                "PORTAL_AUDIT_ANCHOR_ENDPOINT_URL": f"http://127.0.0.1:{self.sandbox_port}",
                "PORTAL_AUDIT_ANCHOR_SECONDS": "3",
                "PYTHONUNBUFFERED": "1",
            }
            | self.extra_env
        )

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(  # noqa: S603 -- fixed argument list, no shell
            [str(BIN_DIR / "python"), "manage.py", *args],
            cwd=self.checkout,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr.strip()[-300:]}")
        return done

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).stdout.strip()

    def verify_audit(self) -> str:
        done = self.manage("verify_audit", check=False)
        text = (done.stdout + done.stderr).strip()
        lines = [line for line in text.splitlines() if not line.startswith("warning:")]
        return "\n".join(lines) if lines else text


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code < 500
    except requests.RequestException:
        return False


@contextmanager
def running(portal: Portal) -> Iterator[Portal]:
    portal.var_dir.mkdir(parents=True, exist_ok=True)
    portal.manage("migrate", "--noinput")
    portal.manage("seed_demo", "--sandbox-url", f"http://127.0.0.1:{portal.sandbox_port}")
    with portal.log.open("w") as output:
        honcho = subprocess.Popen(  # noqa: S603 -- fixed argument list, no shell
            [str(BIN_DIR / "honcho"), "-f", "Procfile", "start"],
            cwd=portal.checkout,
            env=portal.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(f"{portal.url}/accounts/login/"):
            if honcho.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not start:\n{portal.log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield portal
    finally:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait()
        for pid in STARTED_PID_RE.findall(portal.log.read_text()):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


class User:
    """A browser of one demo user: its own cookie jar."""

    def __init__(self, portal: Portal, username: str) -> None:
        self.portal, self.username = portal, username
        self.http = requests.Session()
        self.login_set_cookie = ""
        self.lock = threading.RLock()  # the keep-alive thread shares the jar

    def get(self, path: str, **kwargs) -> requests.Response:
        with self.lock:
            answer = self.http.get(self.portal.url + path, timeout=HTTP_TIMEOUT, **kwargs)
        if "/accounts/login/" in answer.url and not path.startswith("/accounts/"):
            raise RuntimeError(f"{self.username} was signed out (GET {path})")
        return answer

    def post_form(self, path: str, data: dict[str, str], page: str | None = None) -> requests.Response:
        """POST `data` over the form of `page` (GET first when not given), CSRF token included."""
        html = page if page is not None else self.get(path).text
        fields = main_form(html) | data
        fields["csrfmiddlewaretoken"] = fields.get("csrfmiddlewaretoken") or csrf_of(html)
        with self.lock:
            return self.http.post(
                self.portal.url + path,
                data=fields,
                headers={"Referer": self.portal.url + path},
                timeout=HTTP_TIMEOUT,
                allow_redirects=False,
            )

    def login(self, password: str = DEMO_PASSWORD) -> requests.Response:
        answer = self.post_form("/accounts/login/", {"username": self.username, "password": password})
        if answer.status_code == 302:
            cookies = answer.raw.headers.getlist("Set-Cookie")
            self.login_set_cookie = next((c for c in cookies if c.startswith("sessionid=")), "")
        return answer

    def signed_in(self) -> bool:
        answer = self.get("/", allow_redirects=False)
        return answer.status_code == 200


# --- the probes ---------------------------------------------------------------------------------

Cells = dict[str, str]


def _run(cells: Cells, key: str, probe: Callable[[], str]) -> None:
    try:
        cells[key] = probe()
    except Exception as exc:  # a probe that fails says why in its cell
        cells[key] = f"could not run: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"


def _session_lifetime(user: User) -> str:
    cookie = user.login_set_cookie
    match = re.search(r"Max-Age=(\d+)", cookie, re.IGNORECASE)
    if not match:
        return f"sessionid without Max-Age ({cookie[:80]!r})"
    seconds = int(match.group(1))
    return f"Max-Age {seconds} s ({seconds / 3600:g} h)" if seconds < 86400 else f"Max-Age {seconds / 86400:g} days"


def _status(answer: requests.Response) -> str:
    where = answer.headers.get("Location")
    return f"HTTP {answer.status_code}" + (f" -> {where}" if where else "")


def _headers(answer: requests.Response) -> str:
    h = answer.headers
    csp = h.get("Content-Security-Policy", "")
    parts = [
        f"HTTP {answer.status_code}",
        "CSP " + ("absent" if not csp else ("with 'unsafe-inline'" if "unsafe-inline" in csp else "strict")),
        "frame-ancestors 'none' " + ("yes" if "frame-ancestors 'none'" in csp else "no"),
        "Permissions-Policy " + ("yes" if h.get("Permissions-Policy") else "no"),
        "Cache-Control " + (h.get("Cache-Control") or "absent"),
    ]
    return "; ".join(parts)


def _brute_force(portal: Portal) -> str:
    attacker = User(portal, "approver")
    log_before = len(portal.log.read_text())
    started, locked = time.monotonic(), 0
    for attempt in range(50):
        answer = attacker.login(password=f"wrong-{attempt}")
        if answer.status_code == 429 or "locked" in answer.text.lower():
            locked += 1
    took = time.monotonic() - started
    right = attacker.login()
    outcome = "logged in" if right.status_code == 302 and attacker.signed_in() else f"refused ({right.status_code})"
    new_log = portal.log.read_text()[log_before:].splitlines()
    # Request lines ("POST /accounts/login/ 200") name no user; anything else about a failure counts.
    logged = [line for line in new_log if '"POST /accounts/login/' not in line and re.search(r"fail|lock", line, re.I)]
    named = sum("approver" in line for line in logged)
    return (
        f"{took:.1f} s; {locked}/50 refused with a lock-out page/429; right password: {outcome}; "
        f"log lines about failures/lock-out: {len(logged)}, naming approver: {named}"
    )


def _ssrf(admin: User) -> str:
    accepted = []
    for number, endpoint in enumerate(SSRF_ENDPOINTS):
        answer = admin.post_form(
            "/admin/imports/awstarget/add/",
            {
                "name": f"probe-ssrf-{number}",
                "account_id": f"11111111111{number}",
                "region": "us-east-1",
                "endpoint_url": endpoint,
                "_save": "Save",
            },
        )
        if answer.status_code == 302:
            accepted.append(endpoint)
        elif answer.status_code != 200 or "errornote" not in answer.text:
            return f"unexpected answer {answer.status_code} for {endpoint}"
    _deactivate(admin.portal, "probe-ssrf-")  # so that no later page asks them
    refused = len(SSRF_ENDPOINTS) - len(accepted)
    return f"{len(accepted)} accepted, {refused} refused" + (f" (accepted: {', '.join(accepted)})" if accepted else "")


GARBAGE = {
    "5a": b"<html>not aws</html>",  # well-formed XML, though not AWS's
    "5b": b"<html><body>not aws<br></body></html>",  # HTML, not XML: botocore cannot parse it
}


def garbage_server(body: bytes) -> http.server.ThreadingHTTPServer:
    handler = type("Garbage", (_Garbage,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Garbage(http.server.BaseHTTPRequestHandler):
    body = b""

    def _answer(self) -> None:
        body = self.body
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _deactivate(portal: Portal, name_prefix: str) -> None:
    portal.shell(
        "from imports.models import AwsTarget\n"
        f"AwsTarget.objects.filter(name__startswith='{name_prefix}').update(is_active=False)"
    )


def _garbage_target(portal: Portal, requester: User, garbage_url: str) -> str:
    portal.shell(
        "from imports.models import AwsTarget\n"
        "AwsTarget.objects.update_or_create(name='probe-garbage', defaults=dict(account_id='222222222222', "
        f"region='us-east-1', endpoint_url='{garbage_url}', is_active=True))"
    )
    other: dict[str, str] = {}

    def meanwhile() -> None:
        time.sleep(0.5)
        t0 = time.monotonic()
        answer = requester.get("/")
        other["page"] = f"dashboard {answer.status_code} in {time.monotonic() - t0:.1f} s"

    thread = threading.Thread(target=meanwhile)
    started = time.monotonic()
    thread.start()
    answer = requester.get("/requests/new/")
    took = time.monotonic() - started
    thread.join()
    _deactivate(portal, "probe-garbage")
    return f"{answer.status_code} in {took:.1f} s; meanwhile {other.get('page', 'no answer')}"


def _create_request(portal: Portal, username: str, name: str) -> int:
    return int(
        portal.shell(
            "from django.contrib.auth import get_user_model\n"
            "from imports import workflow\n"
            "from imports.models import AwsTarget\n"
            f"u = get_user_model().objects.get(username='{username}')\n"
            "t = AwsTarget.objects.get(name='Local AWS sandbox')\n"
            "r = workflow.submit_request(requester=u, fields=dict(target=t, windows_version='11', "
            "ec2_image_id='ami-05eed000000000008', ingestion_process='BYOL_REGULAR_WSP', "
            f"image_name='{name}', image_description='probe', justification='probe'))\n"
            "print(r.pk)"
        ).splitlines()[-1]
    )


def _wait_for_preflight(portal: Portal, pk: int, seconds: float = 90) -> bool:
    code = f"from imports.models import ImportRequest\nprint(bool(ImportRequest.objects.get(pk={pk}).preflight))"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if portal.shell(code).endswith("True"):
            return True
        time.sleep(2)
    return False


def _approve_as_superuser(portal: Portal, admin: User, pk: int) -> str:
    preflight = "" if _wait_for_preflight(portal, pk) else " (pre-flight had not run)"
    page = admin.get(f"/requests/{pk}/")
    if page.status_code != 200:
        return f"request page {page.status_code}"
    version = re.search(r'name="version" value="(\d+)"', page.text)
    answer = admin.post_form(
        f"/requests/{pk}/approve/",
        {"version": version.group(1) if version else "1", "comment": "probe"},
        page=page.text,
    )
    state = portal.shell(f"from imports.models import ImportRequest\nprint(ImportRequest.objects.get(pk={pk}).state)")
    verdict = {302: "allowed", 403: "refused (403)", 409: "not refused by role; stopped (409)"}.get(
        answer.status_code, f"HTTP {answer.status_code}"
    )
    return f"{verdict}; request now {state.splitlines()[-1]}{preflight}"


def _edit_without_roles(portal: Portal, pk: int) -> str:
    portal.shell(
        "from django.contrib.auth import get_user_model\n"
        "get_user_model().objects.get(username='requester2').groups.clear()"
    )
    user = User(portal, "requester2")
    if user.login().status_code != 302:
        return "requester2 cannot log in without groups"
    page = user.get(f"/requests/{pk}/edit/")
    if page.status_code != 200:
        return f"refused: GET edit form {page.status_code}"
    answer = user.post_form(
        f"/requests/{pk}/edit/", {"justification": "edited without any role", "image_description": "edited"}, page.text
    )
    if answer.status_code == 302:
        events = portal.shell(
            f"from imports.models import ImportRequest\nprint(ImportRequest.objects.get(pk={pk}).events.count())"
        )
        return f"allowed (302; the request has {events.splitlines()[-1]} events)"
    return f"refused ({answer.status_code})" if answer.status_code in (403, 404) else f"HTTP {answer.status_code}"


def _admin_history(admin: User, auditor: User) -> str:
    answer = admin.post_form(
        "/admin/imports/awstarget/add/",
        {"name": "probe-audited-target", "account_id": "333333333333", "region": "us-east-1", "_save": "Save"},
    )
    if answer.status_code != 302:
        return f"could not save the target ({answer.status_code})"
    history = auditor.get("/audit/admin-history/")
    if history.status_code != 200:
        return f"no (auditor's /audit/admin-history/ is {history.status_code})"
    return "yes (listed in /audit/admin-history/)" if "probe-audited-target" in history.text else "no (not listed)"


# --- the audit tamper probes, as an attacker with the database --------------------------------


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _old_way_hash(row: sqlite3.Row) -> str:
    created = datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC)
    payload = {
        "seq": row["seq"],
        "request": row["request_id"],
        "created_at": created.isoformat(),
        "actor": row["actor_id"],
        "action": row["action"],
        "from_state": row["from_state"],
        "to_state": row["to_state"],
        "comment": row["comment"],
        "data": json.loads(row["data"]),
        "prev_hash": row["prev_hash"],
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


@contextmanager
def _attacker_db(portal: Portal) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(portal.db, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        for op in ("update", "delete"):
            db.execute(f"DROP TRIGGER IF EXISTS imports_requestevent_no_{op}")
        yield db
        db.commit()
    finally:
        db.close()


def _short(verdict: str) -> str:
    if "NOT intact" in verdict or "problem" in verdict:
        found = re.findall(r"^((?:request history|anchor|admin history), (?:event #\d+|chain): .*)$", verdict, re.M)
        return "NOT intact" + (f" ({'; '.join(dict.fromkeys(line[:140] for line in found))})" if found else "")
    if "intact" in verdict:
        return "intact" + ("; matches the newest anchor" if "matches the newest anchor" in verdict else "")
    return verdict[:200]


def _wait_for_anchor(portal: Portal, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    verdict = portal.verify_audit()
    while "matches the newest anchor" not in verdict and time.monotonic() < deadline:
        if "anchor" not in verdict:  # no anchoring in this checkout
            return verdict
        time.sleep(2)
        verdict = portal.verify_audit()
    return verdict


def _rename(portal: Portal, auditor: User, pk: int) -> str:
    portal.shell(
        "from django.contrib.auth import get_user_model\n"
        "u = get_user_model().objects.get(username='requester')\n"
        "u.username = 'renamed-requester'\nu.save()"
    )
    page = auditor.get(f"/requests/{pk}/").text
    names = sorted(set(re.findall(r"<strong>\s*([^<]+?)\s*</strong>\s*·", page)))
    return f"the history names {', '.join(names) or '?'}; verify: {_short(portal.verify_audit())}"


def _edit_event(portal: Portal) -> str:
    with _attacker_db(portal) as db:
        row = db.execute("SELECT * FROM imports_requestevent ORDER BY seq DESC LIMIT 1").fetchone()
        columns = row.keys()
        db.execute("UPDATE imports_requestevent SET comment = 'rewritten by the attacker' WHERE id = ?", (row["id"],))
        if "key_id" in columns:  # downgrade to an unkeyed event, the only kind sha256 could pass for
            db.execute("UPDATE imports_requestevent SET key_id = '' WHERE id = ?", (row["id"],))
        edited = db.execute("SELECT * FROM imports_requestevent WHERE id = ?", (row["id"],)).fetchone()
        new_hash = _old_way_hash(edited)
        db.execute("UPDATE imports_requestevent SET hash = ? WHERE id = ?", (new_hash, row["id"]))
        db.execute("UPDATE imports_auditchainhead SET hash = ? WHERE id = 1", (new_hash,))
    return f"event #{row['seq']}: {_short(portal.verify_audit())}"


def _cut_newest(portal: Portal) -> str:
    with _attacker_db(portal) as db:
        newest, before = db.execute("SELECT id, seq, prev_hash FROM imports_requestevent ORDER BY seq DESC LIMIT 2")
        db.execute("DELETE FROM imports_requestevent WHERE id = ?", (newest["id"],))
        db.execute("UPDATE imports_auditchainhead SET seq = ?, hash = ? WHERE id = 1", (before["seq"], newest[2]))
    return f"event #{newest['seq']} cut: {_short(portal.verify_audit())}"


# --- one checkout -------------------------------------------------------------------------------


def _keep_alive(users: list[User], stop: threading.Event) -> None:
    """A page every 20 s for each probing user, so that the short idle timeout ends only the
    sessions left idle on purpose."""
    while not stop.wait(20):
        for user in users:
            with suppress(Exception):
                user.get("/")


def probe_checkout(checkout: Path, var_dir: Path, extra_env: dict[str, str], garbage_urls: dict[str, str]) -> Cells:
    cells: Cells = {}
    portal = Portal(checkout=checkout, var_dir=var_dir, extra_env=extra_env)
    with running(portal):
        users = {name: User(portal, name) for name in ("requester", "auditor", "admin")}
        for user in users.values():
            if user.login().status_code != 302:
                raise RuntimeError(f"{user.username} could not log in")
        requester, auditor, admin = users["requester"], users["auditor"], users["admin"]
        stop = threading.Event()
        threading.Thread(target=_keep_alive, args=(list(users.values()), stop), daemon=True).start()
        idle, unused = User(portal, "auditor"), User(portal, "auditor")
        unused.login()
        idle.login()
        idle.get("/")  # where a browser lands after signing in
        idle_since = time.monotonic()
        _run(cells, "2a", lambda: _session_lifetime(requester))
        request_a = _create_request(portal, "requester", "probe-a")
        request_b = _create_request(portal, "requester2", "probe-b")
        reset = portal.url + "/accounts/password_reset/"
        _run(cells, "3", lambda: f"HTTP {requests.get(reset, timeout=30).status_code}")
        _run(cells, "6a", lambda: _headers(requester.get("/")))
        export = "/audit/exports/" if auditor.get("/audit/exports/").status_code == 200 else "/audit/export.csv"
        _run(cells, "6b", lambda: f"{export}: {_headers(auditor.get(export))}")
        _run(
            cells,
            "7",
            lambda: _status(admin.get("/admin/imports/importrequest/?created_at__year=-1", allow_redirects=False)),
        )
        _run(cells, "4", lambda: _ssrf(admin))
        for key, url in garbage_urls.items():
            _run(cells, key, lambda url=url: _garbage_target(portal, requester, url))
        _run(cells, "9a", lambda: _approve_as_superuser(portal, admin, request_a))
        _run(cells, "9b", lambda: _edit_without_roles(portal, request_b))
        _run(cells, "10", lambda: _admin_history(admin, auditor))
        anchored = _short(_wait_for_anchor(portal))
        _run(cells, "8c", lambda: _rename(portal, auditor, request_a) + f" (before tampering: {anchored})")
        _run(cells, "8a", lambda: _edit_event(portal))
        _run(cells, "8b", lambda: _cut_newest(portal))
        time.sleep(max(0.0, IDLE_WAIT_SECONDS - (time.monotonic() - idle_since)))
        for key, user in (("2b", idle), ("2c", unused)):
            _run(
                cells,
                key,
                lambda user=user: (
                    "signed out: redirected to log-in" if not user.signed_in() else "none: still signed in"
                ),
            )
        _run(cells, "1", lambda: _brute_force(portal))
        stop.set()
    return cells


def _commit_of(checkout: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code before issue 10")
    parser.add_argument("--after", type=Path, required=True, help="checkout of today's main")
    parser.add_argument("--keep", type=Path, help="keep the portals' folders (databases, logs) here")
    args = parser.parse_args()
    load_start = os.getloadavg()
    servers = {key: garbage_server(body) for key, body in GARBAGE.items()}
    garbage_urls = {key: f"http://127.0.0.1:{server.server_address[1]}" for key, server in servers.items()}
    runs = {
        "before": (args.before.resolve(), {}),
        "after": (args.after.resolve(), {"PORTAL_SESSION_IDLE_MINUTES": str(IDLE_MINUTES)}),
    }
    with tempfile.TemporaryDirectory(prefix="security-probe-") as tmp, ThreadPoolExecutor(2) as pool:
        root = args.keep.resolve() if args.keep else Path(tmp)
        futures = {
            name: pool.submit(probe_checkout, checkout, root / name, env, garbage_urls)
            for name, (checkout, env) in runs.items()
        }
        results = {}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except Exception as exc:  # a portal that did not start says why in its column
                results[name] = {key: f"portal did not run: {exc}"[:200] for key, _ in PROBES}
    for server in servers.values():
        server.shutdown()
    load_end = os.getloadavg()
    before, after = (f"{name} ({_commit_of(runs[name][0])})" for name in ("before", "after"))
    print(f"| probe | {before} | {after} |\n| --- | --- | --- |")
    for key, title in PROBES:
        cell = {name: results[name].get(key, "not run").replace("|", "\\|") for name in results}
        print(f"| {key}. {title} | {cell['before']} | {cell['after']} |")
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average (1/5/15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_start)} at the start, {' '.join(f'{x:.2f}' for x in load_end)} "
        "at the end; both portals with DJANGO_DEBUG=true (so the admin's second factor, PORTAL_ADMIN_OTP, is off)"
    )


if __name__ == "__main__":
    main()
