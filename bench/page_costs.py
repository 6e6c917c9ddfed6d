"""What each portal page costs in Python, in one process, without a server or a load tool.

    .venv/bin/python bench/page_costs.py [--code DIR] [--views 40] [--profile list]

Signs in as bench/pages.py's reader (an approver who is also an auditor) with Django's test
client, against the scale database bench/pages.py seeds, with the same settings (DEBUG off),
and prints the median and the fastest of --views views of each page, after five to warm up
(the dashboard's charts are then cached, as they are for all but one view in five minutes).
`--code /tmp/main-before` measures another checkout (a `git worktree` of an earlier commit) on
the same database; `--profile NAME` writes a cProfile of that page's views to NAME.prof and
prints its 40 most expensive calls.

A page's time here is what a gunicorn worker spends on it, less the HTTP parsing: with 8
clients on 2 sync workers, a page must cost under about 12 ms of it for a p95 of 50 ms.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from pages import DATABASE_URL, READER, environment, landmarks


def page_urls() -> dict[str, str]:
    marks = landmarks()
    return {
        "dashboard": "/",
        "request list": "/requests/",
        "list, state filter": "/requests/?state=failed",
        "list, search": f"/requests/?q={marks['search']}",
        "list, deep page": f"/requests/?after={marks['cursor']}",
        "detail, busiest request": f"/requests/{marks['busiest']}/",
        "approvals queue": "/approvals/",
        "status endpoint": f"/requests/{marks['busiest']}/status/",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--views", type=int, default=40)
    parser.add_argument("--profile", default="", help="a page's name (or the start of it) to profile")
    args = parser.parse_args()
    urls = page_urls()
    os.environ.update(environment())
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.chdir(args.code)
    sys.path.insert(0, str(args.code.resolve()))
    # Imported only once the checkout to measure is on the path.
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=READER))
    print(f"{args.code}: median and fastest of {args.views} views, load average {os.getloadavg()}")
    for name, url in urls.items():
        for _ in range(5):
            if client.get(url).status_code != 200:
                sys.exit(f"{name}: {url} did not answer 200")
        profile = cProfile.Profile() if args.profile and name.startswith(args.profile) else None
        times = []
        for _ in range(args.views):
            started = time.perf_counter()
            if profile:
                profile.enable()
            client.get(url)
            if profile:
                profile.disable()
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name:26} {statistics.median(times):6.1f} ms  (fastest {min(times):.1f} ms)", flush=True)
        if profile:
            profile.dump_stats(f"{args.profile}.prof")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
