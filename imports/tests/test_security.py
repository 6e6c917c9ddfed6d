"""Log-in throttling and sessions that end (issue 10): from outside, through the real log-in view."""

import logging
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from imports.middleware import MSG_SIGNED_OUT_IDLE, MSG_SIGNED_OUT_MAX
from imports.tests.conftest import PASSWORD


def log_in(client: Client, username: str, password: str, address: str = "203.0.113.7") -> Any:
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_user_name_is_locked_after_five_failures_even_for_the_right_password(
    approver: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    client = Client()

    with caplog.at_level(logging.WARNING, logger="axes"):
        failures = [log_in(client, "anna", f"wrong-{n}", address=f"203.0.113.{n}") for n in range(5)]
        right = log_in(client, "anna", PASSWORD, address="198.51.100.1")

    assert [r.status_code for r in failures[:4]] == [200] * 4  # the form again, with its error
    assert right.status_code == 429
    assert "Log-in paused" in right.content.decode()
    assert "_auth_user_id" not in client.session
    assert sum("login failure" in r.getMessage().lower() for r in caplog.records) >= 5


def test_an_address_is_locked_after_five_failures_whatever_the_user_names(approver: Any, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    client = Client()

    for n in range(5):
        log_in(client, f"guess-{n}", "wrong", address="203.0.113.99")
    locked = log_in(client, "anna", PASSWORD, address="203.0.113.99")
    elsewhere = log_in(Client(), "anna", PASSWORD, address="198.51.100.2")

    assert locked.status_code == 429
    assert elsewhere.status_code == 302  # the user name itself is not locked


def test_a_successful_log_in_clears_earlier_failures(approver: Any, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        log_in(Client(), "anna", "wrong")
    assert log_in(Client(), "anna", PASSWORD).status_code == 302

    for _ in range(2):
        log_in(Client(), "anna", "wrong")

    assert log_in(Client(), "anna", PASSWORD).status_code == 302


def age_session(client: Client, **seconds_ago: float) -> None:
    session = client.session
    for key, ago in seconds_ago.items():
        session[key] = time.time() - ago
    session.save()


def test_a_session_ends_after_thirty_minutes_without_a_click(client: Client, requester: Any, settings: Any) -> None:
    settings.PORTAL_SESSION_IDLE_MINUTES = 30
    client.force_login(requester)
    assert client.get(reverse("dashboard")).status_code == 200
    age_session(client, portal_last_seen=31 * 60)

    response = client.get(reverse("dashboard"), follow=True)

    assert response.redirect_chain[0][0].startswith(f"{reverse('login')}?next=/")
    assert MSG_SIGNED_OUT_IDLE.format(minutes=30) in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302  # signed out for good


def test_the_pages_own_status_polling_does_not_keep_a_session_alive(
    client: Client, requester: Any, make_request: Any, settings: Any
) -> None:
    settings.PORTAL_SESSION_IDLE_MINUTES = 30
    request = make_request()
    client.force_login(requester)
    client.get(reverse("dashboard"))
    age_session(client, portal_last_seen=29 * 60)

    assert client.get(reverse("request_status", args=[request.pk])).status_code == 200
    assert client.session["portal_last_seen"] < time.time() - 28 * 60  # still counted from the last click
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.session["portal_last_seen"] > time.time() - 60  # a click counts


def test_a_session_ends_eight_hours_after_log_in_however_busy(client: Client, requester: Any, settings: Any) -> None:
    settings.PORTAL_SESSION_MAX_HOURS = 8
    client.force_login(requester)
    client.get(reverse("dashboard"))
    age_session(client, portal_began=8 * 3600 + 1, portal_last_seen=1)

    response = client.get(reverse("dashboard"), follow=True)

    assert MSG_SIGNED_OUT_MAX.format(hours=8) in response.content.decode()


def test_both_session_limits_count_from_the_log_in_itself(client: Client, requester: Any, settings: Any) -> None:
    """A session signed in and never used is ended by the idle limit when it is first used."""
    settings.PORTAL_SESSION_IDLE_MINUTES = 30
    client.force_login(requester)
    assert client.session["portal_began"] > time.time() - 5
    age_session(client, portal_began=31 * 60, portal_last_seen=31 * 60)

    response = client.get(reverse("dashboard"), follow=True)

    assert MSG_SIGNED_OUT_IDLE.format(minutes=30) in response.content.decode()


def test_a_short_idle_limit_never_ends_a_session_in_use(client: Client, requester: Any, settings: Any) -> None:
    settings.PORTAL_SESSION_IDLE_MINUTES = 1
    client.force_login(requester)
    age_session(client, portal_last_seen=20)  # a click 20 s ago, then this one

    assert client.get(reverse("dashboard")).status_code == 200
    assert client.session["portal_last_seen"] > time.time() - 5
