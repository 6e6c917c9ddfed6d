"""The admin history: changes to targets, users, groups and memberships, recorded whoever makes
them and from wherever, append-only, sealed, and readable by auditors."""

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, update_last_login
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from imports import audit, roles
from imports.admin_history import acting_as
from imports.db_guards import remove_audit_guards
from imports.models import AdminEvent, AwsTarget
from imports.tests.conftest import make_user


def events(**filters: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    rows = AdminEvent.objects.filter(**filters).order_by("seq")
    return [(e.actor_name, e.action, e.object_repr, e.changes) for e in rows]


def admin_user() -> Any:
    user = make_user("root", superuser=True)
    user.is_staff = True
    user.save()
    return user


def test_a_target_changed_in_the_admin_is_recorded_with_who_changed_what(client: Any, target: AwsTarget) -> None:
    admin = admin_user()
    client.force_login(admin)
    before = AdminEvent.objects.count()
    data = {
        "name": target.name,
        "account_id": target.account_id,
        "region": "eu-west-1",
        "credentials": "default",
        "role_arn": "",
        "external_id": "",
        "endpoint_url": "",
        "is_active": "on",
        "approvals_required": "1",
    }

    response = client.post(reverse("admin:imports_awstarget_change", args=[target.pk]), data)

    assert response.status_code == 302, response.content[:2000]
    [event] = AdminEvent.objects.filter(seq__gt=before, object_type="imports.AwsTarget")
    assert (event.actor_username, event.actor_id, event.action) == ("root", admin.pk, "changed")
    assert event.changes == {"region": ["us-east-1", "eu-west-1"]}


def test_creating_and_deleting_a_target_outside_the_admin_is_recorded_too(db: None) -> None:
    target = AwsTarget.objects.create(name="Lab", account_id="123456789012", region="us-east-1", external_id="s3cret")
    target.delete()

    recorded = events(object_type="imports.AwsTarget")
    assert [(actor, action) for actor, action, _, _ in recorded] == [("system", "created"), ("system", "deleted")]
    assert recorded[0][3]["external_id"] == [None, "(secret)"]
    assert "s3cret" not in str(recorded)


def test_group_memberships_are_recorded_from_either_side(db: None) -> None:
    alice = make_user("alice")
    bob = make_user("bob")
    approvers = Group.objects.get(name=roles.APPROVERS)

    with acting_as("single sign-on"):
        alice.groups.add(approvers)
    approvers.user_set.add(bob)
    alice.groups.remove(approvers)
    bob.groups.clear()

    recorded = [(a, action, who, changes) for a, action, who, changes in events(object_type="auth.User")]
    assert [r for r in recorded if r[1] != "created"] == [
        ("single sign-on", "added", "alice", {"groups": ["Approvers"]}),
        ("system", "added", "bob", {"groups": ["Approvers"]}),
        ("system", "removed", "alice", {"groups": ["Approvers"]}),
        ("system", "removed", "bob", {"groups": ["Approvers"]}),
    ]


def test_a_password_change_is_recorded_without_the_hash_and_a_log_in_is_not_a_change(db: None) -> None:
    user = make_user("carol")
    user.set_password("another-long-password")
    user.save()
    # What a log-in does to the user row (django.contrib.auth's user_logged_in receiver).
    update_last_login(None, user)

    changes = [c for _, action, _, c in events(object_type="auth.User") if action == "changed"]
    assert changes == [{"password": ["(secret)", "(secret)"]}]


def test_a_deleted_user_keeps_their_history(db: None) -> None:
    user = make_user("dave", groups=(roles.REQUESTERS,))
    user.delete()

    assert [action for _, action, who, _ in events(object_type="auth.User")] == ["created", "added", "deleted"]


def test_the_admin_history_is_append_only_in_the_database(db: None) -> None:
    make_user("erin")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE imports_adminevent SET actor_username = 'nobody'")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM imports_adminevent")


def test_an_edited_admin_event_is_detected(db: None) -> None:
    make_user("frank", groups=(roles.APPROVERS,))
    remove_audit_guards(connection)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE imports_adminevent SET changes = %s WHERE seq = 2", ['{"groups": ["Auditors"]}'])
    err = StringIO()

    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", stdout=StringIO(), stderr=err)

    assert "admin history, event #2: its content does not match its seal" in err.getvalue()
    assert audit.verify_chain_report(audit.ADMIN_CHAIN).count == 2


def test_migrate_setting_the_role_groups_from_code_is_not_recorded_as_a_persons_change(db: None) -> None:
    Group.objects.get(name=roles.AUDITORS).permissions.clear()
    before = AdminEvent.objects.count()

    call_command("migrate", verbosity=0)

    assert AdminEvent.objects.count() == before


def test_auditors_read_the_admin_history_in_the_portal(client: Any, auditor: Any) -> None:
    AwsTarget.objects.create(name="Audited", account_id="123456789012", region="us-east-1")
    client.force_login(auditor)

    page = client.get(reverse("admin_history"))

    assert page.status_code == 200
    assert b"Audited" in page.content
    assert page["Cache-Control"].startswith("no-store") or "no-store" in page["Cache-Control"]


@pytest.mark.parametrize("who", ["requester", "approver"])
def test_requesters_and_approvers_do_not_read_the_admin_history(db: None, client: Any, who: str, request: Any) -> None:
    client.force_login(request.getfixturevalue(who))

    assert client.get(reverse("admin_history")).status_code == 403


def test_the_admin_history_pages_by_sequence(client: Any, auditor: Any) -> None:
    for n in range(30):
        make_user(f"user{n:02d}")
    client.force_login(auditor)
    newest = AdminEvent.objects.order_by("-seq").first()

    first = client.get(reverse("admin_history"))
    older = client.get(reverse("admin_history"), {"before": newest.seq - 24})
    bad = client.get(reverse("admin_history"), {"before": "x' OR 1=1"})

    assert first.status_code == older.status_code == 200
    assert len(first.context["events"]) == 25
    assert first.context["older_than"] == newest.seq - 24
    assert older.context["events"][0].seq == newest.seq - 25
    assert bad.status_code == 400
