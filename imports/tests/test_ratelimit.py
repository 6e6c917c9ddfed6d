"""The shared token bucket that keeps WorkSpaces calls within 2 per second, burst 5, per account."""

from datetime import datetime, timedelta
from typing import Any

import pytest

from imports.models import AccountRateLimit
from imports.ratelimit import DatabaseTokenBucket

START = datetime(2026, 11, 27, 9, 0, 0, tzinfo=datetime.now().astimezone().tzinfo)


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bucket(db: None, clock: FakeClock) -> DatabaseTokenBucket:
    return DatabaseTokenBucket(rate=2.0, burst=5, now=lambda: clock.now, sleep=clock.sleep)


def test_a_burst_of_five_goes_through_at_once_and_the_sixth_waits_half_a_second(
    bucket: DatabaseTokenBucket, clock: FakeClock
) -> None:
    waits = [bucket.try_take("123456789012") for _ in range(6)]

    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5] == pytest.approx(0.5)


def test_sixty_calls_take_at_least_twenty_seven_and_a_half_seconds(
    bucket: DatabaseTokenBucket, clock: FakeClock
) -> None:
    for _ in range(60):
        assert bucket.acquire("123456789012", max_wait=1) == 0

    # 5 from the burst, then 55 at 2 per second.
    assert (clock.now - START).total_seconds() == pytest.approx(27.5)
    assert all(wait <= 0.5 + 1e-9 for wait in clock.slept)


def test_in_any_second_after_the_burst_at_most_two_calls_go_through(
    bucket: DatabaseTokenBucket, clock: FakeClock
) -> None:
    times = []
    for _ in range(25):
        bucket.acquire("123456789012", max_wait=1)
        times.append(clock.now)

    after_burst = times[5:]
    for first in after_burst:
        in_window = [t for t in after_burst if first <= t < first + timedelta(seconds=1)]
        assert len(in_window) <= 2


def test_accounts_have_buckets_of_their_own(bucket: DatabaseTokenBucket) -> None:
    for _ in range(5):
        bucket.try_take("111111111111")

    assert bucket.try_take("111111111111") > 0
    assert bucket.try_take("222222222222") == 0
    assert AccountRateLimit.objects.count() == 2


def test_tokens_refill_with_time_but_never_beyond_the_burst(bucket: DatabaseTokenBucket, clock: FakeClock) -> None:
    for _ in range(5):
        bucket.try_take("123456789012")
    clock.now += timedelta(hours=1)

    waits: list[Any] = [bucket.try_take("123456789012") for _ in range(6)]

    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5] > 0


def test_reservations_line_up_one_after_the_other_at_the_rate(bucket: DatabaseTokenBucket) -> None:
    waits = [bucket.reserve("123456789012") for _ in range(9)]

    assert waits == pytest.approx([0, 0, 0, 0, 0, 0.5, 1.0, 1.5, 2.0])


def test_reserved_turns_are_paid_back_by_the_refill(bucket: DatabaseTokenBucket, clock: FakeClock) -> None:
    for _ in range(9):
        bucket.reserve("123456789012")
    clock.now += timedelta(seconds=2)  # the last reservation's turn has come

    assert bucket.reserve("123456789012") == pytest.approx(0.5)


def test_a_free_token_is_not_taken_ahead_of_reserved_turns(bucket: DatabaseTokenBucket, clock: FakeClock) -> None:
    for _ in range(9):
        bucket.reserve("123456789012")

    wait = bucket.try_take("123456789012")

    assert wait == pytest.approx(2.5)  # the debt of 4 turns paid back, then one token
    assert bucket.acquire("123456789012", max_wait=1) == pytest.approx(2.5)
    assert clock.slept == []  # gave up at once instead of sleeping in vain
    clock.now += timedelta(seconds=2.5)
    assert bucket.try_take("123456789012") == 0
