"""Plain-HTTP control endpoints under ``/_sandbox/`` for tests, benchmarks and people.

Not AWS-signed and not counted as AWS calls. Every answer is JSON; a refused request gets
``{"error": "<what to change>"}`` with status 400, 404 or 405.
"""

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from .faults import InvalidFaults
from .seed import seed_audit_bucket, seed_images
from .state import InvalidConfig, SandboxState
from .workspaces import imported_images

CONTROL_PREFIX = "/_sandbox/"

Reply = tuple[int, Any]


class BadRequest(ValueError):
    """The control request is wrong; the message is sent back with status 400."""


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from error


def _health(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    return 200, {"status": "ok", **state.config()}


def _calls(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    if query.get("by") == ["service"]:
        return 200, state.calls.by_service()
    return 200, state.calls.by_operation()


def _get_faults(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    return 200, state.faults.faults.as_json()


def _set_faults(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    try:
        return 200, state.faults.update(_json_body(body)).as_json()
    except InvalidFaults as error:
        raise BadRequest(str(error)) from error


def _reset(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    state.reset()
    return 200, {"calls": state.calls.by_operation(), "faults": state.faults.faults.as_json()}


def _images(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    return 200, {"Images": [image.summary() for image in imported_images()]}


def _get_config(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    return 200, state.config()


def _set_config(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    try:
        return 200, state.update_config(_json_body(body))
    except InvalidConfig as error:
        raise BadRequest(str(error)) from error


def _seed(state: SandboxState, query: dict[str, list[str]], body: bytes) -> Reply:
    # For after moto's /moto-api/reset, which wipes the seeded AMIs and bucket with everything else.
    return 200, {"ImageIds": seed_images(), "AuditBucket": seed_audit_bucket()}


ROUTES: dict[tuple[str, str], Callable[[SandboxState, dict[str, list[str]], bytes], Reply]] = {
    ("GET", "health"): _health,
    ("GET", "calls"): _calls,
    ("GET", "faults"): _get_faults,
    ("POST", "faults"): _set_faults,
    ("POST", "reset"): _reset,
    ("GET", "images"): _images,
    ("GET", "config"): _get_config,
    ("POST", "config"): _set_config,
    ("POST", "seed"): _seed,
}


def control_reply(state: SandboxState, *, method: str, path: str, query_string: str, body: bytes) -> Reply:
    name = path.removeprefix(CONTROL_PREFIX).strip("/")
    handler = ROUTES.get((method, name))
    if handler is None:
        allowed = sorted(route_method for route_method, route_name in ROUTES if route_name == name)
        if allowed:
            return 405, {"error": f"{path} accepts {', '.join(allowed)}, not {method}"}
        return 404, {"error": f"no control endpoint {path}; known: {sorted({n for _, n in ROUTES})}"}
    try:
        return handler(state, parse_qs(query_string), body)
    except BadRequest as error:
        return 400, {"error": str(error)}
