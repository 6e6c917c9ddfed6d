"""The production settings pass Django's deployment checks, and bad configuration is refused."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import CacheHandler
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from imports import charts, selectors
from imports.api import tokens
from imports.models import AwsTarget, ImportRequest
from imports.tests.conftest import REDIS_HOST, REDIS_PORT, require_redis, unavailable
from portal import cache as portal_cache
from portal.cache import FailSoftRedisCacheClient
from portal.settings import env_cache

ROOT = Path(__file__).resolve().parents[2]
# A Redis database no other test or benchmark uses (test_celery_e2e takes 10-13; bench/ 9, 14, 15).
SHARED_CACHE_DB = 8
# More runs of one statement than the threshold after which psycopg prepares it.
PREPARE_RUNS = settings.PREPARE_THRESHOLD + 2
# The real one: conftest replaces it for the page tests.
REAL_OFFERED_AMIS = selectors.offered_amis
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


@pytest.mark.parametrize(
    ("value", "options"),
    [
        (None, "{'server_side_binding': True, 'prepare_threshold': 5}"),
        ("off", "{}"),
    ],
)
def test_postgresql_statements_are_prepared_unless_turned_off(tmp_path: Path, value: str | None, options: str) -> None:
    code = "from django.db import connection; print(connection.settings_dict['OPTIONS'])"
    env = {"DATABASE_URL": "postgres://portal@db.example.com:5432/portal"}
    if value is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = value

    result = manage("shell", "-c", code, env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == options


@pytest.mark.postgres
def test_a_statement_run_again_on_a_connection_is_prepared_once_and_answers_each_value(
    make_request: Any, db: None
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's; .ci/run runs this with DATABASE_URL")
    first, second = make_request(image_name="win11-prepared-a"), make_request(image_name="win11-prepared-b")
    for _ in range(PREPARE_RUNS):
        names = [ImportRequest.objects.get(pk=pk).image_name for pk in (first.pk, second.pk)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s AND statement LIKE %s",
            ['%FROM "imports_importrequest"%', "%$1%"],
        )
        prepared = cursor.fetchone()[0]

    assert names == ["win11-prepared-a", "win11-prepared-b"]
    assert prepared >= 1


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
        "BACKEND": "portal.cache.FailSoftRedisCache",
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
    assert result.stdout.splitlines()[-1] == "FailSoftRedisCache portal"


def caches_of_processes(monkeypatch: pytest.MonkeyPatch, url: str, count: int = 1) -> list[BaseCache]:
    """The default cache as `count` processes make it with PORTAL_CACHE_URL=url: each its own
    cache object and connection pool (CacheHandler is what django.core.cache.caches is)."""
    monkeypatch.setenv("PORTAL_CACHE_URL", url)
    config = env_cache("PORTAL_CACHE_URL")
    return [CacheHandler({"default": dict(config)})["default"] for _ in range(count)]


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


# --- the shared cache when Redis fails -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            return probe.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server of the test's own, to kill, pause and start again on the same port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 -- fixed arguments
        deadline = time.monotonic() + 10
        while not answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        assert self.process
        self.process.send_signal(signal.SIGSTOP)

    def keys(self, *names: str) -> int:
        """How many of `names` the server holds."""
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as stored:
            return stored.exists(*names)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("needs redis-server on PATH")
    server = RedisServer(port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_calls(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The key of each cache call that went to Redis (each asks Django's get_client() once),
    starting with the process's breaker closed and its warning not yet given."""
    monkeypatch.setattr(portal_cache, "_skip_until", 0.0)
    monkeypatch.setattr(portal_cache, "_quiet_until", 0.0)
    calls: list[str | None] = []
    get_client = FailSoftRedisCacheClient.get_client

    def counted(self: FailSoftRedisCacheClient, key: str | None = None, *, write: bool = False) -> Any:
        calls.append(key)
        return get_client(self, key, write=write)

    monkeypatch.setattr(FailSoftRedisCacheClient, "get_client", counted)
    return calls


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The monotonic clock portal.cache reads, moved by hand."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(portal_cache, "monotonic", lambda: clock.now)
    return clock


