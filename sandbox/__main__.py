"""Run the local AWS sandbox until SIGINT or SIGTERM: ``python -m sandbox --port 5055``.

A plain command, not a Django management command: the sandbox needs no settings and no
database, and the production image (which has neither moto nor this package) never runs it.
"""

import argparse
import signal
import sys
import threading
from types import FrameType

from . import DEFAULT_HOST, DEFAULT_IMPORT_DELAY, DEFAULT_PORT, DEFAULT_REGION, SANDBOX_ACCOUNT_ID, start_sandbox
from .state import InvalidConfig


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=(
            "Start the local AWS sandbox (STS, EC2, S3 and WorkSpaces with ImportWorkspaceImage) on HOST:PORT "
            "and serve until SIGINT or SIGTERM. Control endpoints live under /_sandbox/."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--import-delay",
        type=float,
        default=DEFAULT_IMPORT_DELAY,
        help=f"seconds an import stays PENDING (default {DEFAULT_IMPORT_DELAY:g}; AWS takes 90 minutes or more)",
    )
    parser.add_argument("--log-requests", action="store_true", help="log one line per HTTP request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    try:
        sandbox = start_sandbox(
            host=options.host,
            port=options.port,
            import_delay=options.import_delay,
            log_requests=options.log_requests,
        )
    except InvalidConfig as error:
        print(f"--import-delay: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot listen on {options.host}:{options.port}: {error}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(
        f"AWS sandbox listening on {sandbox.url} (account {SANDBOX_ACCOUNT_ID}, region {DEFAULT_REGION}, "
        f"import delay {options.import_delay:g}s). Stop with Ctrl+C.",
        flush=True,
    )
    # A timed wait keeps the main thread waking up, so the signal handler runs promptly.
    while not stop.wait(timeout=0.5):
        pass
    sandbox.stop()
    print("AWS sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
