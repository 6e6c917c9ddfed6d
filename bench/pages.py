"""Every portal page and the admin's changelists at 100,000 requests and a million events.

    .venv/bin/python bench/pages.py [--code DIR] [--label now] [--seconds 15] [--clients 8]

Seeds the scale database once (seed_scale, PostgreSQL database `byol_portal_scale` at
127.0.0.1:5432, user postgres, kept for the next run), migrates it with the code under test,
starts gunicorn as production does (2 sync workers, DEBUG off, the code's own settings), signs
in, and drives each page for --seconds with wrk (--clients connections on --threads threads),
one page at a time, the admin's request changelist among them. Prints req/s, p50, p95, errors,
the queries each page runs (counted once in a separate process with Django's test client
against the same database) and each page's throughput as a multiple of the admin changelist's
in the same run (driven first and again last; the multiple is of the mean of the two), with
the machine's load average at the start and at the end.

`--code /tmp/main-before` serves another checkout (a `git worktree` of an earlier commit) against
the same database, to measure before and after with the same script.

wrk (`apt-get install wrk`; a tool for this benchmark by hand, not for CI) runs a closed loop:
each connection sends the next GET, with the session's cookie, as soon as the last one was
answered. bench/wrk_report.lua has it report its figures as JSON; an answer other than 200 is
an error.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DATABASE = "byol_portal_scale"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
AUDIT_KEY = "bench-scale-audit-key-0123456789abcdef-0123456789"
# The portal's pages are read by an approver who is also an auditor (no superuser: a superuser's
# permission checks read nothing); the admin's by a superuser.
READER, ADMIN = "bench-reader", "bench"
PASSWORD = "bench-pages-correct-horse-2026"  # noqa: S105 -- made-up users of a benchmark database
WRK_REPORT = Path(__file__).with_name("wrk_report.lua")

# Each page twice: the first view's queries, and the next one's where it differs (the
# dashboard's charts are cached a few minutes).
COUNT_QUERIES = """
import json, sys
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
clients = {}
for username in (%r, %r):
    clients[username] = Client()
    clients[username].force_login(get_user_model().objects.get(username=username))
counts = {}
for name, (username, url) in json.loads(%r).items():
    views = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            status = clients[username].get(url).status_code
        views.append(str(len(queries)) if status == 200 else f"HTTP {status}")
    counts[name] = views[0] if views[0] == views[1] else f"{views[0]} ({views[1]} cached)"
print("COUNTS " + json.dumps(counts))
"""

MAKE_USERS = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
for username, superuser in (({READER!r}, False), ({ADMIN!r}, True)):
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = superuser
    user.set_password({PASSWORD!r})
    user.save()
    user.groups.add(*Group.objects.filter(name__in=["Approvers", "Auditors"]))
"""


def environment() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PORTAL_"))},
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-pages-secret-key-" + "x7Kq9!pZ" * 6,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "PORTAL_AUDIT_KEY": AUDIT_KEY,
        "PORTAL_ADMIN_OTP": "false",
        "PORTAL_LOG_LEVEL": "WARNING",
    }


