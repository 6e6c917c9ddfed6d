"""The portal page where a signed-in person makes, lists and revokes their own API tokens.

A page, not an API call: a token is made by someone signed in (log-in, CSRF, the session's
limits), never by a token, so a leaked token cannot mint more. Knox stores only each token's
digest; the token itself is on the page once, in the answer to the form that made it.
"""

import logging
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from imports.api.models import ApiToken

logger = logging.getLogger(__name__)

MAX_TOKENS = 10
LIFETIME_DAYS = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]
MSG_NAME_USED = "You already have a token with this name: choose another, or revoke that one first."
MSG_TOO_MANY = f"You have {MAX_TOKENS} tokens, the most one person may hold: revoke one you no longer use first."
MSG_REVOKED = "Token “{name}” is revoked: calls with it are refused from now on."
MSG_NOTHING_REVOKED = "You have no token with that name; nothing was revoked."


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “ServiceNow import flow”: you see it in the list below.",
    )
    lifetime = forms.TypedChoiceField(
        label="Expires after", choices=LIFETIME_DAYS, coerce=int, initial=90, help_text="Make a new one before then."
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ApiToken.objects.filter(user=self.user, name=name).exists():
            raise forms.ValidationError(MSG_NAME_USED, code="taken")
        return name

    def clean(self) -> dict[str, Any]:
        if ApiToken.objects.filter(user=self.user).count() >= MAX_TOKENS:
            raise forms.ValidationError(MSG_TOO_MANY, code="too_many")
        return super().clean()


def make_token(*, user: Any, name: str, days: int) -> tuple[ApiToken, str]:
    """A new token for `user`: the row (its digest) and the token, which nothing keeps."""
    token, secret = ApiToken.objects.create(user=user, expiry=timedelta(days=days), name=name)
    logger.info("API token %r (%s…) made by %s, expires %s", name, token.token_key, user, token.expiry)
    return token, secret


@require_http_methods(["GET", "HEAD", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.method == "POST" else None, user=request.user)
    made = None
    if form.is_valid():
        _, made = make_token(user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["lifetime"])
        form = TokenForm(user=request.user)
    tokens = ApiToken.objects.filter(user=request.user)
    context = {"form": form, "made": made, "tokens": tokens, "now": timezone.now()}
    return render(request, "imports/api_tokens.html", context, status=400 if form.errors else 200)


@require_POST
def revoke_api_token(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    revoked, _ = ApiToken.objects.filter(user=request.user, name=name).delete()
    if revoked:
        logger.info("API token %r revoked by %s", name, request.user)
        messages.success(request, MSG_REVOKED.format(name=name))
    else:
        messages.error(request, MSG_NOTHING_REVOKED)
    return redirect("api_tokens")
