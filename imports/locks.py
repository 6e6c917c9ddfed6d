"""Named locks with an expiry, in the database, for periodic jobs.

Beat is meant to run once, but a second one (a scaled service, a restart that overlaps) must
not make a poll pass or a sweep run twice at once, nor twice in one interval. A lock that is
never released (its holder died) simply expires.
"""

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from imports.models import JobLock

logger = logging.getLogger(__name__)


@contextmanager
def job_lock(name: str, *, hold_seconds: float, min_interval_seconds: float = 0) -> Iterator[bool]:
    """Yields whether this caller holds the lock `name`: nobody else holds it, and the last run
    started at least `min_interval_seconds` ago. Released on exit."""
    holder = uuid.uuid4().hex
    now = timezone.now()
    _ensure_row(name)
    free = Q(locked_until__lt=now) & (
        Q(last_started_at__isnull=True) | Q(last_started_at__lte=now - timedelta(seconds=min_interval_seconds))
    )
    taken = (
        JobLock.objects.filter(free, name=name).update(
            holder=holder, locked_until=now + timedelta(seconds=hold_seconds), last_started_at=now
        )
        == 1
    )
    try:
        yield taken
    finally:
        if taken:
            JobLock.objects.filter(name=name, holder=holder).update(locked_until=timezone.now(), holder="")


def _ensure_row(name: str) -> None:
    if JobLock.objects.filter(name=name).exists():
        return
    try:
        with transaction.atomic():
            JobLock.objects.create(name=name, locked_until=timezone.now() - timedelta(seconds=1))
    except IntegrityError:
        pass  # another process made it first


@contextmanager
def lease_kept(name: str, renew: Callable[[], bool], *, seconds: float) -> Iterator[None]:
    """Renew a worker's lease (`renew`, False once the lease is no longer its own) every third
    of its length while the body runs. If this process dies or hangs past its time limit, the
    renewals stop and the lease runs out soon after, so that another worker takes over."""
    stop = threading.Event()

    def keep() -> None:
        try:
            while not stop.wait(seconds / 3):
                try:
                    if not renew():
                        return  # taken over, or done: nothing of ours to renew
                except Exception:
                    # A database blip: the next renewal may well work, and the lease has time left.
                    logger.exception("could not renew the lease of %s", name)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    heartbeat = threading.Thread(target=keep, daemon=True, name=f"lease-{name}")
    heartbeat.start()
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()