def manage(code: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 -- our own manage.py
        [str(PYTHON), "manage.py", *args],
        cwd=code,
        env=env or environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        sys.exit(f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def prepare(code: Path, requests: int, busy_events: int) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    manage(code, "migrate", "-v0")
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://")) as conn:
        seeded = conn.execute("SELECT EXISTS (SELECT 1 FROM imports_requestevent)").fetchone()[0]
    if not seeded:
        print(f"seeding {requests} requests (once; the database is kept) ...", flush=True)
        out = manage(ROOT, "seed_scale", f"--requests={requests}", f"--busy-events={busy_events}", "--allow-debug-off")
        print(out.strip().splitlines()[-1])
    manage(code, "collectstatic", "--noinput", "-v0")
    manage(code, "shell", "-c", MAKE_USERS)


def landmarks() -> dict[str, str]:
    """The busiest request, a deep position in the list (the 50,000th request), a requester, and
    a search: the department and month of that deep request's image name (about 300 rows)."""
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://")) as conn:
        busiest = conn.execute(
            "SELECT request_id FROM imports_requestevent GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        micros, pk, image_name = conn.execute(
            "SELECT (extract(epoch FROM created_at) * 1000000)::bigint, id, image_name FROM imports_importrequest "
            "ORDER BY created_at DESC, id DESC OFFSET 49999 LIMIT 1"
        ).fetchone()
        requester_id, requester = conn.execute(
            "SELECT u.id, u.username FROM auth_user u JOIN imports_importrequest r ON r.requester_id = u.id "
            "ORDER BY r.id LIMIT 1"
        ).fetchone()
        in_charts = conn.execute(
            "SELECT count(*) FROM imports_importrequest WHERE created_at > now() - interval '12 weeks'"
        ).fetchone()[0]
    # win11-finance-20250312-0050000: finance-202503
    _, department, day, _ = image_name.split("-")
    return {
        "busiest": str(busiest),
        "cursor": f"{micros}_{pk}",
        "requester_id": str(requester_id),
        "requester": requester,
        "search": f"{department}-{day[:6]}",
        "in_charts": str(in_charts),
    }


def pages(keyset: bool, marks: dict[str, str]) -> dict[str, str]:
    busiest = marks["busiest"]
    deep = f"after={marks['cursor']}" if keyset else "page=2000"
    requester = marks["requester"] if keyset else marks["requester_id"]
    return {
        "admin: request changelist": "/admin/imports/importrequest/",
        "dashboard": "/",
        "request list": "/requests/",
        "list, state filter": "/requests/?state=failed",
        "list, requester filter": f"/requests/?requester={requester}",
        "list, search": f"/requests/?q={marks['search']}",
        "list, page 2000 (row 50,000)": f"/requests/?{deep}",
        f"detail, busiest request (#{busiest})": f"/requests/{busiest}/",
        "approvals queue": "/approvals/",
        "status endpoint": f"/requests/{busiest}/status/",
        "admin: event changelist": "/admin/imports/requestevent/",
        "admin: event changelist, deep page": "/admin/imports/requestevent/?p=" + ("99" if keyset else "5000"),
        "admin: event changelist, to_state filter": "/admin/imports/requestevent/?to_state=failed",
        "admin: busiest request's change page": f"/admin/imports/importrequest/{busiest}/change/",
    }


class Gunicorn:
    def __init__(self, code: Path, port: int, workers: int) -> None:
        # Another server still on the port (a run stopped half-way) would answer for this one:
        # its code and settings would be measured under this one's name.
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            pass  # the port is free
        else:
            sys.exit(f"something already listens on 127.0.0.1:{port}: stop it or pass --port")
        self.process = subprocess.Popen(  # noqa: S603 -- our own gunicorn
            [str(GUNICORN), "portal.wsgi:application", f"--workers={workers}", f"--bind=127.0.0.1:{port}"],
            cwd=code,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/accounts/login/")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        sys.exit("gunicorn did not start")

    def stop(self) -> None:
        # A worker still rendering a page of thousands of events would hold a graceful stop.
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def sign_in(port: int, username: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/accounts/login/")
    response = connection.getresponse()
    page = response.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie") or "").group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}"}
    connection.request("POST", "/accounts/login/", body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    session = re.search(r"sessionid=([^;]+)", ", ".join(response.headers.get_all("Set-Cookie") or []))
    if response.status != 302 or not session:
        sys.exit(f"sign-in failed: {response.status}")
    return f"sessionid={session.group(1)}; csrftoken={csrf_cookie}"


def drive(port: int, cookie: str, url: str, seconds: float, clients: int, threads: int) -> dict[str, float]:
    """wrk's closed loop on one page: each connection sends the next GET once the last is answered."""
    result = subprocess.run(  # noqa: S603 -- wrk, on our own server
        [
            shutil.which("wrk") or "wrk",
            f"--threads={min(threads, clients)}",
            f"--connections={clients}",
            f"--duration={seconds:g}s",
            # A slow page (an old checkout's) still counts with its real time, not as a timeout.
            "--timeout=120s",
            f"--script={WRK_REPORT}",
            f"--header=Cookie: {cookie}",
            f"http://127.0.0.1:{port}{url}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = re.search(r"^WRK (\{.*\})$", result.stdout, re.MULTILINE)
    if result.returncode or not report:
        sys.exit(f"wrk failed on {url}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    figures = json.loads(report.group(1))
    return {
        "requests": figures["requests"],
        "rps": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50": figures["p50_us"] / 1e6,
        "p95": figures["p95_us"] / 1e6,
        "errors": figures["not_200"] + sum(figures[kind] for kind in ("connect", "read", "write", "timeout")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    parser.add_argument("--label", default="now")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8, help="wrk's connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--requests", type=int, default=100_000, help="requests to seed, if the database is empty")
    parser.add_argument("--busy-events", type=int, default=5000)
    parser.add_argument("--only", default="", help="run only the pages whose name contains this")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/pages.py drives the pages with wrk: apt-get install wrk")
    code = args.code.resolve()
    prepare(code, args.requests, args.busy_events)
    marks = landmarks()
    keyset = (code / "imports" / "paging.py").exists()
    urls = pages(keyset, marks)
    who = {name: (ADMIN if name.startswith("admin:") else READER, url) for name, url in urls.items()}
    counted = manage(code, "shell", "-c", COUNT_QUERIES % (READER, ADMIN, json.dumps(who)))
    queries = json.loads(counted.split("COUNTS ", 1)[1])
    server = Gunicorn(code, args.port, args.workers)
    print(
        f"\n{args.label} ({code}), wrk: {args.clients} connections on {args.threads} threads, "
        f"{args.workers} gunicorn workers, {args.seconds:g} s each; {marks['in_charts']} requests in the "
        f"dashboard's 12 weeks"
    )
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}\n")
    # The admin changelist is driven first and again last, and each page's multiple is of the
    # mean of the two: on a shared machine one reading of the yardstick can be off by a third.
    admin = "admin: request changelist"
    runs = [(name, *who[name]) for name in who if not args.only or args.only in name or name == admin]
    runs.append((f"{admin} (again, last)", *who[admin]))
    results = []
    try:
        cookies = {username: sign_in(args.port, username) for username in (READER, ADMIN)}
        for name, username, url in runs:
            drive(args.port, cookies[username], url, 1, 2, 1)  # warm both workers' connections and caches
            results.append((name, drive(args.port, cookies[username], url, args.seconds, args.clients, args.threads)))
            print(f"  {name}: {results[-1][1]['rps']:.1f} req/s", file=sys.stderr, flush=True)
    finally:
        server.stop()
    admin_rps = (results[0][1]["rps"] + results[-1][1]["rps"]) / 2
    print("| code | page | req/s | p50 | p95 | errors | queries | x admin changelist |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results:
        print(
            f"| {args.label} | {name} | {r['rps']:.1f} | {r['p50'] * 1000:.0f} ms | {r['p95'] * 1000:.0f} ms "
            f"| {r['errors']} | {queries[name.removesuffix(' (again, last)')]} | {r['rps'] / admin_rps:.1f} |"
        )
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
