"""The admin history: every change to a target, a user, a group or a group membership, written
to the append-only, sealed AdminEvent chain (imports.audit), whoever makes it and from wherever
(the admin, a management command, single sign-on syncing roles at log-in).

Signals catch the change at the model, so no path around the admin escapes it; each event is
written in the transaction of the change. Who acted comes from the request being served
(ActingUserMiddleware), or from `acting_as` around work done outside one; otherwise "system".
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from imports.audit import append_admin_event
from imports.models import AdminEvent, AwsTarget

# What is recorded of each model: the fields people change. Worker-maintained fields (a
# target's AMI offers) and log-in bookkeeping (last_login) are not admin changes.
TRACKED_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    AwsTarget: (
        "name",
        "account_id",
        "region",
        "credentials",
        "role_arn",
        "external_id",
        "endpoint_url",
        "byop_allowed",
        "is_active",
        # The approval policy (its groups are recorded as memberships: _record_membership).
        "approvals_required",
    ),
    Group: ("name",),
}
USER_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser", "password")
# Secrets are recorded as changed, never with their values.
SECRET_FIELDS = {"password", "external_id"}

_acting: ContextVar[Any] = ContextVar("admin_history_actor", default=None)
_recording: ContextVar[bool] = ContextVar("admin_history_recording", default=True)


@contextmanager
def not_recorded() -> Iterator[None]:
    """For `migrate` setting the role groups' permissions from code (imports.roles): those come
    from reviewed code, not from a person, and every migrate (and a test database's flush)
    applies them again."""
    token = _recording.set(False)
    try:
        yield
    finally:
        _recording.reset(token)


@contextmanager
def acting_as(actor: Any) -> Iterator[None]:
    """Attribute the changes made inside to `actor`: a user, or a label such as "single sign-on"."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


class ActingUserMiddleware:
    """Changes made while serving a request are attributed to its signed-in user."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        with acting_as(request):
            return self.get_response(request)


def _actor() -> tuple[int | None, str]:
    actor = _acting.get()
    if isinstance(actor, str):
        return None, actor
    user = getattr(actor, "user", actor)  # a request, or a user
    if user is not None and getattr(user, "is_authenticated", False):
        return user.pk, user.get_username()
    return None, "system"


def _object_type(model: type[models.Model]) -> str:
    return model._meta.label


def _snapshot(instance: models.Model, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def _record(action: str, instance: models.Model, changes: dict[str, Any]) -> None:
    if not _recording.get():
        return
    actor_id, actor_username = _actor()
    with transaction.atomic(using=instance._state.db):
        append_admin_event(
            actor_id=actor_id,
            actor_username=actor_username,
            action=action,
            object_type=_object_type(type(instance)),
            object_id=instance.pk,
            object_repr=str(instance),
            changes=changes,
        )


def _shown(field: str, value: Any) -> Any:
    return "(secret)" if field in SECRET_FIELDS and value else value


def _fields_of(model: type[models.Model]) -> tuple[str, ...]:
    return USER_FIELDS if model is get_user_model() else TRACKED_FIELDS[model]


def _remember_before(sender: type[models.Model], instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None:
        return
    before = sender._default_manager.using(kwargs.get("using")).filter(pk=instance.pk).first()
    instance._admin_history_before = _snapshot(before, _fields_of(sender)) if before else None


def _record_save(
    sender: type[models.Model], instance: models.Model, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if raw:  # loading fixtures
        return
    fields = _fields_of(sender)
    after = _snapshot(instance, fields)
    before = getattr(instance, "_admin_history_before", None)
    instance._admin_history_before = after
    update_fields = kwargs.get("update_fields")
    if created or before is None:
        _record(AdminEvent.Action.CREATED, instance, {f: [None, _shown(f, v)] for f, v in after.items() if v})
        return
    if update_fields is not None and not set(update_fields) & set(fields):
        return
    changes = {f: [_shown(f, before[f]), _shown(f, after[f])] for f in fields if before[f] != after[f]}
    if changes:
        _record(AdminEvent.Action.CHANGED, instance, changes)


def _record_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    _record(AdminEvent.Action.DELETED, instance, {})


def _names(model: type[models.Model], pks: set[Any] | None) -> list[str]:
    if not pks:
        return []
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).select_related("content_type")
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in rows)
    return sorted(str(o) for o in model._default_manager.filter(pk__in=pks))


def _record_membership(
    sender: Any, instance: models.Model, action: str, reverse: bool, model: Any, **kwargs: Any
) -> None:
    """user.groups.add(...) and group.user_set.add(...) alike: one event on each user or
    group whose memberships (or permissions) changed. A clear records what it is about to remove."""
    pk_set = kwargs.get("pk_set")
    if action == "pre_clear":
        relation = _relation(sender, instance, reverse)
        instance._admin_history_cleared = set(relation.values_list("pk", flat=True))
        return
    if action == "post_clear":
        pk_set, verb = getattr(instance, "_admin_history_cleared", set()), AdminEvent.Action.REMOVED
    elif action in ("post_add", "post_remove"):
        verb = AdminEvent.Action.ADDED if action == "post_add" else AdminEvent.Action.REMOVED
    else:
        return
    if not pk_set:
        return
    field = _relation_name(sender)
    if reverse:
        # group.user_set.add(alice, bob): recorded on each user, as that user's memberships.
        named = _names(type(instance), {instance.pk})
        for owner in model._default_manager.filter(pk__in=pk_set):
            _record(verb, owner, {field: named})
        return
    _record(verb, instance, {field: _names(model, pk_set)})


def _relation_name(through: Any) -> str:
    user_model = get_user_model()
    if through is user_model.groups.through:
        return "groups"
    if through is user_model.user_permissions.through:
        return "user_permissions"
    if through is AwsTarget.approver_groups.through:
        return "approver_groups"
    return "permissions"


def _relation(through: Any, instance: models.Model, reverse: bool) -> Any:
    user_model = get_user_model()
    if through is user_model.groups.through:
        return instance.user_set if reverse else instance.groups
    if through is user_model.user_permissions.through:
        return instance.user_set if reverse else instance.user_permissions
    if through is AwsTarget.approver_groups.through:
        return instance.approvable_targets if reverse else instance.approver_groups
    return instance.group_set if reverse else instance.permissions


def connect() -> None:
    user_model = get_user_model()
    for model in (AwsTarget, Group, user_model):
        uid = f"admin_history.{model._meta.label}"
        pre_save.connect(_remember_before, sender=model, dispatch_uid=f"{uid}.before")
        post_save.connect(_record_save, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_record_delete, sender=model, dispatch_uid=f"{uid}.delete")
    relations = (user_model.groups, user_model.user_permissions, Group.permissions, AwsTarget.approver_groups)
    for through in (relation.through for relation in relations):
        m2m_changed.connect(_record_membership, sender=through, dispatch_uid=f"admin_history.{through._meta.label}")
