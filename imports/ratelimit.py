"""Keeping the portal's own WorkSpaces calls within AWS's documented rate.

AWS documents the WorkSpaces API rate as 2 calls per second with bursts of 5, per account
(https://docs.aws.amazon.com/workspaces/latest/api/welcome.html, "Throttling"). Every worker
process and the web server share one token bucket per account, kept in the database: a row
lock serialises takers on PostgreSQL and SQLite alike, so no extra server is needed.

Two ways to take a turn, for two kinds of caller:
- `reserve` always succeeds and says when the caller's turn comes: the bucket goes into debt,
  so reservations line up one after the other at exactly the rate. The import call uses it:
  AWS's limit, not the portal, sets its pace, and a worker need not wait in line itself.
- `try_take` takes a token only when one is free and nobody has reserved ahead. Status
  tracking, reconciling and the pre-flight use it, so they yield to imports that wait.
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

    def reserve(self, key: str) -> float:
        """Take the next turn, free or not, and return the seconds until it comes (0: now)."""
        return self._take(key, into_debt=True)

    def try_take(self, key: str) -> float:
        """Take a token if one is free and return 0, else return the seconds until one may be."""
        return self._take(key, into_debt=False)

    def acquire(self, key: str, *, max_wait: float) -> float:
        """Wait for a free token and return 0; give up at once, returning the seconds still to
        wait, when the token is more than `max_wait` away."""
        waited = 0.0
        while (wait := self.try_take(key)) > 0:
            if waited + wait > max_wait:
                return wait
            self._sleep(wait)
            waited += wait
        return 0.0

    def _take(self, key: str, *, into_debt: bool) -> float:
        with transaction.atomic():
            now = self._now()
            bucket, _ = AccountRateLimit.objects.select_for_update().get_or_create(
                account_id=key, defaults={"tokens": float(self.burst), "refilled_at": now}
            )
            elapsed = max(0.0, (now - bucket.refilled_at).total_seconds())
            tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            if into_debt:
                tokens -= 1
                # A negative balance is the line of reservations ahead: this one's turn comes
                # when the refill has paid the balance back to zero.
                wait = max(0.0, -tokens / self.rate)
            elif tokens >= 1:
                tokens -= 1
                wait = 0.0
            else:
                wait = (1 - tokens) / self.rate
            AccountRateLimit.objects.filter(account_id=key).update(tokens=tokens, refilled_at=now)
            return wait
