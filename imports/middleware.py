"""Responses to a signed-in person are never kept by browsers or caches along the way: they
show requests, role ARNs and audit history (and the export the whole of it)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


class NoStoreForSignedInMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Cache-Control#no-store
            patch_cache_control(response, no_store=True, private=True)
        return response
