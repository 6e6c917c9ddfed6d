"""Reminders and escalation: a request nobody decides in time."""

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from imports import execution, roles, workflow
from imports.models import ImportRequest, RequestEvent
from imports.tests.conftest import make_user


@pytest.fixture
def waiting(make_request: Any) -> Any:
    """A request whose current version has waited `hours` for a decision."""

    def make(hours: float, **overrides: Any) -> ImportRequest:
        request = make_request(**overrides)
        ImportRequest.objects.filter(pk=request.pk).update(decision_asked_at=timezone.now() - timedelta(hours=hours))
        return ImportRequest.objects.get(pk=request.pk)

    return make


def remind(capture: Any) -> execution.OverdueReport:
    with capture(execute=True):
        return execution.remind_overdue_decisions()


def told(request: ImportRequest) -> list[tuple[str, str]]:
    events = RequestEvent.objects.filter(request=request, action__in=["remind", "escalate"]).order_by("seq")
    return [(e.action, e.actor_name) for e in events]


def test_a_request_undecided_for_a_day_reminds_its_approvers_once(
    waiting: Any, approver: Any, other_approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    late, recent = waiting(25), waiting(23)
    mail.outbox.clear()

    report = remind(django_capture_on_commit_callbacks)

    assert (report.reminded, report.escalated) == (1, 0)
    assert told(late) == [("remind", "system")]
    assert told(recent) == []
    event = RequestEvent.objects.get(request=late, action="remind")
    assert event.data["version"] == 1
    assert event.data["waiting_hours"] == pytest.approx(25, abs=0.2)
    [reminder] = mail.outbox
    assert sorted(reminder.to) == ["anna@example.com", "bert@example.com"]
    assert "waited 25" in reminder.body
    assert reverse("request_detail", args=[late.pk]) in reminder.body
    # Once per version: the next pass reminds nobody again.
    assert remind(django_capture_on_commit_callbacks).reminded == 0
    assert len(mail.outbox) == 1


def test_a_request_undecided_longer_is_escalated_to_the_configured_group(
    waiting: Any, approver: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    managers = Group.objects.create(name="IT managers")
    make_user("mona").groups.add(managers)
    settings.PORTAL_ESCALATION_GROUP = "IT managers"
    late = waiting(80)
    mail.outbox.clear()

    report = remind(django_capture_on_commit_callbacks)

    assert (report.reminded, report.escalated) == (1, 1)
    assert told(late) == [("remind", "system"), ("escalate", "system")]
    escalation = next(m for m in mail.outbox if "escalated" in m.subject)
    assert sorted(escalation.to) == ["anna@example.com", "mona@example.com"]
    assert "was escalated to you" in escalation.body
    late.refresh_from_db()
    assert late.reminded_at is not None
    assert late.escalated_at is not None


def test_a_new_version_waits_afresh_and_a_decided_one_is_left_alone(
    waiting: Any, requester: Any, approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    edited, decided = waiting(30), waiting(30)
    workflow.edit_request(
        request_id=edited.pk, actor=requester, fields={"image_description": "Changed"}, expected_version=1
    )
    workflow.approve_request(request_id=decided.pk, actor=approver, expected_version=1)

    assert remind(django_capture_on_commit_callbacks).reminded == 0
    edited.refresh_from_db()
    assert edited.decision_asked_at > timezone.now() - timedelta(minutes=1)
    assert told(edited) == told(decided) == []


def test_a_reminder_for_a_version_that_changed_meanwhile_is_not_recorded(waiting: Any, requester: Any) -> None:
    late = waiting(30)
    workflow.edit_request(
        request_id=late.pk, actor=requester, fields={"image_description": "Changed"}, expected_version=1
    )

    with pytest.raises(workflow.Conflict):
        workflow.record_overdue(request_id=late.pk, version=1, escalate=False)
    assert told(late) == []


def test_the_dashboard_and_the_request_page_show_what_is_overdue(
    client: Any, waiting: Any, approver: Any, auditor: Any, requester: Any, django_capture_on_commit_callbacks: Any
) -> None:
    late = waiting(100)
    waiting(1)
    remind(django_capture_on_commit_callbacks)

    for reader in (approver, auditor):
        client.force_login(reader)
        page = client.get(reverse("dashboard")).content.decode()
        assert "Decisions overdue" in page
        assert f"1 request has waited more than {settings.PORTAL_REMIND_AFTER_HOURS} hours" in page
        assert "1 of them so long that it was escalated" in page
    client.force_login(requester)
    assert "Decisions overdue" not in client.get(reverse("dashboard")).content.decode()

    page = client.get(reverse("request_detail", args=[late.pk])).content.decode()
    assert 'id="overdue"' in page
    assert "approvers reminded" in page
    assert "escalated" in page


def test_beat_runs_the_reminders() -> None:
    scheduled = settings.CELERY_BEAT_SCHEDULE["remind-overdue-decisions"]
    assert scheduled["task"] == "imports.tasks.remind_overdue_decisions"
    assert scheduled["schedule"] == settings.PORTAL_OVERDUE_CHECK_SECONDS


def test_only_approvers_of_the_policy_and_their_stand_ins_are_reminded(
    target: Any, waiting: Any, approver: Any, other_approver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    production = Group.objects.create(name="Production approvers")
    target.approver_groups.add(production)
    other_approver.groups.add(production)
    waiting(30)
    mail.outbox.clear()

    remind(django_capture_on_commit_callbacks)

    assert [m.to for m in mail.outbox] == [["bert@example.com"]]
    assert roles.has_role(approver, roles.APPROVERS)  # an approver, but not one of this target's
