"""imports.dispatch: queued work goes out through an outbox thread, so no caller waits for the
broker; the broker's acceptance marks the request, and a refusal leaves it for the sweeper."""

import logging
import threading
from typing import Any

import pytest
from django.utils import timezone

from imports import dispatch
from imports.dispatch import publish as REAL_PUBLISH  # captured before conftest's fixture fakes it
from imports.models import ImportRequest

BROKER_ANSWERS_WITHIN = 10.0  # seconds the fake broker may take before a test gives up on it


class FakeBroker:
    """Stands in for Celery's send_task: records messages, and can hang or refuse."""

    def __init__(self, *, hang: bool = False, refuse: bool = False) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.hanging = threading.Event() if hang else None
        self.refuse = refuse

    def send_task(self, name: str, *, args: tuple[Any, ...], retry: bool) -> None:
        assert retry is False
        if self.hanging is not None:
            self.hanging.wait(BROKER_ANSWERS_WITHIN)
        if self.refuse:
            raise ConnectionRefusedError("the broker is down")
        self.sent.append((name, tuple(args)))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    monkeypatch.setattr(dispatch, "publish", REAL_PUBLISH)
    fake = FakeBroker()
    monkeypatch.setattr(dispatch.current_app, "send_task", fake.send_task)
    return fake


def test_publishing_returns_at_once_while_the_broker_hangs(broker: FakeBroker) -> None:
    broker.hanging = threading.Event()

    dispatch.publish("sweep_lost_work", ())

    assert broker.sent == []  # returned while the broker had not answered
    assert not dispatch.flush(0.2)
    broker.hanging.set()
    assert dispatch.flush(BROKER_ANSWERS_WITHIN)
    assert broker.sent == [("imports.tasks.sweep_lost_work", ())]


def test_messages_leave_in_the_order_they_were_queued(broker: FakeBroker) -> None:
    for n in range(20):
        dispatch.publish("poll_target", (n,))

    assert dispatch.flush(BROKER_ANSWERS_WITHIN)
    assert broker.sent == [("imports.tasks.poll_target", (n,)) for n in range(20)]


def test_the_broker_accepting_a_message_marks_its_request(
    broker: FakeBroker, committed_db: None, make_request: Any
) -> None:
    request = make_request()  # its submission queued the pre-flight checks, also marked
    assert dispatch.flush(BROKER_ANSWERS_WITHIN)
    before = timezone.now()

    dispatch.publish("import_request", (request.pk,), request_id=request.pk)

    assert dispatch.flush(BROKER_ANSWERS_WITHIN)
    request.refresh_from_db()
    assert request.dispatched_at is not None
    assert request.dispatched_at >= before
    assert broker.sent[-1] == ("imports.tasks.import_request", (request.pk,))


def test_a_message_the_broker_refuses_is_logged_and_leaves_its_request_for_the_sweeper(
    broker: FakeBroker, committed_db: None, make_request: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker.refuse = True
    request = make_request()

    with caplog.at_level(logging.ERROR, logger="imports.dispatch"):
        dispatch.publish("import_request", (request.pk,), request_id=request.pk)
        assert dispatch.flush(BROKER_ANSWERS_WITHIN)

    request.refresh_from_db()
    assert request.dispatched_at is None
    assert ImportRequest.objects.filter(dispatched_at__isnull=False).count() == 0
    assert any("could not queue import_request" in r.getMessage() for r in caplog.records)
