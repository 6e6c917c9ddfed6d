"""Time from an approval's commit to the ImportWorkspaceImage call arriving at the sandbox.

Run by hand (not by CI), with Redis on 127.0.0.1:6379:

    .venv/bin/python bench/approval_latency.py [--requests 50] [--redis-db 14]

A real Celery worker (prefork, concurrency 2) on Redis, a throw-away SQLite database in WAL
mode shared by this process and the worker, and the local AWS sandbox in this process. For
each request, one after the other: submit, let the worker run the pre-flight checks, approve,
then read when the sandbox received the import (the image's Created time) and subtract the
approval event's time. Beside it, the bare boto3 import call against the same sandbox.
The shared rate limiter (2 WorkSpaces calls/s, burst 5) is on in the worker, as in production.
The submission's pre-flight checks spend two WorkSpaces calls; `--pause` seconds between them
and the approval let the bucket refill, so that what is measured is the portal's own path
(outbox, broker, claim, the STS and EC2 checks, audit events, the turn at the limiter) with a
turn free, as the issue's goal states it.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VAR = tempfile.mkdtemp(prefix="bench-latency-")


def configure(redis_db: int) -> dict[str, str]:
    env = {
        "PORTAL_VAR_DIR": VAR,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(env)
    return {**os.environ, **env}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<42} n={len(ms):<3} median {statistics.median(ms):8.1f} ms   "
        f"p95 {percentile(ms, 0.95):8.1f} ms   max {max(ms):8.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument(
        "--pause", type=float, default=2.5, help="seconds between a request's checks and its approval (refill)"
    )
    parser.add_argument(
        "--calls-per-second", type=int, default=2, help="the rate limiter's rate (AWS documents 2; 1000 = off)"
    )
    options = parser.parse_args()
    env = configure(options.redis_db)
    env["PORTAL_WORKSPACES_CALLS_PER_SECOND"] = os.environ["PORTAL_WORKSPACES_CALLS_PER_SECOND"] = str(
        options.calls_per_second
    )

    import django
    import redis

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from imports import aws, workflow
    from imports.models import AwsTarget, ImportRequest, RequestEvent
    from sandbox import start_sandbox

    redis.Redis(db=options.redis_db).flushdb()
    call_command("migrate", verbosity=0)
    sandbox = start_sandbox(port=0, import_delay=3600)
    target = AwsTarget.objects.create(
        name="bench", account_id="123456789012", region="us-east-1", endpoint_url=sandbox.url
    )
    requester = get_user_model().objects.create_user("bench-requester")
    requester.groups.add(Group.objects.get(name="Requesters"))
    approver = get_user_model().objects.create_user("bench-approver")
    approver.groups.add(Group.objects.get(name="Approvers"))

    worker_log = Path(VAR, "worker.log").open("w")  # noqa: SIM115 -- open for the worker's lifetime
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=worker_log,
    )
    try:
        time.sleep(3)
        latencies = []
        for n in range(options.requests):
            fields = {
                "target": target,
                "windows_version": "11",
                "ec2_image_id": "ami-05eed000000000001",
                "ingestion_process": "BYOL_REGULAR_WSP",
                "image_name": f"latency-{n}",
                "image_description": "bench",
                "tags": [],
                "office": "",
                "justification": "bench",
            }
            request = workflow.submit_request(requester=requester, fields=fields)
            wait_until(lambda pk=request.pk: ImportRequest.objects.get(pk=pk).preflight_passed, 30)
            time.sleep(options.pause)
            workflow.approve_request(request_id=request.pk, actor=approver, expected_version=1)
            approved_at = RequestEvent.objects.get(request=request, action="approve").created_at
            wait_until(lambda pk=request.pk: ImportRequest.objects.get(pk=pk).state == "importing", 60)
            image = aws.describe_images(target, [ImportRequest.objects.get(pk=request.pk).aws_image_id])
            created = datetime.fromisoformat(next(iter(image.values())).created)
            latencies.append((created - approved_at).total_seconds())
        aws.use_rate_limiter(None)
        bare = []
        for n in range(options.requests):
            started = time.perf_counter()
            aws.import_image(
                target,
                parameters={
                    "Ec2ImageId": "ami-05eed000000000001",
                    "IngestionProcess": "BYOL_REGULAR_WSP",
                    "ImageName": f"bare-{n}",
                    "ImageDescription": "bench",
                },
                identity="bench",
            )
            bare.append(time.perf_counter() - started)
        print(summary("approval commit -> import call at sandbox", latencies))
        print(summary("bare boto3 import_workspace_image call", bare))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        sandbox.stop()


def wait_until(condition: "Callable[[], bool]", seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {seconds} s; worker log: {VAR}/worker.log")
        time.sleep(0.02)


if __name__ == "__main__":
    main()
