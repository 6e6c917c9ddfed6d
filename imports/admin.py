"""Review pages. Requests and their audit history are read-only here: every change to a
request goes through imports.workflow, from the portal's own pages."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from imports import dispatch
from imports.filters import REFERENCE_RE
from imports.models import AdminEvent, AwsTarget, ImportRequest, RequestEvent


class BoundedDateChangeList(ChangeList):
    """Django's date hierarchy computes the year after the one asked for, so ?created_at__year=9999
    raised ValueError (a 500); any such lookup gets the admin's own 'invalid lookup' answer."""

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc


@admin.register(AwsTarget)
class AwsTargetAdmin(admin.ModelAdmin):
    list_display = ["name", "account_id", "region", "credentials", "endpoint_url", "byop_allowed", "is_active"]
    list_filter = ["is_active", "credentials", "byop_allowed", "region"]
    search_fields = ["name", "account_id"]
    # A typed host without a scheme means a real (TLS) endpoint; the sandbox is given as http://.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["name", "account_id", "region", "is_active"]}),
        ("Credentials", {"fields": ["credentials", "role_arn", "external_id"]}),
        ("Options", {"fields": ["byop_allowed", "endpoint_url"]}),
    ]

    def has_delete_permission(self, request: HttpRequest, obj: AwsTarget | None = None) -> bool:
        # Requests point at their target for good; deactivate a target instead.
        return False

    def save_model(self, request: HttpRequest, obj: AwsTarget, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # The request form offers the account's AMIs as a worker lists them: list them now.
        dispatch.after_commit("refresh_ami_offers", obj.pk)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RequestEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RequestEvent
    fields = ["seq", "created_at", "actor_username", "action", "from_state", "to_state", "comment", "data"]
    readonly_fields = fields
    extra = 0
    ordering = ["seq"]


def _reference_search(queryset: QuerySet, search_term: str, field: str) -> QuerySet:
    match = REFERENCE_RE.match(search_term)
    return queryset.filter(**{field: int(match.group(1))}) if match else queryset.none()


@admin.register(ImportRequest)
class ImportRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "image_name", "target", "requester", "approver", "state", "created_at"]
    list_filter = ["state", "target", "windows_version", "ingestion_process", "created_at"]
    search_fields = ["image_name", "ec2_image_id", "aws_image_id", "requester__username"]
    list_select_related = ["target", "requester", "approver"]
    readonly_fields = ["reference", "portal_link"]
    inlines = [RequestEventInline]
    date_hierarchy = "created_at"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BoundedDateChangeList

    @admin.display(description="Reference", ordering="id")
    def reference(self, obj: ImportRequest) -> str:
        return obj.reference

    @admin.display(description="Portal page")
    def portal_link(self, obj: ImportRequest) -> str:
        return format_html(
            '<a href="{}">Open {} in the portal to act on it</a>',
            reverse("request_detail", args=[obj.pk]),
            obj.reference,
        )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return found | _reference_search(queryset, search_term, "pk"), may_have_duplicates


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["seq", "request", "created_at", "actor_username", "action", "from_state", "to_state"]
    list_filter = ["action", "to_state", "created_at"]
    search_fields = ["action", "comment", "actor_username"]
    list_select_related = ["request", "actor"]
    readonly_fields = [f.name for f in RequestEvent._meta.fields]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return found | _reference_search(queryset, search_term, "request_id"), may_have_duplicates


@admin.register(AdminEvent)
class AdminEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["seq", "created_at", "actor_username", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_repr", "actor_username"]
    readonly_fields = [f.name for f in AdminEvent._meta.fields]
