"""Review pages. Requests and their audit history are read-only here: every change to a
request goes through imports.workflow, from the portal's own pages."""

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from imports import dispatch
from imports.filters import REFERENCE_RE
from imports.forms import WebhookForm
from imports.models import (
    AdminEvent,
    AwsTarget,
    Delegation,
    ImportRequest,
    RequestEvent,
    RequestState,
    RolloutStep,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    format_reference,
)

# A changelist pages through at most this many rows (100 pages of 100): deeper OFFSETs cost
# seconds on a million events; search or filter to reach rows further in.
ADMIN_MAX_ROWS = 10_000
# The request page's inline shows this many of the newest events, with a link to the rest.
INLINE_EVENTS = 20


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table: on PostgreSQL it takes the planner's estimate
    of the rows (EXPLAIN, which reads the table statistics, pg_class.reltuples), and counts
    exactly only when that estimate is under two pages. Either way at most ADMIN_MAX_ROWS. An
    estimate above the truth shows a last page or two that are empty.
    https://wiki.postgresql.org/wiki/Count_estimate"""

    @cached_property
    def count(self) -> int:
        rows = self.object_list.order_by()
        estimate = _planner_estimate(rows)
        # A small estimate is checked: the changelist would read every row unpaged below one page.
        if estimate is not None and estimate > 2 * self.per_page:
            return min(estimate, ADMIN_MAX_ROWS)
        return rows[:ADMIN_MAX_ROWS].count()


def _planner_estimate(rows: QuerySet) -> int | None:
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


class BigTableAdmin(admin.ModelAdmin):
    """A changelist that stays fast at millions of rows: no full count beside the filtered one,
    and that one estimated."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False


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
    list_display = [
        *("name", "account_id", "region", "credentials", "endpoint_url", "byop_allowed"),
        *("approvals_required", "is_active"),
    ]
    list_filter = ["is_active", "credentials", "byop_allowed", "region"]
    filter_horizontal = ["approver_groups"]
    search_fields = ["name", "account_id"]
    # A typed host without a scheme means a real (TLS) endpoint; the sandbox is given as http://.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["name", "account_id", "region", "is_active"]}),
        ("Credentials", {"fields": ["credentials", "role_arn", "external_id"]}),
        ("Options", {"fields": ["byop_allowed", "endpoint_url"]}),
        # Shown on each request of the target; a change applies to the approvals still to come.
        ("Approval policy", {"fields": ["approvals_required", "approver_groups"]}),
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


class NewestEventsFormSet(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_newest"):
            self._newest = super().get_queryset()[:INLINE_EVENTS]
        return self._newest


class RequestEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The newest events only: a request with thousands of them rendered every one. The rest
    are in the events' changelist, filtered to the request (ImportRequestAdmin.all_events)."""

    model = RequestEvent
    formset = NewestEventsFormSet
    verbose_name_plural = f"newest {INLINE_EVENTS} events"
    fields = ["seq", "created_at", "actor_username", "action", "from_state", "to_state", "comment", "data"]
    readonly_fields = fields
    extra = 0
    ordering = ["-seq"]


class RolloutStepInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The delivery plan's steps (a plan has a few); each acted on in the portal (retry)."""

    model = RolloutStep
    fk_name = "request"
    fields = ["position", "kind", "region", "state", "resource_id", "resource_state", "calls", "failure", "updated_at"]
    readonly_fields = fields
    extra = 0
    ordering = ["position"]


def _reference_search(queryset: QuerySet, search_term: str, field: str) -> QuerySet:
    match = REFERENCE_RE.match(search_term)
    return queryset.filter(**{field: int(match.group(1))}) if match else queryset.none()


@admin.register(ImportRequest)
class ImportRequestAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    list_display = ["reference", "image_name", "target", "requester", "approver", "state", "rollout", "created_at"]
    list_filter = ["state", "rollout", "target", "windows_version", "ingestion_process", "created_at"]
    search_fields = ["image_name", "ec2_image_id", "aws_image_id", "requester__username"]
    list_select_related = ["target", "requester", "approver"]
    readonly_fields = ["reference", "portal_link", "all_events"]
    inlines = [RequestEventInline, RolloutStepInline]
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

    @admin.display(description="Audit history")
    def all_events(self, obj: ImportRequest) -> str:
        return format_html(
            '<a href="{}?request__exact={}">All events of {}</a>',
            reverse("admin:imports_requestevent_changelist"),
            obj.pk,
            obj.reference,
        )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return found | _reference_search(queryset, search_term, "pk"), may_have_duplicates


