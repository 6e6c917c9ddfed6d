from django.contrib import admin
from django.http import HttpRequest

from imports.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Who holds which API tokens, and until when. Only the token's first characters are stored
    beside its digest; an admin revokes a token by deleting it, and makes none (its owner does,
    on the API tokens page)."""

    list_display = ["name", "user", "token_key", "created", "expiry", "last_used"]
    list_filter = ["created", "expiry"]
    search_fields = ["name", "user__username", "token_key"]
    list_select_related = ["user"]
    fields = ["name", "user", "token_key", "created", "expiry", "last_used"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False
