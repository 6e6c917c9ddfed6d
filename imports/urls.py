from django.urls import path, register_converter

from imports import delegation_views, rollout_views, views, webhook_views


class RequestIdConverter:
    """Ids of at most 12 digits: a longer number would overflow the database's integer type
    and give an error page instead of a plain 404."""

    regex = "[0-9]{1,12}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(RequestIdConverter, "request_id")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("requests/", views.request_list, name="request_list"),
    path("requests/new/", views.request_create, name="request_create"),
    path("requests/<request_id:pk>/", views.request_detail, name="request_detail"),
    path("requests/<request_id:pk>/edit/", views.request_edit, name="request_edit"),
    path("requests/<request_id:pk>/status/", views.request_status, name="request_status"),
    path("requests/<request_id:pk>/rollout/", rollout_views.request_rollout, name="request_rollout"),
    path("requests/<request_id:pk>/steps/<request_id:step_id>/retry/", rollout_views.step_retry, name="step_retry"),
    path("requests/<request_id:pk>/<slug:action>/", views.request_action, name="request_action"),
    path("approvals/", views.approval_queue, name="approval_queue"),
    path("stand-ins/", delegation_views.stand_ins, name="stand_ins"),
    path("account/webhooks/", webhook_views.my_webhooks, name="my_webhooks"),
    path("account/webhooks/<request_id:pk>/delete/", webhook_views.delete_webhook, name="delete_webhook"),
    path("stand-ins/<request_id:pk>/revoke/", delegation_views.stand_in_revoke, name="stand_in_revoke"),
    path("targets/", rollout_views.target_list, name="target_list"),
    path("targets/<request_id:pk>/images/", rollout_views.target_images, name="target_images"),
    path("audit/exports/", views.audit_export, name="audit_export"),
    path("audit/exports/<request_id:pk>/download/", views.audit_export_download, name="audit_export_download"),
    path("audit/admin-history/", views.admin_history, name="admin_history"),
]
