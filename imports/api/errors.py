"""Every API error in one JSON shape, with its status:

    {"error": {"code": "invalid", "message": "...", "fields": {"image_name": ["..."]}}}

`code` is stable (clients branch on it), `message` is for a person, `fields` (only for invalid
input) names each field with its messages, as the pages show them beside the field. Nothing
else escapes: an unexpected exception is logged and answered with a plain 500, never a trace.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from imports import workflow

logger = logging.getLogger(__name__)

MSG_INVALID = "Some fields need a change: see the messages for each field."
MSG_NOT_FOUND = "Not found: it does not exist, or you may not see it."
MSG_SERVER_ERROR = "Something went wrong on the portal's side; nothing was changed. Try again later."

# DRF's own exceptions, by class: the code clients see.
CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "parse_error",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class InvalidInput(exceptions.APIException):
    """Input the form (or the API's own checks) refused: one list of messages per field."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(MSG_INVALID)
        self.fields = fields


def error_response(code: str, message: str, status_code: int, **extra: Any) -> Response:
    return Response({"error": {"code": code, "message": message, **extra}}, status=status_code)


def _workflow_error(exc: workflow.WorkflowError) -> Response:
    if isinstance(exc, workflow.NotFound):
        return error_response("not_found", MSG_NOT_FOUND, status.HTTP_404_NOT_FOUND)
    if isinstance(exc, workflow.NotAllowed):
        return error_response("permission_denied", exc.message, status.HTTP_403_FORBIDDEN)
    if isinstance(exc, workflow.NameTaken):
        return error_response("invalid", MSG_INVALID, 400, fields={"image_name": [exc.message]})
    if exc.message == workflow.MSG_COMMENT_REQUIRED:
        return error_response("invalid", MSG_INVALID, 400, fields={"comment": [exc.message]})
    # Someone else changed the request first (Conflict), or its state does not allow it yet.
    code = "conflict" if isinstance(exc, workflow.Conflict) else "not_possible_now"
    return error_response(code, exc.message, status.HTTP_409_CONFLICT)


def _field_messages(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as flat `field` / `field[0].key` names and their messages."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for name, inner in detail.items():
            field = "non_field_errors" if name == "non_field_errors" and not prefix else f"{prefix}{name}"
            flat |= _field_messages(inner, f"{field}.")
        return flat
    if isinstance(detail, list) and detail and not all(isinstance(item, str) for item in detail):
        flat = {}
        for index, inner in enumerate(detail):
            flat |= _field_messages(inner, f"{prefix[:-1]}[{index}].")
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix[:-1] or "non_field_errors": [str(message) for message in messages]} if messages else {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """REST_FRAMEWORK's EXCEPTION_HANDLER."""
    if isinstance(exc, workflow.WorkflowError):
        return _workflow_error(exc)
    if isinstance(exc, InvalidInput):
        return error_response("invalid", MSG_INVALID, 400, fields=exc.fields)
    if isinstance(exc, exceptions.ValidationError):
        return error_response("invalid", MSG_INVALID, 400, fields=_field_messages(exc.detail))
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response("not_found", MSG_NOT_FOUND, status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        return error_response("permission_denied", str(exc) or workflow.MSG_NOT_ALLOWED, 403)
    if isinstance(exc, exceptions.APIException):
        response = error_response(CODES.get(type(exc), exc.default_code), str(exc.detail), exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait) + 1)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        return response
    logger.exception("API call %s failed", context.get("request") and context["request"].path)
    return error_response("server_error", MSG_SERVER_ERROR, status.HTTP_500_INTERNAL_SERVER_ERROR)