class ToStateFilter(admin.SimpleListFilter):
    """The states from their choices: Django's default filter for a field without choices runs a
    DISTINCT over every event to list them."""

    title = "to state"
    parameter_name = "to_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return RequestState.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(to_state=self.value()) if self.value() else queryset


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    # Newest first, so the date filters' ranges (today, this month, ...) are met at once.
    ordering = ["-seq"]
    list_display = ["seq", "reference", "created_at", "actor_username", "action", "from_state", "to_state"]
    # Both from choices, never a DISTINCT over the events.
    list_filter = [("action", admin.ChoicesFieldListFilter), ToStateFilter, "created_at"]
    # A search is a request's reference or a user name, each read along an index
    # (RequestEvent.Meta.indexes); a substring of every comment would scan a million events.
    search_fields = ["=actor_username"]
    search_help_text = "A request's reference (IMP-000123), or the exact user name of whoever acted."
    list_select_related = ["actor"]
    readonly_fields = [f.name for f in RequestEvent._meta.fields]

    @admin.display(description="Request", ordering="request_id")
    def reference(self, obj: RequestEvent) -> str:
        return format_reference(obj.request_id)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        if REFERENCE_RE.match(search_term):
            return _reference_search(queryset, search_term, "request_id"), False
        return queryset.filter(actor_username=search_term.strip()), False


@admin.register(AdminEvent)
class AdminEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["seq", "created_at", "actor_username", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_repr", "actor_username"]
    readonly_fields = [f.name for f in AdminEvent._meta.fields]


@admin.register(Delegation)
class DelegationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Approvers name their stand-ins on the portal's own page (imports.delegation_views); the
    admin reads them. Rows are kept when revoked: they say who could decide for whom, and when."""

    list_display = ["approver", "stand_in", "starts_on", "ends_on", "created_at", "revoked_at"]
    list_select_related = ["approver", "stand_in"]
    search_fields = ["approver__username", "stand_in__username"]
    date_hierarchy = "starts_on"


class TargetWebhookForm(WebhookForm):
    class Meta(WebhookForm.Meta):
        fields = ["name", "target", "url", "kind", "events", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.owner_id:
            # A person's webhook: only switched on or off here (the rest is theirs, shown read-only).
            for name in set(self.fields) - {"is_active"}:
                del self.fields[name]
        else:
            self.fields["target"].required = True


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Targets' webhooks, made and changed here; people's own (made on their *Webhooks* page) are
    listed, and can be switched off or deleted. The secret is shown once, when it is made, and
    the list shows only the URL's host (a Slack or Teams URL is a secret too)."""

    form = TargetWebhookForm
    list_display = ("name", "target", "owner", "kind", "destination", "is_active", "created_at")
    list_filter = ("kind", "is_active", "target")
    search_fields = ("name", "owner__username", "target__name")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return (
            ["name", "owner", "destination", "kind", "events", "is_active"]
            if obj and obj.owner_id
            else super().get_fields(request, obj)
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # A person's webhook stays theirs: admins may switch it off or delete it, not repoint it,
        # and see where it posts, not its URL (a Slack or Teams URL is its own secret).
        return ("name", "owner", "destination", "kind", "events") if obj and obj.owner_id else ()

    def response_add(
        self, request: HttpRequest, obj: WebhookSubscription, post_url_continue: Any = None
    ) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "subscription": obj, "opts": self.opts}
        return TemplateResponse(request, "admin/imports/webhook_secret.html", context)


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ("started_at", "status_code", "error", "duration_ms", "outcome", "next_attempt_at")
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The delivery log: each delivery, and under it every attempt with its outcome."""

    list_display = ("created_at", "subscription", "event_name", "request", "outcome", "attempts", "next_attempt_at")
    list_filter = ("outcome", "event_name")
    list_select_related = ("subscription", "request")
    exclude = ("body",)
    inlines = [WebhookAttemptInline]
