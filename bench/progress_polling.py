"""How the Image Builder path's progress polling shares the account's WorkSpaces rate: calls per
pass (DescribeWorkspaceImages for the state, 25 ids a call, and one
DescribeCustomWorkspaceImageImport per image for the progress) and how stale each progress
figure gets, with N imports in flight.

Run by hand (not by CI):  .venv/bin/python bench/progress_polling.py [10 100 1000] [--seconds 40]

A throw-away SQLite database and an in-process local AWS sandbox whose imports never end (the
import delay is an hour). A poll pass starts every `--interval` seconds, as beat sends them, for
a fixed window; the shared rate limiter is on at AWS's documented 2 calls/s with bursts of 5 per
account, as in production. At the end it reads every request's `progress_checked_at`: the
median and worst age of the progress figures, and how many were never asked in the window.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-progress-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.update(AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from imports import aws, execution
from imports.models import AwsTarget, ImportRequest
from imports.ratelimit import DatabaseTokenBucket
from sandbox import SANDBOX_ACCOUNT_ID, control_sandbox, start_sandbox

INFRASTRUCTURE = f"arn:aws:imagebuilder:us-east-1:{SANDBOX_ACCOUNT_ID}:infrastructure-configuration/byol-import"


def import_images(target: AwsTarget, count: int) -> list[str]:
    """Real Image Builder imports in the sandbox, made with the rate limiter off."""
    aws.use_rate_limiter(None)
    ids = []
    for n in range(count):
        parameters = {
            "ImageName": f"bench-ib-{n}",
            "ImageDescription": "bench",
            "ComputeType": "BASE",
            "Protocol": "DCV",
            "ImageSource": {"Ec2ImageId": "ami-05eed000000000008"},
            "InfrastructureConfigurationArn": INFRASTRUCTURE,
            "Platform": "WINDOWS",
            "OsVersion": "Windows_11",
        }
        ids.append(aws.import_image(target, parameters=parameters, identity="bench").image_id)
    aws.use_rate_limiter(DatabaseTokenBucket())
    return ids


def main(sizes: list[int], seconds: float, interval: float) -> None:
    call_command("migrate", verbosity=0)
    sandbox = start_sandbox(port=0, import_delay=3600)
    target = AwsTarget.objects.create(
        name="bench", account_id=SANDBOX_ACCOUNT_ID, region="us-east-1", endpoint_url=sandbox.url
    )
    user = get_user_model().objects.create_user("bench")
    image_ids = import_images(target, max(sizes))
    print(f"window {seconds:g} s per size, a pass every {interval:g} s, rate 2 calls/s burst 5; load {os.getloadavg()}")
    header = (
        "in flight",
        "passes",
        "state calls",
        "progress calls",
        "calls/s",
        "median age (s)",
        "worst age (s)",
        "never asked",
    )
    widths = (9, 6, 11, 14, 7, 14, 13, 11)
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)))
    for size in sizes:
        ImportRequest.objects.filter(state="importing").update(state="available")
        now = timezone.now()
        ImportRequest.objects.bulk_create(
            ImportRequest(
                target=target,
                requester=user,
                state="importing",
                import_path="image_builder",
                windows_version="11",
                source_kind="ami",
                ec2_image_id="ami-05eed000000000008",
                infrastructure_configuration_arn=INFRASTRUCTURE,
                compute_type="BASE",
                protocol="DCV",
                image_name=f"bench-{size}-{n}",
                image_description="bench",
                justification="bench",
                aws_image_id=image_ids[n],
                import_started_at=now,
            )
            for n in range(size)
        )
        control_sandbox(sandbox.url, "reset", {})
        passes, state_calls, progress_calls = 0, 0, 0
        started = time.monotonic()
        # A pass every `interval` seconds, as beat sends them, each bounded to that interval.
        while (elapsed := time.monotonic() - started) < seconds:
            begun = time.monotonic()
            report = execution.poll_target(target.pk, seconds=interval)
            passes += 1
            state_calls += report.describe_calls
            progress_calls += report.progress_calls
            time.sleep(max(0.0, interval - (time.monotonic() - begun)))
        elapsed = time.monotonic() - started
        made = control_sandbox(sandbox.url, "calls")
        assert made.get("DescribeCustomWorkspaceImageImport", 0) == progress_calls, made
        end = timezone.now()
        checked = ImportRequest.objects.filter(state="importing").values_list("progress_checked_at", flat=True)
        ages = [(end - at).total_seconds() for at in checked if at is not None]
        never = sum(1 for at in checked if at is None)
        rate = (state_calls + progress_calls) / elapsed
        median = statistics.median(ages) if ages else float("nan")
        worst = max(ages) if ages else float("nan")
        print(
            f"{size:>9} {passes:>6} {state_calls:>11} {progress_calls:>14} {rate:>7.2f} "
            f"{median:>14.1f} {worst:>13.1f} {never:>11}"
        )
    sandbox.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each size is polled")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between passes (PORTAL_POLL_SECONDS)")
    options = parser.parse_args()
    main(options.sizes, options.seconds, options.interval)
