"""Keeping the portal's own WorkSpaces calls within AWS's documented rate.

AWS documents the WorkSpaces API rate as 2 calls per second with bursts of 5, per account
(https://docs.aws.amazon.com/workspaces/latest/api/welcome.html, "Throttling"). Every worker
process and the web server share one token bucket per account, kept in the database: a row
lock serialises takers on PostgreSQL and SQLite alike, so no extra server is needed.
"""

import time
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from imports.models import AccountRateLimit

RATE_PER_SECOND = 2.0
BURST = 5


class DatabaseTokenBucket:
    """`acquire(account_id)` returns once a call fits; each call costs one token."""

    def __init__(
        self,
        *,
        rate: float = RATE_PER_SECOND,
        burst: int = BURST,
        now: Callable[[], datetime] = timezone.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._sleep = sleep

    def acquire(self, key: str) -> None:
        while (wait := self.try_take(key)) > 0:
            self._sleep(wait)

    def try_take(self, key: str) -> float:
        """Take a token if there is one and return 0, else return the seconds until there is."""
        with transaction.atomic():
            now = self._now()
            bucket, _ = AccountRateLimit.objects.select_for_update().get_or_create(
                account_id=key, defaults={"tokens": float(self.burst), "refilled_at": now}
            )
            elapsed = max(0.0, (now - bucket.refilled_at).total_seconds())
            tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            if wait == 0.0:
                tokens -= 1
            AccountRateLimit.objects.filter(account_id=key).update(tokens=tokens, refilled_at=now)
            return wait
