"""Run the local AWS sandbox (moto + the WorkSpaces BYOL import operations) until stopped."""

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from imports.sandbox import (
    DEFAULT_HOST,
    DEFAULT_IMPORT_DELAY,
    DEFAULT_PORT,
    DEFAULT_REGION,
    SANDBOX_ACCOUNT_ID,
    start_sandbox,
)
from imports.sandbox.state import InvalidConfig


class Command(BaseCommand):
    help = (
        "Start the local AWS sandbox (STS, EC2 and WorkSpaces with ImportWorkspaceImage) on HOST:PORT "
        "and serve until SIGINT or SIGTERM. Control endpoints live under /_sandbox/."
    )
    # The sandbox touches no database and no Django model; skip the checks that would.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
        parser.add_argument(
            "--import-delay",
            type=float,
            default=DEFAULT_IMPORT_DELAY,
            help=f"seconds an import stays PENDING (default {DEFAULT_IMPORT_DELAY:g}; AWS takes 90 minutes or more)",
        )
        parser.add_argument("--log-requests", action="store_true", help="log one line per HTTP request")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        sandbox = self._start(options)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.stdout.write(
            f"AWS sandbox listening on {sandbox.url} (account {SANDBOX_ACCOUNT_ID}, region {DEFAULT_REGION}, "
            f"import delay {options['import_delay']:g}s). Stop with Ctrl+C.",
        )
        self.stdout.flush()
        # A timed wait keeps the main thread waking up, so the signal handler runs promptly.
        while not stop.wait(timeout=0.5):
            pass
        sandbox.stop()
        self.stdout.write("AWS sandbox stopped.")

    def _start(self, options: dict[str, Any]) -> Any:
        try:
            return start_sandbox(
                host=options["host"],
                port=options["port"],
                import_delay=options["import_delay"],
                log_requests=options["log_requests"],
            )
        except InvalidConfig as error:
            raise CommandError(f"--import-delay: {error}") from error
        except OSError as error:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {error}") from error
