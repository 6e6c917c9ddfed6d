"""The session and the user every request reads, by SQL compiled once per process: the same
rows, the same sign-outs, as Django's own reads."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from imports import compiled
from imports.accounts import PasswordBackend
from imports.sessions import SessionStore
from imports.tests.conftest import make_user


@pytest.fixture
def signed_in(requester: Any) -> Client:
    client = Client()
    client.force_login(requester)
    return client


def session_of(client: Client) -> str:
    return client.cookies["sessionid"].value


@pytest.mark.django_db
def test_a_session_reads_what_djangos_own_store_reads() -> None:
    store = SessionStore()
    store["answer"] = 42
    store.create()

    mine, djangos = SessionStore(store.session_key), DjangoSessionStore(store.session_key)

    assert mine.load() == djangos.load() == {"answer": 42}
    assert mine.session_key == store.session_key


@pytest.mark.django_db
@pytest.mark.parametrize("expired", [timedelta(seconds=1), timedelta(days=3)])
def test_an_expired_session_reads_as_none_and_forgets_its_key(expired: timedelta) -> None:
    store = SessionStore()
    store["answer"] = 42
    store.create()
    Session.objects.filter(session_key=store.session_key).update(expire_date=timezone.now() - expired)

    again = SessionStore(store.session_key)

    assert again.load() == {}
    assert again.session_key is None


@pytest.mark.django_db
def test_a_session_that_is_not_there_reads_as_none() -> None:
    store = SessionStore("no-such-session-key-0123456789")

    assert store.load() == {}
    assert store.session_key is None


@pytest.mark.django_db
def test_a_session_ended_elsewhere_signs_the_person_out(signed_in: Client) -> None:
    assert signed_in.get(reverse("dashboard")).status_code == 200
    Session.objects.filter(session_key=session_of(signed_in)).delete()

    response = signed_in.get(reverse("dashboard"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.django_db
def test_an_expired_session_signs_the_person_out(signed_in: Client) -> None:
    Session.objects.filter(session_key=session_of(signed_in)).update(expire_date=timezone.now() - timedelta(seconds=1))

    response = signed_in.get(reverse("dashboard"))

    assert response.status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["deactivated", "deleted"])
def test_a_user_deactivated_or_deleted_meanwhile_is_signed_out(signed_in: Client, requester: Any, change: str) -> None:
    users = get_user_model().objects.filter(pk=requester.pk)
    if change == "deleted":
        users.delete()
    else:
        users.update(is_active=False)

    response = signed_in.get(reverse("dashboard"))

    assert response.status_code == 302


@pytest.mark.django_db
def test_the_user_read_is_the_whole_user_as_the_orm_reads_it(requester: Any) -> None:
    requester.last_login = timezone.now()
    requester.save()
    expected = get_user_model().objects.get(pk=requester.pk)

    found = PasswordBackend().get_user(requester.pk)

    assert {f.attname: getattr(found, f.attname) for f in expected._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in expected._meta.concrete_fields
    }
    assert PasswordBackend().get_user(-5) is None


@pytest.mark.django_db
def test_each_read_is_one_query_of_the_sql_compiled_at_the_first(requester: Any) -> None:
    PasswordBackend().get_user(requester.pk)

    with CaptureQueriesContext(connection) as queries:
        PasswordBackend().get_user(requester.pk)
        SessionStore("no-such-session-key-0123456789").load()

    assert len(queries) == 2
    user_sql, _ = compiled._compiled(DEFAULT_DB_ALIAS, "user")
    session_sql, _ = compiled._compiled(DEFAULT_DB_ALIAS, "session")
    django_user_sql, _ = get_user_model().objects.filter(pk=requester.pk).query.sql_with_params()
    assert user_sql == django_user_sql
    assert "django_session" in session_sql
    assert "expire_date" in session_sql


@pytest.mark.django_db
def test_a_query_that_gained_a_constant_fails_at_its_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    gained = (
        lambda: get_user_model().objects.filter(pk=compiled.SOME_ID, username="someone"),
        {"pk": compiled.SOME_ID},
    )
    monkeypatch.setitem(compiled.QUERIES, "gained", gained)

    with pytest.raises(KeyError):
        compiled._one(get_user_model(), "gained", pk=make_user("someone").pk)
