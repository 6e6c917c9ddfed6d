"""How many DescribeWorkspaceImages calls status tracking makes, and how long its passes take:
each pass is bounded in time (PORTAL_POLL_PASS_SECONDS), so it never meets a task's time limits.

Run by hand (not by CI):  .venv/bin/python bench/poll_calls.py [100 1000 5000 ...]

Uses a throw-away SQLite database and an in-process local AWS sandbox. The importing requests
are written directly (bulk insert) since only the poll pass is measured; their image ids are
real images imported into the sandbox beforehand, so AWS's answers are realistic. The shared
rate limiter (2 calls/s, burst 5 per account) is on, as in production.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-poll-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.update(AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox")

import django

django.setup()

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from imports import aws, execution
from imports.models import AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from sandbox import control_sandbox, start_sandbox


def main(sizes: list[int]) -> None:
    call_command("migrate", verbosity=0)
    sandbox = start_sandbox(port=0, import_delay=3600)
    target = AwsTarget.objects.create(
        name="bench", account_id="123456789012", region="us-east-1", endpoint_url=sandbox.url
    )
    user = get_user_model().objects.create_user("bench")
    # Real PENDING images in the sandbox, imported with the rate limiter off.
    aws.use_rate_limiter(None)
    image_ids = []
    for n in range(max(sizes)):
        result = aws.import_image(
            target,
            parameters={
                "Ec2ImageId": "ami-05eed000000000001",
                "IngestionProcess": "BYOL_REGULAR_WSP",
                "ImageName": f"bench-{n}",
                "ImageDescription": "bench",
            },
            identity="bench",
        )
        image_ids.append(result.image_id)
    aws.use_rate_limiter(DatabaseTokenBucket())
    print(f"pass time limit {settings.PORTAL_POLL_PASS_SECONDS} s (PORTAL_POLL_PASS_SECONDS); load {os.getloadavg()}")
    header = ("importing", "passes", "Describe calls", "ids/call", "longest pass (s)", "all asked (s)")
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, (10, 7, 15, 9, 17, 14), strict=True)))
    for size in sizes:
        ImportRequest.objects.filter(state="importing").update(state="available")
        ImportRequest.objects.bulk_create(
            ImportRequest(
                target=target,
                requester=user,
                state="importing",
                windows_version="11",
                ec2_image_id="ami-05eed000000000001",
                ingestion_process="BYOL_REGULAR_WSP",
                image_name=f"bench-{size}-{n}",
                image_description="bench",
                justification="bench",
                aws_image_id=image_ids[n],
                import_started_at=timezone.now(),
            )
            for n in range(size)
        )
        control_sandbox(sandbox.url, "reset", {})
        # Passes one after the other, as beat would send them, until every request was asked once;
        # each pass stops at its time limit and the next starts with what it did not reach.
        passes, timings, calls = 0, [], 0
        started_all = time.perf_counter()
        while ImportRequest.objects.filter(state="importing", polled_at__isnull=True).exists():
            started = time.perf_counter()
            report = execution.poll_target(target.pk)
            timings.append(time.perf_counter() - started)
            passes += 1
            calls += report.describe_calls
        made = control_sandbox(sandbox.url, "calls").get("DescribeWorkspaceImages", 0)
        assert made == calls, (made, calls)
        total = time.perf_counter() - started_all
        print(f"{size:>10} {passes:>7} {made:>15} {size / made:>9.1f} {max(timings):>17.1f} {total:>14.1f}")
    sandbox.stop()


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000, 5000])
