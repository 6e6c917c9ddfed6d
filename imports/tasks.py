"""Celery tasks: thin wrappers named like the execution steps they run. They take ids, and
the steps re-read the rows and return quietly when the world has moved on."""

from datetime import datetime

from celery import shared_task
from celery.app.task import Task

from imports import execution


@shared_task
def run_preflight_checks(request_id: int, version: int) -> None:
    execution.run_preflight_checks(request_id, version)


@shared_task(bind=True, max_retries=None)
def import_request(self: Task, request_id: int, held_lease: str | None = None) -> None:
    lease = datetime.fromisoformat(held_lease) if held_lease else None
    try:
        execution.import_request(request_id, held_lease=lease)
    except execution.TryAgain as wait:
        # The number of tries is bounded by execution (PORTAL_MAX_IMPORT_CALLS), not by Celery.
        held = wait.lease.isoformat() if wait.lease else None
        raise self.retry(args=(request_id, held), countdown=wait.seconds) from None


@shared_task
def poll_importing_images() -> dict[str, int]:
    return vars(execution.poll_importing_images())


@shared_task
def sweep_lost_work() -> dict[str, int]:
    return vars(execution.sweep_lost_work())
