"""The production settings pass Django's deployment checks, and bad configuration is refused."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.core.cache import CacheHandler
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import UserRateThrottle

from imports.tests.conftest import REDIS_HOST, REDIS_PORT, require_redis
from portal.settings import env_cache

ROOT = Path(__file__).resolve().parents[2]
# A Redis database no other test or benchmark uses (test_celery_e2e takes 10-13; bench/ 9, 14, 15).
SHARED_CACHE_DB = 8
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "x7Kq9!pZ" * 6,
    "DJANGO_ALLOWED_HOSTS": "byol.example.com",
    "PORTAL_VAR_DIR": "",
    "PORTAL_AUDIT_KEY": "a-production-audit-key-kept-outside-the-database-0123456789",
}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    full_env.update(env)
    full_env["PORTAL_VAR_DIR"] = str(tmp_path)
    return subprocess.run(  # noqa: S603 -- our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_deploy_checks_pass_with_debug_off_and_real_values(tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("DJANGO_DEBUG", "maybe"), ("EMAIL_PORT", "twenty-five"), ("PORTAL_CACHE_URL", "memcached://cache:11211")],
)
def test_a_malformed_variable_is_named_in_the_error(tmp_path: Path, name: str, value: str) -> None:
    result = manage("check", env={name: value}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert name in result.stderr


def test_seed_demo_refuses_to_run_in_production(tmp_path: Path) -> None:
    result = manage("seed_demo", env=PRODUCTION_ENV, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "runs only with DJANGO_DEBUG on" in result.stderr


def test_database_connections_are_kept_a_minute_and_health_checked(tmp_path: Path) -> None:
    code = "from django.db import connection; d = connection.settings_dict; print(d['CONN_MAX_AGE'])"
    code += "; print(d['CONN_HEALTH_CHECKS'])"

    result = manage("shell", "-c", code, env={}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["60", "True"]


# --- the cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  "])
def test_without_a_cache_url_each_process_caches_in_its_own_memory(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("PORTAL_CACHE_URL", raising=False)
    else:
        monkeypatch.setenv("PORTAL_CACHE_URL", value)

    assert env_cache("PORTAL_CACHE_URL") == {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


@pytest.mark.parametrize("url", ["redis://:s3cret@redis:6379/1", "rediss://cache.example.com:6380/0"])
def test_a_redis_cache_url_gives_one_cache_with_the_portals_prefix_and_short_timeouts(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("PORTAL_CACHE_URL", url)

    assert env_cache("PORTAL_CACHE_URL") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "portal",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }


@pytest.mark.parametrize(
    "url",
    [
        "memcached://portal:s3cret@cache:11211",
        "unix://:s3cret@/run/redis/redis.sock",
        "https://:s3cret@redis.example.com",
        "redis:s3cret@redis:6379",
        ":s3cret@127.0.0.1:6379",
    ],
)
def test_a_cache_url_of_another_kind_is_refused_without_repeating_it(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PORTAL_CACHE_URL", url)

    with pytest.raises(
        ImproperlyConfigured, match=r"PORTAL_CACHE_URL must be empty .* or a redis:// or rediss:// URL"
    ) as refused:
        env_cache("PORTAL_CACHE_URL")

    assert "s3cret" not in str(refused.value)


def test_the_cache_url_is_the_portals_default_cache(tmp_path: Path) -> None:
    code = "from django.core.cache import caches; c = caches['default']; print(type(c).__name__, c.key_prefix)"

    result = manage("shell", "-c", code, env={"PORTAL_CACHE_URL": "redis://127.0.0.1:6379/8"}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "RedisCache portal"


def caches_of_processes(monkeypatch: pytest.MonkeyPatch, url: str, count: int = 1) -> list[BaseCache]:
    """The default cache as `count` processes make it with PORTAL_CACHE_URL=url: each its own
    cache object and connection pool (CacheHandler is what django.core.cache.caches is)."""
    monkeypatch.setenv("PORTAL_CACHE_URL", url)
    config = env_cache("PORTAL_CACHE_URL")
    return [CacheHandler({"default": dict(config)})["default"] for _ in range(count)]


def test_a_redis_that_does_not_answer_fails_a_cache_call_within_about_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel accepts the connection into the backlog; nothing ever answers on it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        [cache] = caches_of_processes(monkeypatch, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()

        with pytest.raises(redis.TimeoutError):
            cache.get("charts")

        # redis-py's own default would wait 5 s.
        assert time.monotonic() - started < 3


class TwoCallsAMinute(UserRateThrottle):
    rate = "2/minute"


def test_two_processes_count_one_users_api_calls_together_in_a_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis()
    first, second = caches_of_processes(monkeypatch, f"redis://{REDIS_HOST}:{REDIS_PORT}/{SHARED_CACHE_DB}", 2)
    # A user id no other run uses, so that runs at the same time in this database count apart.
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=uuid.uuid4().int))

    def allowed(cache: BaseCache) -> bool:
        throttle = TwoCallsAMinute()
        throttle.cache = cache
        return throttle.allow_request(request, view=None)

    try:
        # Each process's own memory would allow all four: two calls in each.
        assert [allowed(first), allowed(second), allowed(first), allowed(second)] == [True, True, False, False]
        # Under the portal's prefix (and Django's key version).
        stored = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=SHARED_CACHE_DB)
        assert stored.exists(f"portal:1:throttle_user_{request.user.pk}") == 1
    finally:
        first.delete(f"throttle_user_{request.user.pk}")
