from django.apps import AppConfig
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_migrate, post_save


def _sync_roles(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    from imports.admin_history import not_recorded
    from imports.roles import sync_role_groups

    with not_recorded():
        sync_role_groups(using=using)


def _guard_audit_histories(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    """Put the append-only triggers back after every migrate: SQLite rebuilds a table to alter
    it and the rebuilt table has none, so a later migration that touches an audit table would
    otherwise leave it unguarded. Installing is idempotent."""
    from django.db import connections

    from imports.db_guards import install_audit_guards

    install_audit_guards(connections[using])


class ImportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "imports"
    verbose_name = "WorkSpaces image imports"

    def ready(self) -> None:
        # After auth has created the permissions (its post_migrate handler runs first, as
        # django.contrib.auth comes before imports in INSTALLED_APPS).
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="imports.sync_roles")
        post_migrate.connect(_guard_audit_histories, sender=self, dispatch_uid="imports.guard_audit_histories")

        from imports import admin_history, aws, endpoints, filters, middleware
        from imports.models import AwsTarget
        from imports.ratelimit import DatabaseTokenBucket

        for changed in (post_save, post_delete):
            changed.connect(filters.forget_target_choices, sender=AwsTarget, dispatch_uid="imports.target_choices")

        aws.use_endpoint_guard(endpoints.endpoint_problem)
        admin_history.connect()
        user_logged_in.connect(middleware.start_session_clocks, dispatch_uid="imports.start_session_clocks")

        aws.use_rate_limiter(
            DatabaseTokenBucket(
                rate=settings.PORTAL_WORKSPACES_CALLS_PER_SECOND, burst=settings.PORTAL_WORKSPACES_BURST
            )
        )
