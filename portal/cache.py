"""The shared cache (PORTAL_CACHE_URL): Django's RedisCache, failing soft.

The cache only saves work (the dashboard's charts, the request form's asks for fresh AMIs) and
counts the API's throttles, so a Redis that is down, paused or refusing writes must not fail a
page: a read is a miss, a write is dropped, and a warning is logged (at most once a minute per
process). After a Redis that did not answer (refused, reset, timed out), a process leaves it
alone for BREAK_SECONDS, so a hung one costs a page one timeout rather than one per cache call.
https://docs.djangoproject.com/en/5.2/topics/cache/#redis
"""

import logging
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any, TypeVar

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# How long a process sends nothing to a Redis that did not answer before trying it again.
BREAK_SECONDS = 10.0
# However many calls fail, a process warns at most once in this many seconds.
WARN_EVERY_SECONDS = 60.0

# Deadlines on the monotonic clock, one per process for its one shared cache. Threads race on
# them harmlessly: at worst one more call tries Redis, or one more warning is logged.
_skip_until = 0.0
_quiet_until = 0.0

T = TypeVar("T")


def _unless_down(fallback: T, call: Callable[..., T], *args: Any) -> T:
    """call(*args), or `fallback` if Redis fails or failed to answer a moment ago."""
    global _skip_until, _quiet_until
    if monotonic() < _skip_until:
        return fallback
    try:
        return call(*args)
    except RedisError as error:
        now = monotonic()
        # An error Redis answered with (out of memory, read-only replica) came at once: only
        # silence and refusals cost a timeout worth not paying again.
        if isinstance(error, RedisConnectionError | RedisTimeoutError):
            _skip_until = now + BREAK_SECONDS
        if now >= _quiet_until:
            _quiet_until = now + WARN_EVERY_SECONDS
            logger.warning(
                "The shared cache (Redis) failed (%s: %s): until it works, cache reads are misses and "
                "writes are dropped, so the API's throttles do not count calls and the dashboard "
                "computes its charts afresh; after no answer, Redis is left alone for %g s",
                type(error).__name__,
                error,
                BREAK_SECONDS,
            )
        return fallback


_MISSING = object()


class FailSoftRedisCacheClient(RedisCacheClient):
    def add(self, key: str, value: Any, timeout: int | None) -> bool:
        # False, as if another process held the key: callers that use add() as a lock
        # (selectors.offered_amis) then skip the work instead of doing it on every page view.
        return _unless_down(False, super().add, key, value, timeout)

    def get(self, key: str, default: Any) -> Any:
        return _unless_down(default, super().get, key, default)

    def set(self, key: str, value: Any, timeout: int | None) -> None:
        _unless_down(None, super().set, key, value, timeout)

    def touch(self, key: str, timeout: int | None) -> bool:
        return _unless_down(False, super().touch, key, timeout)

    def delete(self, key: str) -> bool:
        return _unless_down(False, super().delete, key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return _unless_down({}, super().get_many, keys)

    def has_key(self, key: str) -> bool:
        return _unless_down(False, super().has_key, key)

    def incr(self, key: str, delta: int) -> int:
        # A missing key, as for a read: callers of incr() and decr() handle its ValueError.
        value = _unless_down(_MISSING, super().incr, key, delta)
        if value is _MISSING:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def set_many(self, data: dict[str, Any], timeout: int | None) -> None:
        _unless_down(None, super().set_many, data, timeout)

    def delete_many(self, keys: Iterable[str]) -> None:
        _unless_down(None, super().delete_many, keys)

    def clear(self) -> bool:
        return _unless_down(False, super().clear)


class FailSoftRedisCache(RedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = FailSoftRedisCacheClient
