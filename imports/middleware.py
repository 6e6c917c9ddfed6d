"""What every signed-in request goes through: sessions that end, and pages no cache keeps."""

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

MSG_SIGNED_OUT_IDLE = "You were signed out after {minutes} minutes without activity. Sign in again to go on."
MSG_SIGNED_OUT_MAX = "You were signed out: a session lasts at most {hours} hours. Sign in again to go on."
# What the request page polls by itself: it must not keep an unattended session alive.
BACKGROUND_PATH_SUFFIX = "/status/"
# A click is noted at most once a minute: noting every one wrote the session (an UPDATE) on
# every page, for an idle limit counted in minutes.
TOUCH_SECONDS = 60


class NoStoreForSignedInMiddleware:
    """Responses to a signed-in person are never kept by browsers or caches along the way: they
    show requests, role ARNs and audit history (and the export the whole of it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Cache-Control#no-store
            patch_cache_control(response, no_store=True, private=True)
        return response


class SessionLifetimeMiddleware:
    """End a session after PORTAL_SESSION_IDLE_MINUTES without a click by the person (the page's
    own status polling does not count), and PORTAL_SESSION_MAX_HOURS after it began."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ended = self._ended(request, time.time())
            if ended:
                logout(request)
                messages.info(request, ended)
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)

    @staticmethod
    def _ended(request: HttpRequest, now: float) -> str:
        session = request.session
        began = session.setdefault("portal_began", now)
        last_seen = session.get("portal_last_seen", now)
        if now - began > settings.PORTAL_SESSION_MAX_HOURS * 3600:
            return MSG_SIGNED_OUT_MAX.format(hours=settings.PORTAL_SESSION_MAX_HOURS)
        if now - last_seen > settings.PORTAL_SESSION_IDLE_MINUTES * 60:
            return MSG_SIGNED_OUT_IDLE.format(minutes=settings.PORTAL_SESSION_IDLE_MINUTES)
        # Noted at most every minute (a session write per click would be waste), but often
        # enough that a short idle limit never ends a session in use.
        touch_every = min(TOUCH_SECONDS, settings.PORTAL_SESSION_IDLE_MINUTES * 60 / 4)
        touched = "portal_last_seen" in session and now - last_seen < touch_every
        if not touched and not request.path.endswith(BACKGROUND_PATH_SUFFIX):
            session["portal_last_seen"] = now
        return ""


def start_session_clocks(sender: object, request: HttpRequest, user: object, **kwargs: object) -> None:
    """Both limits count from the log-in itself (django.contrib.auth's user_logged_in), not from
    the first page after it: a session never used is ended by the idle limit like any other."""
    now = time.time()
    request.session["portal_began"] = now
    request.session["portal_last_seen"] = now
