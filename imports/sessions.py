"""The portal's session engine (SESSION_ENGINE): Django's database sessions, with the session's
row read by SQL compiled once per process (imports.compiled), not once per request."""

import logging

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from imports import compiled


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        # As Django's own (sessions.backends.db), with the compiled read.
        try:
            return compiled.live_session(self.session_key, timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation) as e:
            if isinstance(e, SuspiciousOperation):
                logging.getLogger(f"django.security.{e.__class__.__name__}").warning(str(e))
            self._session_key = None
            return None
