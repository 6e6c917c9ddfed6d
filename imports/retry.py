"""Waiting for AWS: backoff with jitter, and the signal that work must be tried again later."""

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from imports import aws


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


@dataclass(frozen=True)
class Wait:
    """The next attempt: in `seconds`, with what the page shows (`waiting`), and whether a call
    may have reached AWS unanswered (look for what it made before calling again)."""

    seconds: float
    waiting: dict[str, Any]
    outcome_unknown: bool


def wait_for_aws(error: aws.AwsError, *, waiting: dict[str, Any], called_now: bool, call_pending: bool) -> Wait | None:
    """How long work that AWS failed for a passing reason waits before its next attempt, or None
    once PORTAL_RETRY_BUDGET_SECONDS is spent since it first had to wait (`waiting["since"]`).
    The import and every rollout step wait by this one rule."""
    now = timezone.now()
    since = datetime.fromisoformat(waiting["since"]) if waiting.get("since") else now
    if (now - since).total_seconds() >= settings.PORTAL_RETRY_BUDGET_SECONDS:
        return None
    attempts = int(waiting.get("attempts", 0)) + 1
    limit = isinstance(error, aws.LimitExceeded)
    seconds = float(settings.PORTAL_LIMIT_RETRY_SECONDS) if limit else backoff(attempts)
    # A 5xx or a lost answer after this attempt's call may hide what it made; an earlier call's
    # unknown outcome stays unknown until a lookup settles it.
    maybe_sent = error.maybe_sent if isinstance(error, aws.NetworkError) else isinstance(error, aws.ServerError)
    return Wait(
        seconds=seconds,
        waiting={"reason": "transient", "message": error.message, "since": since.isoformat(), "attempts": attempts},
        outcome_unknown=maybe_sent if called_now else call_pending,
    )


def gave_up_message(error: aws.AwsError) -> str:
    hours = round(settings.PORTAL_RETRY_BUDGET_SECONDS / 3600, 1)
    return f"AWS kept failing for {hours:g} hours, so the portal stopped trying: {error.message}"
