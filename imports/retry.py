"""Waiting for AWS: backoff with jitter, and the signal that work must be tried again later."""

import random
from datetime import datetime

from django.conf import settings


class TryAgain(Exception):
    """The work waits: run it again in `seconds`, resuming with `lease_token` at `due_at`."""

    def __init__(self, seconds: float, lease_token: str, due_at: datetime) -> None:
        super().__init__(f"try again in {seconds:.0f} s")
        self.seconds = seconds
        self.lease_token = lease_token
        self.due_at = due_at


def backoff(attempt: int, *, base: float = 5.0, cap: float | None = None) -> float:
    """Exponential backoff with jitter: half the delay fixed, half random, so that workers that
    failed together do not retry together. The cap keeps a request that waited through an
    outage close behind AWS's return.
    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/"""
    cap = settings.PORTAL_RETRY_MAX_SECONDS if cap is None else cap
    # The exponent stops growing long after the cap is reached: a long outage's thousandth
    # attempt must not overflow a float.
    ceiling = min(cap, base * 2 ** min(max(0, attempt - 1), 30))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 -- jitter, not a secret
