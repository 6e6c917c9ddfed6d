from django.contrib import admin
from django.urls import include, path

from imports.accounts import sign_in_urlpatterns
from imports.api import tokens

urlpatterns = [
    *sign_in_urlpatterns(),
    path("admin/", admin.site.urls),
    path("api/v1/", include("imports.api.urls")),
    path("account/api-tokens/", tokens.api_tokens, name="api_tokens"),
    path("account/api-tokens/revoke/", tokens.revoke_api_token, name="api_token_revoke"),
    path("", include("imports.urls")),
]