def test_a_redis_that_refuses_connections_reads_as_a_miss_and_drops_writes(
    monkeypatch: pytest.MonkeyPatch, redis_calls: list[str | None], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(portal_cache, "BREAK_SECONDS", 0)  # every call tries Redis
    [cache] = caches_of_processes(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")

    with caplog.at_level(logging.WARNING, logger="portal.cache"):
        assert cache.get("charts") is None
        assert cache.get("charts", "default") == "default"
        assert cache.get_many(["charts", "other"]) == {}
        assert cache.has_key("charts") is False
        assert cache.get_or_set("charts", lambda: "computed") == "computed"
        assert cache.set("charts", "computed") is None
        assert cache.set_many({"charts": "computed"}) == []
        # As if another process held the lock: offered_amis asks for no refresh.
        assert cache.add("ami-offers-asked:1", True) is False
        assert cache.touch("charts") is False
        assert cache.delete("charts") is False
        assert cache.delete_many(["charts", "other"]) is None
        assert cache.clear() is False
        # As for a key that is not there.
        with pytest.raises(ValueError, match="not found"):
            cache.incr("count")
        with pytest.raises(ValueError, match="not found"):
            cache.decr("count")

    # Each went to Redis (get_or_set three times: get, add, get) and was refused...
    assert len(redis_calls) == 16
    # ...and one warning says so.
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "ConnectionError" in warning.getMessage()
    assert "the API's throttles do not count calls" in warning.getMessage()


def test_after_redis_fails_a_process_leaves_it_alone_for_a_while(
    monkeypatch: pytest.MonkeyPatch, redis_calls: list[str | None], clock: SimpleNamespace
) -> None:
    [cache] = caches_of_processes(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")

    assert cache.get("charts") is None
    assert cache.set("charts", "computed") is None
    assert cache.add("ami-offers-asked:1", True) is False
    clock.now += portal_cache.BREAK_SECONDS - 0.1
    assert cache.get("charts", "miss") == "miss"
    assert redis_calls == ["portal:1:charts"]

    clock.now += 0.1
    assert cache.get("charts", "miss") == "miss"

    assert redis_calls == ["portal:1:charts", "portal:1:charts"]


def test_a_redis_that_does_not_answer_costs_one_timeout_then_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, redis_calls: list[str | None]
) -> None:
    # The kernel accepts the connection into the backlog; nothing ever answers on it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        [cache] = caches_of_processes(monkeypatch, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()

        assert cache.get("charts", "miss") == "miss"
        assert cache.add("ami-offers-asked:1", True) is False
        assert cache.get("charts", "miss") == "miss"

        # One read timeout of 1 s (redis-py's own default would wait 5 s), then no more calls.
        assert redis_calls == ["portal:1:charts"]
        assert time.monotonic() - started < 3


def test_a_redis_that_stays_down_is_warned_about_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
    redis_calls: list[str | None],
    clock: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(portal_cache, "BREAK_SECONDS", 0)
    [cache] = caches_of_processes(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")

    with caplog.at_level(logging.WARNING, logger="portal.cache"):
        for _ in range(3):
            cache.get("charts")
        clock.now += portal_cache.WARN_EVERY_SECONDS - 1
        cache.get("charts")
        warned_first = len(caplog.records)
        clock.now += 1
        cache.get("charts")

    assert len(redis_calls) == 5
    assert warned_first == 1
    assert len(caplog.records) == 2


def test_a_redis_that_refuses_writes_still_serves_reads(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_calls: list[str | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    [cache] = caches_of_processes(monkeypatch, redis_server.url)
    cache.set("charts", "computed")
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as admin:
        admin.config_set("maxmemory", 1)  # full: Redis answers writes with an OOM error

    assert cache.set("other", "computed") is None
    assert cache.add("ami-offers-asked:1", True) is False
    # An error Redis answered with costs no timeout: reads still go to it.
    assert cache.get("charts") == "computed"
    assert cache.get("other") is None

    assert len(redis_calls) == 5
    assert "OutOfMemoryError" in caplog.text


def use_shared_cache(monkeypatch: pytest.MonkeyPatch, settings: Any, url: str) -> None:
    """The default cache as PORTAL_CACHE_URL=url makes it. Django's setting_changed handler
    closes and forgets the caches made before, and again when the test ends."""
    monkeypatch.setenv("PORTAL_CACHE_URL", url)
    settings.CACHES = {"default": env_cache("PORTAL_CACHE_URL")}


@dataclass
class Portal:
    """An approver on the dashboard and on the API, and a request they see in both."""

    user: Any
    pages: Client
    api: APIClient
    request: ImportRequest

    def assert_answers(self) -> None:
        dashboard = self.pages.get(reverse("dashboard"))
        listed = self.api.get("/api/v1/requests/")

        assert dashboard.status_code == 200
        assert 'id="dashboard-charts" type="application/json"' in dashboard.content.decode()
        assert self.request.reference in dashboard.content.decode()
        assert listed.status_code == 200, listed.content
        assert [row["id"] for row in listed.json()["results"]] == [self.request.pk]


@pytest.fixture
def portal(approver: Any, make_request: Callable[..., ImportRequest]) -> Portal:
    pages = Client()
    pages.force_login(approver)
    _, secret = tokens.make_token(user=approver, name="cache test", days=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return Portal(approver, pages, api, make_request())


def test_the_pages_and_the_api_answer_while_redis_is_killed_and_use_it_again_once_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    redis_server: RedisServer,
    redis_calls: list[str | None],
    portal: Portal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(portal_cache, "BREAK_SECONDS", 0)  # try Redis again on the next call
    use_shared_cache(monkeypatch, settings, redis_server.url)
    cached = [f"portal:1:throttle_user_{portal.user.pk}", f"portal:1:{charts.CACHE_KEY}"]

    portal.assert_answers()
    assert redis_server.keys(*cached) == 2

    redis_server.kill()
    portal.assert_answers()
    assert "the API's throttles do not count calls" in caplog.text

    redis_server.start()  # on the same port, empty
    assert redis_server.keys(*cached) == 0
    portal.assert_answers()
    assert redis_server.keys(*cached) == 2


def test_a_paused_redis_costs_a_page_one_timeout_not_one_per_cache_call(
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    redis_server: RedisServer,
    redis_calls: list[str | None],
    portal: Portal,
) -> None:
    use_shared_cache(monkeypatch, settings, redis_server.url)
    portal.assert_answers()
    calls_before = len(redis_calls)

    redis_server.pause()
    started = time.monotonic()
    portal.assert_answers()

    # The first call waited out its 1 s read timeout; every later one, on the dashboard (the
    # charts, their HTML) and on the API (its throttle), skipped Redis.
    assert len(redis_calls) == calls_before + 1
    assert time.monotonic() - started < 5  # a guard against a hang, not a benchmark


def test_the_request_form_offers_known_amis_while_redis_is_down_without_asking_aws_on_each_view(
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    redis_calls: list[str | None],
    client: Client,
    requester: Any,
    target: AwsTarget,
    published: list[tuple[str, tuple[Any, ...]]],
) -> None:
    monkeypatch.setattr(selectors, "offered_amis", REAL_OFFERED_AMIS)
    monkeypatch.setattr(portal_cache, "BREAK_SECONDS", 0)
    target.ami_offers = [{"image_id": "ami-0bbbbbbbbbbbbbbb2", "name": "win11-known", "created": "2026-11-01"}]
    target.save(update_fields=["ami_offers"])  # never listed since: stale
    use_shared_cache(monkeypatch, settings, f"redis://127.0.0.1:{free_port()}/0")
    client.force_login(requester)

    pages = [client.get(reverse("request_create")) for _ in range(2)]

    assert [page.status_code for page in pages] == [200, 200]
    assert '<option value="ami-0bbbbbbbbbbbbbbb2">win11-known</option>' in pages[1].content.decode()
    # Each view tried to note its ask in the cache and, failing, asked for no refresh.
    assert redis_calls == [f"portal:1:ami-offers-asked:{target.pk}"] * 2
    assert published == []
