"""Queueing Celery work after the current transaction commits.

Tasks are sent by name, so workflow code needs no import of the task module. A broker that is
down must neither undo nor hide the change that was just committed: publishing is tried once
(no blocking retries), a failure is logged, and the sweeper re-queues whatever was not started.
"""

import logging
from functools import partial
from typing import Any

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def after_commit(task_name: str, *args: Any) -> None:
    transaction.on_commit(partial(publish, task_name, args))


def publish(task_name: str, args: tuple[Any, ...]) -> None:
    try:
        current_app.send_task(f"imports.tasks.{task_name}", args=args, retry=False)
    except Exception:
        logger.exception("could not queue %s%r; the sweeper will pick it up", task_name, args)
