"""Recognising an AWS call (service, operation, protocol) and counting calls per operation."""

import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

Protocol = Literal["json", "query", "rest-json", "rest"]

# SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/workspaces/aws4_request, ..."
# https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")

# For an unsigned JSON call the X-Amz-Target prefix is all there is to go on.
_TARGET_PREFIX_SERVICES = {"WorkspacesService": "workspaces"}

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AwsCall:
    service: str  # the SigV4 signing name, e.g. "workspaces", "ec2", "sts"
    # e.g. "ImportWorkspaceImage"; "<service>:<METHOD>" for REST services other than Image Builder
    operation: str
    protocol: Protocol
    region: str
    access_key: str | None


def _credential_scope(environ: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        return None, None, None
    access_key, region, service = match.groups()
    return access_key, region, service.lower()


def _query_action(environ: dict[str, Any], body: bytes) -> str | None:
    """The ``Action`` of a query-protocol call (EC2, STS): in the form body, or the URL for GET."""
    params = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        params.update(parse_qs(body.decode("utf-8", errors="replace")))
    actions = params.get("Action")
    return actions[0] if actions else None


# Image Builder (rest-json) names each operation in its path, "/GetImage", except the tag
# operations on "/tags/{resourceArn}", told apart by method (botocore's imagebuilder model).
_IMAGE_BUILDER_TAG_OPERATIONS = {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}
_OPERATION_SEGMENT = re.compile(r"^[A-Z][A-Za-z]+$")


def _image_builder_operation(environ: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    segment = environ.get("PATH_INFO", "").strip("/").split("/", 1)[0]
    if segment == "tags":
        return _IMAGE_BUILDER_TAG_OPERATIONS.get(method, f"imagebuilder:{method}")
    return segment if _OPERATION_SEGMENT.match(segment) else f"imagebuilder:{method}"


def identify_call(environ: dict[str, Any], body: bytes) -> AwsCall:
    access_key, region, service = _credential_scope(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target and "." in target:
        prefix, operation = target.rsplit(".", 1)
        service = service or _TARGET_PREFIX_SERVICES.get(prefix, prefix.lower())
        return AwsCall(service, operation, "json", region or DEFAULT_REGION, access_key)
    service = service or "unknown"
    if service == "imagebuilder":
        return AwsCall(service, _image_builder_operation(environ), "rest-json", region or DEFAULT_REGION, access_key)
    action = _query_action(environ, body)
    if action:
        return AwsCall(service, action, "query", region or DEFAULT_REGION, access_key)
    # REST services (S3 and the like) name the operation by method and path; the method is
    # enough to tell reads from writes in a benchmark without modelling each service's routes.
    operation = f"{service}:{environ.get('REQUEST_METHOD', 'GET')}"
    return AwsCall(service, operation, "rest", region or DEFAULT_REGION, access_key)


class CallCounter:
    """Calls received per (service, operation), safe to update from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, call: AwsCall) -> None:
        with self._lock:
            self._counts[(call.service, call.operation)] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def by_operation(self) -> dict[str, int]:
        """``{"ImportWorkspaceImage": 3, ...}``; an operation name two services share is summed."""
        totals: Counter[str] = Counter()
        with self._lock:
            for (_service, operation), count in self._counts.items():
                totals[operation] += count
        return dict(sorted(totals.items()))

    def by_service(self) -> dict[str, dict[str, int]]:
        """``{"workspaces": {"DescribeTags": 1}, "ec2": {"DescribeTags": 2}}``."""
        nested: dict[str, dict[str, int]] = {}
        with self._lock:
            for (service, operation), count in sorted(self._counts.items()):
                nested.setdefault(service, {})[operation] = count
        return nested
