"""django-rest-knox's token authentication, noting when each token was last used, so that its
owner sees on the API tokens page which tokens are still in use before revoking one."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication

from imports.api.models import ApiToken

# Noted at most this often per token: a write on every call would be waste.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenAuthentication(KnoxTokenAuthentication):
    def validate_user(self, auth_token: ApiToken) -> tuple[Any, ApiToken]:
        user, token = super().validate_user(auth_token)
        now = timezone.now()
        if token.last_used is None or now - token.last_used >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
            token.last_used = now
        return user, token


class TokenScheme(KnoxTokenScheme):
    """The OpenAPI document's security scheme for it: knox's bearer token."""

    target_class = "imports.api.auth.TokenAuthentication"
