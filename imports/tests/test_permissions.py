"""Permission checks in one query: the same permissions as Django's ModelBackend finds."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports import roles
from imports.accounts import PasswordBackend
from imports.oidc import PortalOIDCBackend
from imports.permissions import PermissionsInOneQuery
from imports.tests.conftest import make_user


def fresh(user: Any) -> Any:
    """The user as a new request reads it, without the permissions an earlier check kept."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.mark.django_db
def test_a_users_own_and_group_permissions_are_read_in_one_query() -> None:
    user = make_user("both", groups=(roles.APPROVERS, roles.AUDITORS))
    user.user_permissions.add(Permission.objects.get(codename="change_awstarget"))
    reread = fresh(user)

    with CaptureQueriesContext(connection) as queries:
        found = PasswordBackend().get_all_permissions(reread)

    assert len(queries) == 1
    assert found == ModelBackend().get_all_permissions(fresh(user))
    assert {"imports.change_awstarget", "imports.approve_importrequest", "imports.view_adminevent"} <= found
    assert fresh(user).has_perm("imports.view_adminevent")
    assert not fresh(user).has_perm("imports.delete_importrequest")


def test_single_sign_on_checks_permissions_the_same_way() -> None:
    # With single sign-on its back end comes first, and answers permission checks first.
    assert PortalOIDCBackend.get_all_permissions is PermissionsInOneQuery.get_all_permissions


@pytest.mark.django_db
def test_no_permission_for_an_inactive_user_nor_for_an_object() -> None:
    user = make_user("gone", groups=(roles.APPROVERS,))
    target = make_user("other")
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)

    assert PasswordBackend().get_all_permissions(fresh(user)) == set()
    assert PasswordBackend().get_all_permissions(make_user("some", groups=(roles.AUDITORS,)), obj=target) == set()


@pytest.mark.django_db
def test_a_superuser_has_every_permission(superuser: Any) -> None:
    assert PasswordBackend().get_all_permissions(fresh(superuser)) == ModelBackend().get_all_permissions(
        fresh(superuser)
    )
    assert len(PasswordBackend().get_all_permissions(fresh(superuser))) == Permission.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize("asked_first", ["roles", "permissions"])
def test_a_users_roles_come_in_the_same_query_as_its_permissions(asked_first: str) -> None:
    user = make_user("approves", groups=(roles.APPROVERS, roles.REQUESTERS))
    user.groups.add(Group.objects.create(name="not a role"))
    reread = fresh(user)

    with CaptureQueriesContext(connection) as queries:
        if asked_first == "roles":
            found = roles.roles_of(reread)
            may_approve = reread.has_perm("imports.approve_importrequest")
        else:
            may_approve = reread.has_perm("imports.approve_importrequest")
            found = roles.roles_of(reread)

    assert len(queries) == 1
    assert found == {roles.APPROVERS, roles.REQUESTERS}
    assert may_approve
    assert reread.get_all_permissions() == ModelBackend().get_all_permissions(fresh(user))


@pytest.mark.django_db
def test_a_superusers_roles_are_its_groups_and_its_permissions_read_nothing(superuser: Any) -> None:
    superuser.groups.add(Group.objects.get(name=roles.AUDITORS))
    reread = fresh(superuser)

    with CaptureQueriesContext(connection) as queries:
        may_delete = reread.has_perm("imports.delete_importrequest")
        found = roles.roles_of(reread)

    assert may_delete
    assert found == {roles.AUDITORS}
    assert len(queries) == 1


@pytest.mark.django_db
def test_the_query_compiled_once_reads_each_users_own_roles_and_permissions() -> None:
    approver = make_user("approver-one", groups=(roles.APPROVERS,))
    auditor = make_user("auditor-one", groups=(roles.AUDITORS,))
    auditor.user_permissions.add(Permission.objects.get(codename="change_awstarget"))

    found = {
        user.username: (roles.roles_of(fresh(user)), fresh(user).get_all_permissions()) for user in (approver, auditor)
    }

    assert found["approver-one"] == ({roles.APPROVERS}, ModelBackend().get_all_permissions(fresh(approver)))
    assert found["auditor-one"] == ({roles.AUDITORS}, ModelBackend().get_all_permissions(fresh(auditor)))
    assert "imports.approve_importrequest" not in found["auditor-one"][1]
    assert "imports.change_awstarget" in found["auditor-one"][1]
