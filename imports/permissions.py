"""Django's permission checks (ModelBackend) with one query instead of two.

ModelBackend reads a user's own permissions and their groups' in two queries, once per request
(the user object keeps them). Every page asks (the navigation shows what the user may do), so
reading both in one UNION saves a query on every page of every signed-in user who is not a
superuser (a superuser's checks read nothing). Which permissions a user has does not change:
the same two querysets, the same set, the same cache on the user object.
"""

from typing import Any

from django.contrib.auth.backends import ModelBackend


class PermissionsInOneQuery(ModelBackend):
    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        asks = user_obj.is_active and not user_obj.is_anonymous and obj is None and not user_obj.is_superuser
        if asks and not hasattr(user_obj, "_perm_cache"):
            fields = ("content_type__app_label", "codename")
            own = self._get_user_permissions(user_obj).values_list(*fields).order_by()
            groups = self._get_group_permissions(user_obj).values_list(*fields).order_by()
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in own.union(groups)}
        return super().get_all_permissions(user_obj, obj)
