"""Celery tasks: thin wrappers named like the execution steps they run. They take ids, and
the steps re-read the rows and return quietly when the world has moved on."""

import logging
from datetime import datetime

from celery import shared_task
from celery.app.task import Task
from django.conf import settings

from imports import anchor, dispatch, execution, exports, webhooks
from imports.locks import job_lock
from imports.retry import TryAgain, backoff
from imports.steps import engine as steps_engine

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=None)
def run_preflight_checks(self: Task, request_id: int, version: int) -> None:
    checked = execution.run_preflight_checks(request_id, version)
    # A check AWS could not answer for a passing reason is run again, so a moment of throttling
    # does not leave a request waiting on someone to press "Run the checks again".
    within_budget = self.request.retries * settings.PORTAL_RETRY_MAX_SECONDS < settings.PORTAL_RETRY_BUDGET_SECONDS
    if execution.preflight_interrupted(checked) and within_budget:
        raise self.retry(countdown=backoff(self.request.retries + 1))


@shared_task(bind=True, max_retries=None)
def import_request(self: Task, request_id: int, lease_token: str = "", due_at: str = "") -> None:
    try:
        execution.import_request(
            request_id, lease_token=lease_token, due_at=datetime.fromisoformat(due_at) if due_at else None
        )
    except TryAgain as wait:
        # How long to keep trying is the engine's call (PORTAL_RETRY_BUDGET_SECONDS), not Celery's.
        raise self.retry(args=(request_id, wait.lease_token, wait.due_at.isoformat()), countdown=wait.seconds) from None


@shared_task(bind=True, max_retries=None)
def run_step(self: Task, step_id: int, lease_token: str = "", due_at: str = "") -> None:
    """One step of a request's delivery plan (imports.steps.engine)."""
    resume_at = datetime.fromisoformat(due_at) if due_at else None
    try:
        steps_engine.run_step(step_id, lease_token=lease_token, due_at=resume_at)
    except TryAgain as wait:
        raise self.retry(args=(step_id, wait.lease_token, wait.due_at.isoformat()), countdown=wait.seconds) from None


@shared_task
def poll_importing_images() -> int:
    """Send one `poll_target` per target with importing images, so accounts are asked side by
    side, and one `poll_rollout_steps` when AWS works on rollout steps."""
    with job_lock("poll", hold_seconds=60, min_interval_seconds=settings.PORTAL_POLL_SECONDS / 2) as mine:
        if not mine:
            return 0
        target_ids = execution.importing_target_ids()
        for target_id in target_ids:
            dispatch.publish("poll_target", (target_id,))
        if steps_engine.tracking_steps().exists():
            dispatch.publish("poll_rollout_steps", ())
        return len(target_ids)


@shared_task
def poll_rollout_steps() -> dict[str, int]:
    return steps_engine.poll_steps(min_interval=settings.PORTAL_POLL_SECONDS / 2)


@shared_task
def poll_target(target_id: int) -> dict[str, int]:
    # Beat's interval, halved: a second beat process must not double the passes.
    return vars(execution.poll_target(target_id, min_interval=settings.PORTAL_POLL_SECONDS / 2))


@shared_task
def refresh_ami_offers(target_id: int) -> int | None:
    return execution.refresh_ami_offers(target_id)


@shared_task
def sweep_lost_work() -> dict[str, int]:
    return vars(execution.sweep_lost_work(min_interval=settings.PORTAL_SWEEP_SECONDS / 2))


@shared_task
def anchor_audit_heads() -> str:
    """Write the audit chains' heads to the Object Lock bucket (imports.anchor); a failure is
    logged and the next interval tries again, as a newer head covers everything before it."""
    with job_lock("anchor", hold_seconds=60, min_interval_seconds=settings.PORTAL_AUDIT_ANCHOR_SECONDS / 2) as mine:
        if not mine:
            return ""
        try:
            written = anchor.anchor_heads()
        except anchor.AnchorError as exc:
            logger.error("could not anchor the audit chain heads: %s", exc)
            return ""
        return written.object_key if written else ""


# An export of years of history may take minutes: it gets longer than the default time limits.
@shared_task(soft_time_limit=settings.PORTAL_EXPORT_TIME_LIMIT, time_limit=settings.PORTAL_EXPORT_TIME_LIMIT + 60)
def build_audit_export(export_id: int) -> str:
    export = exports.build_export(export_id)
    return export.state if export else ""


@shared_task
def clean_audit_exports() -> dict[str, int]:
    with job_lock("clean-exports", hold_seconds=300, min_interval_seconds=600) as mine:
        return vars(exports.clean_up()) if mine else {}


@shared_task
def remind_overdue_decisions() -> dict[str, int]:
    """Beat: remind the approvers of requests undecided too long, and escalate those undecided
    longer still (imports.execution.remind_overdue_decisions)."""
    minimum = settings.PORTAL_OVERDUE_CHECK_SECONDS / 2
    return vars(execution.remind_overdue_decisions(min_interval=minimum))


@shared_task
def deliver_webhook(delivery_id: int) -> str | None:
    """One attempt at a webhook delivery; a retry is due later and sent by send_due_webhooks."""
    return webhooks.deliver(delivery_id)


@shared_task
def send_due_webhooks() -> int:
    return webhooks.send_due()
