"""Queueing Celery work after the current transaction commits, without ever making the caller
wait for the broker.

Tasks are sent by name, so workflow code needs no import of the task module. A broker that is
paused, slow or down must neither undo, hide nor hold up the change that was just committed:
messages go through an in-process outbox, sent by one background thread per process, so a
click that queues work answers at once whatever the broker does. A message the broker accepted
marks its request (`dispatched_at`); one it did not is logged, and the sweeper sends the work
again, since nothing marks it as on its way.
"""

import atexit
import logging
import os
import queue
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import current_app
from django.db import close_old_connections, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# Messages waiting for the broker in one process. Past this the newest are dropped (and logged):
# the sweeper finds their work unsent.
OUTBOX_LIMIT = 10_000


@dataclass(frozen=True)
class Message:
    task_name: str
    args: tuple[Any, ...]
    request_id: int | None
    step_id: int | None = None


def after_commit(task_name: str, *args: Any, request_id: int | None = None, step_id: int | None = None) -> None:
    transaction.on_commit(partial(publish, task_name, args, request_id=request_id, step_id=step_id))


def publish(
    task_name: str, args: tuple[Any, ...], *, request_id: int | None = None, step_id: int | None = None
) -> None:
    """Queue a task for sending; returns at once. `request_id` (or `step_id`, a rollout step):
    whose pending work this message carries, marked once the broker has it."""
    _outbox.put(Message(task_name, tuple(args), request_id, step_id))


def flush(timeout: float) -> bool:
    """Wait until this process's outbox is empty; False if it is not within `timeout` seconds."""
    return _outbox.flush(timeout)


def send(message: Message) -> bool:
    """Hand one message to the broker now; True when the broker accepted it."""
    try:
        current_app.send_task(f"imports.tasks.{message.task_name}", args=message.args, retry=False)
    except Exception:
        logger.exception("could not queue %s%r; the sweeper will send it again", message.task_name, message.args)
        return False
    if message.request_id is not None or message.step_id is not None:
        _mark_dispatched(message)
    return True


def _mark_dispatched(message: Message) -> None:
    # The app registry is ready by the time a message is sent.
    from imports.models import ImportRequest, RolloutStep

    # This thread's own connection, kept no longer than DATABASE_CONN_MAX_AGE says, as a request's.
    close_old_connections()
    try:
        if message.request_id is not None:
            ImportRequest.objects.filter(pk=message.request_id).update(dispatched_at=timezone.now())
        if message.step_id is not None:
            RolloutStep.objects.filter(pk=message.step_id).update(dispatched_at=timezone.now())
    except Exception:
        # Unmarked work is merely sent again by the sweeper, which the tasks take calmly.
        logger.exception("could not mark %s%r as dispatched", message.task_name, message.args)
    finally:
        close_old_connections()


class _Outbox:
    """A queue and the one daemon thread that empties it, made afresh in each process (a forked
    child inherits neither a running thread nor a safe queue)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: queue.Queue[Message] = queue.Queue()

    def put(self, message: Message) -> None:
        self._started()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            logger.error("outbox full: dropped %s%r; the sweeper will send it", message.task_name, message.args)

    def flush(self, timeout: float) -> bool:
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True, name="outbox-flush").start()
        return done.wait(timeout)

    def _started(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._queue = queue.Queue(maxsize=OUTBOX_LIMIT)
            threading.Thread(target=self._run, args=(self._queue,), daemon=True, name="outbox").start()

    @staticmethod
    def _run(messages: "queue.Queue[Message]") -> None:
        while True:
            message = messages.get()
            try:
                send(message)
            finally:
                messages.task_done()


_outbox = _Outbox()
# A short-lived process (a management command) gets its messages out before it exits.
atexit.register(flush, 5.0)
