from django.http import HttpRequest

from imports import roles as roles_module
from imports import selectors


def roles(request: HttpRequest) -> dict[str, bool]:
    """What the navigation offers; every view checks again on its own."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_request": roles_module.has_role(user, roles_module.REQUESTERS),
        "can_approve": roles_module.has_role(user, roles_module.APPROVERS),
        "sees_all_requests": selectors.sees_all_requests(user),
        "can_read_audit": user.has_perm("imports.view_requestevent"),
        "can_read_admin_history": user.has_perm("imports.view_adminevent"),
    }
