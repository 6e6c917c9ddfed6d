"""The portal's roles as Django groups, and the permissions each one carries.

Kept in code and applied on every `migrate` (post_migrate), so a new permission reaches its
groups without a hand-written data migration, and a test database flush gets them back.
"""

from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps

REQUESTERS = "Requesters"
APPROVERS = "Approvers"
AUDITORS = "Auditors"

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    REQUESTERS: ("imports.add_importrequest",),
    APPROVERS: (
        "imports.view_importrequest",
        "imports.approve_importrequest",
        "imports.view_requestevent",
        "imports.view_awstarget",
    ),
    AUDITORS: (
        "imports.view_importrequest",
        "imports.view_requestevent",
        "imports.view_awstarget",
        "imports.view_adminevent",
    ),
}


def roles_of(user: Any) -> frozenset[str]:
    """The role groups `user` belongs to, read once per user object, with its permissions
    (imports.permissions). Acting as a requester or an approver takes membership of the group:
    being a superuser is not enough, so that no single admin can file and approve an import
    alone (separation of duties)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if getattr(user, "_portal_roles", None) is None:
        # Imported here: the settings import this module, before any model can be.
        from imports.permissions import read_permissions_and_roles

        read_permissions_and_roles(user)
    return user._portal_roles


def has_role(user: Any, role: str) -> bool:
    return role in roles_of(user)


def sync_role_groups(apps: Apps = global_apps, using: str = "default") -> None:
    """Create the role groups and give each exactly its permissions."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for group_name, permission_names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(using).get_or_create(name=group_name)
        permissions = []
        for name in permission_names:
            app_label, codename = name.split(".")
            # A migration run before a model existed finds no permission for it yet; the
            # post_migrate run after the last migration gives it.
            permissions.extend(
                permission_model.objects.using(using).filter(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)
