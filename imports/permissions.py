"""Django's permission checks (ModelBackend) and the user's roles, read in one query.

ModelBackend reads a user's own permissions and their groups' in two queries, once per request
(the user object keeps them), and the portal's roles (imports.roles) are groups, read in one
more. Every page asks for both (the navigation shows what the user may do), so one UNION reads
all three: a query saved twice over on every page of every signed-in user who is not a
superuser (a superuser's permission checks read nothing; their roles still take a query).
Which permissions and roles a user has does not change: the same querysets, the same sets, the
same caches on the user object.

The query is the same for every user but for the user's id, and compiling it (a three-way
UNION with its joins) cost the ORM more than a millisecond on every page: it is compiled once
per process, with a user id no user has, and run with each user's.
"""

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import connection
from django.db.models import Value

from imports import roles

# A role group's row among the permissions' rows: an app label no app has.
ROLE_ROW = ""
# The user id the query is compiled with (ids are positive).
NO_ONE = -1


@cache
def _compiled(*, with_permissions: bool) -> tuple[str, tuple[Any, ...]]:
    """The query's SQL and parameters for the user NO_ONE: the role groups' rows, and with
    them (as ModelBackend reads them) the user's own permissions and its groups'."""
    someone = get_user_model()(pk=NO_ONE)
    rows = (
        someone.groups.filter(name__in=roles.ROLE_PERMISSIONS)
        .order_by()
        .annotate(marker=Value(ROLE_ROW))
        .values_list("marker", "name")
    )
    if with_permissions:
        backend, fields = ModelBackend(), ("content_type__app_label", "codename")
        own = backend._get_user_permissions(someone).values_list(*fields).order_by()
        groups = backend._get_group_permissions(someone).values_list(*fields).order_by()
        rows = own.union(groups, rows)
    return rows.query.sql_with_params()


def read_permissions_and_roles(user: Any) -> None:
    """Keep on `user` its role groups (roles.roles_of) and, unless it is a superuser or they
    are kept already, its permissions (ModelBackend's cache), in one query."""
    with_permissions = not user.is_superuser and not hasattr(user, "_perm_cache")
    sql, params = _compiled(with_permissions=with_permissions)
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.pk if param == NO_ONE else param for param in params])
        rows = cursor.fetchall()
    user._portal_roles = frozenset(name for app_label, name in rows if app_label == ROLE_ROW)
    if with_permissions:
        user._perm_cache = {f"{app_label}.{codename}" for app_label, codename in rows if app_label != ROLE_ROW}


class PermissionsInOneQuery(ModelBackend):
    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        asks = user_obj.is_active and not user_obj.is_anonymous and obj is None and not user_obj.is_superuser
        if asks and not hasattr(user_obj, "_perm_cache"):
            read_permissions_and_roles(user_obj)
        return super().get_all_permissions(user_obj, obj)
