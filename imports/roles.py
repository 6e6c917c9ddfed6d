"""The portal's roles as Django groups, and the permissions each one carries.

Kept in code and applied on every `migrate` (post_migrate), so a new permission reaches its
groups without a hand-written data migration, and a test database flush gets them back.
"""

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
    AUDITORS: ("imports.view_importrequest", "imports.view_requestevent", "imports.view_awstarget"),
}


def sync_role_groups(apps: Apps = global_apps, using: str = "default") -> None:
    """Create the role groups and give each exactly its permissions."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for group_name, permission_names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(using).get_or_create(name=group_name)
        permissions = []
        for name in permission_names:
            app_label, codename = name.split(".")
            permissions.append(
                permission_model.objects.using(using).get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)
