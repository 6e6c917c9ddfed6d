"""imports.locks: a periodic job runs once at a time, and not twice in one interval, however many
beat processes send it."""

from datetime import timedelta

from django.utils import timezone

from imports.locks import job_lock
from imports.models import JobLock


def test_a_job_lock_is_held_by_one_caller_at_a_time(db: None) -> None:
    with job_lock("sweep", hold_seconds=60) as first:
        with job_lock("sweep", hold_seconds=60) as second:
            assert (first, second) == (True, False)
        with job_lock("poll:1", hold_seconds=60) as other_job:
            assert other_job

    with job_lock("sweep", hold_seconds=60) as after_release:
        assert after_release


def test_a_job_does_not_run_again_within_its_minimum_interval(db: None) -> None:
    with job_lock("sweep", hold_seconds=60, min_interval_seconds=30) as first:
        assert first

    with job_lock("sweep", hold_seconds=60, min_interval_seconds=30) as too_soon:
        assert not too_soon
    JobLock.objects.filter(name="sweep").update(last_started_at=timezone.now() - timedelta(seconds=31))
    with job_lock("sweep", hold_seconds=60, min_interval_seconds=30) as later:
        assert later


def test_a_lock_whose_holder_died_expires(db: None) -> None:
    JobLock.objects.create(name="sweep", holder="dead", locked_until=timezone.now() - timedelta(seconds=1))

    with job_lock("sweep", hold_seconds=60) as taken:
        assert taken
        assert JobLock.objects.get(name="sweep").holder != "dead"
