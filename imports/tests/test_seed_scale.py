"""seed_scale: a history at scale that verify_audit accepts, and its refusals."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from imports import audit
from imports.management.commands.seed_scale import MSG_DEBUG_OFF
from imports.models import AuditChainHead, ImportRequest, RequestEvent, RequestState


def seed(**options: Any) -> None:
    call_command("seed_scale", requests=60, users=8, targets=3, busy_requests=1, busy_events=120, **options)


@pytest.mark.django_db
def test_seeded_history_is_a_chain_verify_audit_accepts(settings: Any) -> None:
    settings.DEBUG = True

    seed()

    assert ImportRequest.objects.count() == 60
    assert set(ImportRequest.objects.values_list("state", flat=True)) >= {
        RequestState.AVAILABLE,
        RequestState.SUBMITTED,
    }
    busiest = RequestEvent.objects.values("request").annotate(n=Count("id")).order_by("-n").first()
    assert busiest["n"] == 120
    total = RequestEvent.objects.count()
    assert 60 * 6 + 120 < total < 60 * 13 + 120
    head = AuditChainHead.objects.get(pk=1)
    assert head.seq == total
    count, problems = audit.verify_chain()
    assert (count, problems) == (total, [])
    call_command("verify_audit")


@pytest.mark.django_db
def test_seed_refuses_with_debug_off(settings: Any) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="runs only with DJANGO_DEBUG on"):
        seed()

    assert MSG_DEBUG_OFF.startswith("seed_scale fills")
    assert not ImportRequest.objects.exists()


@pytest.mark.django_db
def test_seed_refuses_a_non_empty_history_unless_appending(settings: Any) -> None:
    settings.DEBUG = True
    seed()
    before = RequestEvent.objects.count()

    with pytest.raises(CommandError, match="already holds"):
        seed()
    assert RequestEvent.objects.count() == before

    seed(append=True)
    assert ImportRequest.objects.count() == 120
    assert audit.verify_chain()[1] == []


@pytest.mark.django_db
def test_a_new_request_after_the_seed_continues_the_chain(settings: Any, make_request: Any) -> None:
    settings.DEBUG = True
    seed()

    created = make_request()

    assert created.pk > ImportRequest.objects.exclude(pk=created.pk).latest("pk").pk
    assert audit.verify_chain()[1] == []


@pytest.mark.django_db
def test_the_history_ends_two_days_ago_every_event_in_the_past(settings: Any) -> None:
    settings.DEBUG = True

    seed()

    now = timezone.now()
    newest = ImportRequest.objects.latest("created_at").created_at
    assert now - timedelta(days=2, minutes=16) < newest <= now - timedelta(days=2)
    assert RequestEvent.objects.latest("created_at").created_at < now
    # 60 requests, one every 16 minutes: all of them in the dashboard's weeks.
    assert ImportRequest.objects.filter(created_at__gte=now - timedelta(days=3)).count() == 60
