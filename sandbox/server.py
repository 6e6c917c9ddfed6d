"""The sandbox server: moto's WSGI app behind a thin layer that counts, injects faults,
answers the operations moto lacks (WorkSpaces imports, Image Builder's lookups, EC2's
DescribeImportImageTasks) and serves ``/_sandbox/`` control endpoints.

Every AWS service goes through one endpoint URL. moto's ``DomainDispatcherApplication`` picks
the backend from the service in the SigV4 credential scope (``.../us-east-1/sts/aws4_request``),
so STS, EC2, WorkSpaces and Image Builder clients can all share ``endpoint_url``; the sandbox
reads the same scope to answer before moto. Faults and counting come first, so they apply to
every call, the sandbox's own answers included, each fault in the protocol's own error format.
"""

import contextlib
import io
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from moto.iam.models import get_account_id_from
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from . import image_builder, vm_import
from .calls import AwsCall, identify_call
from .control import CONTROL_PREFIX, control_reply
from .operations import HANDLED_OPERATIONS, answer
from .seed import seed_audit_bucket, seed_images
from .state import SandboxState
from .workspaces import WorkSpacesError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5055
DEFAULT_IMPORT_DELAY = 60.0

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        # A chunked body has no Content-Length; werkzeug marks its stream as safe to read to the end.
        body = stream.read()
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _caller_account(environ: dict[str, Any], call: AwsCall) -> str:
    """The account moto would act for, by moto's own precedence (see BaseResponse.get_current_account)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return str(environ["HTTP_X_MOTO_ACCOUNT_ID"])
    # An access key moto issued (STS AssumeRole, IAM) maps to its account; any other to the default.
    return get_account_id_from(call.access_key or "")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    500: "Internal Server Error",
    501: "Not Implemented",
}
REST_JSON_CONTENT_TYPE = "application/json"
# What AWS's common errors say of InternalFailure.
_INTERNAL_FAILURE_MESSAGE = "The request processing has failed because of an unknown error, exception or failure."


def _json_reply(start_response: StartResponse, status: int, payload: Any, headers: Headers) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _ec2_throttling_xml(request_id: str) -> str:
    # EC2 throttles with its own error envelope and code RequestLimitExceeded
    # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/throttling.html), sent with
    # HTTP 503, as SDK logs show ("Status Code: 503; Error Code: RequestLimitExceeded").
    return (
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        "<Message>Request limit exceeded.</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    )


def _query_throttling_xml(request_id: str) -> str:
    # The query-protocol envelope STS (and IAM, SNS, ...) use; code Throttling, status 400.
    return (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        f"<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )


def _ec2_internal_error_xml(request_id: str) -> str:
    # https://docs.aws.amazon.com/ec2/latest/devguide/errors-overview.html#api-error-codes-table-server
    return (
        "<Response><Errors><Error><Code>InternalError</Code>"
        "<Message>An internal error has occurred.</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    )


def _query_internal_failure_xml(request_id: str) -> str:
    # https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html: InternalFailure, 500;
    # Type Receiver because the fault is on AWS's side, not the caller's.
    return (
        "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
        f"<Message>{_INTERNAL_FAILURE_MESSAGE}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )


def _xml_reply(start_response: StartResponse, status: str, xml: str) -> list[bytes]:
    body = ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _rest_json_error(start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
    # rest-json: the code in x-amzn-ErrorType (botocore reads it from there first), the message in the body.
    headers = [
        ("Content-Type", REST_JSON_CONTENT_TYPE),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("x-amzn-ErrorType", code),
    ]
    return _json_reply(start_response, status, {"message": message}, headers)


def _throttled_reply(start_response: StartResponse, call: AwsCall) -> list[bytes]:
    request_id = str(uuid.uuid4())
    if call.protocol == "rest-json":
        # Image Builder's model has no ThrottlingException shape; its API reference's Common Errors
        # (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/CommonErrors.html), shared by
        # every service, give ThrottlingException with 400, which botocore retries as a throttle.
        return _rest_json_error(start_response, 400, "ThrottlingException", "Rate exceeded")
    if call.protocol == "json":
        # https://docs.aws.amazon.com/workspaces/latest/api/CommonErrors.html: ThrottlingException, 400
        headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
        payload = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return _json_reply(start_response, 400, payload, headers)
    if call.service == "ec2":
        return _xml_reply(start_response, "503 Service Unavailable", _ec2_throttling_xml(request_id))
    return _xml_reply(start_response, "400 Bad Request", _query_throttling_xml(request_id))


def _server_error_reply(start_response: StartResponse, call: AwsCall) -> list[bytes]:
    request_id = str(uuid.uuid4())
    if call.protocol == "rest-json":
        # The model's ServiceException (500), which every Image Builder operation lists.
        message = "An internal server error occurred while Image Builder processed the request."
        return _rest_json_error(start_response, 500, "ServiceException", message)
    if call.protocol == "json":
        # https://docs.aws.amazon.com/workspaces/latest/api/CommonErrors.html: InternalFailure, 500
        headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
        payload = {"__type": "InternalFailure", "message": _INTERNAL_FAILURE_MESSAGE}
        return _json_reply(start_response, 500, payload, headers)
    if call.service == "ec2":
        return _xml_reply(start_response, "500 Internal Server Error", _ec2_internal_error_xml(request_id))
    return _xml_reply(start_response, "500 Internal Server Error", _query_internal_failure_xml(request_id))


class _DroppedOnPurpose(ConnectionAbortedError):
    """The ``down`` fault closed this call's connection.

    werkzeug's request handler takes a ConnectionError out of the app for a client that went
    away: it ends the request without a response or a traceback, and the server serves on.
    """


def _drop_connection(environ: dict[str, Any]) -> NoReturn:
    # werkzeug's server hands the app the client's socket. The body is already read, so the
    # shutdown sends a plain FIN where the client waits for a status line, as a dropped
    # connection to AWS would. A client that gave up during a latency fault is gone already.
    with contextlib.suppress(OSError):
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
    raise _DroppedOnPurpose("the down fault dropped this call without an answer")


class SandboxApp:
    """WSGI app: ``/_sandbox/`` control, then per AWS call: count, fault, answer or pass to moto."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.moto_app = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api"):
            return self.moto_app(environ, start_response)
        body = _read_body(environ)
        call = identify_call(environ, body)
        self.state.calls.record(call)
        decision = self.state.faults.decide(call.operation)
        if decision.latency_seconds:
            time.sleep(decision.latency_seconds)
        if decision.drop:
            _drop_connection(environ)
        if decision.throttle:
            return _throttled_reply(start_response, call)
        if decision.server_error:
            return _server_error_reply(start_response, call)
        if call.service == "workspaces" and call.operation in HANDLED_OPERATIONS:
            return self._workspaces(environ, start_response, call, body)
        if call.service == "imagebuilder":
            # moto has no Image Builder at all: every call is answered here, if only to refuse it.
            return self._image_builder(environ, start_response, call, body)
        if call.service == "ec2" and call.operation in vm_import.HANDLED_OPERATIONS:
            return self._vm_import(environ, start_response, body)
        return self.moto_app(environ, start_response)

    def _control(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> list[bytes]:
        status, payload = control_reply(
            self.state,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            query_string=environ.get("QUERY_STRING", ""),
            body=_read_body(environ),
        )
        return _json_reply(start_response, status, payload, [("Content-Type", "application/json")])

    def _workspaces(
        self, environ: dict[str, Any], start_response: StartResponse, call: AwsCall, body: bytes
    ) -> list[bytes]:
        headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
        try:
            result = answer(
                call.operation,
                body,
                account_id=_caller_account(environ, call),
                region=call.region,
                settings=self.state.import_settings(),
            )
        except WorkSpacesError as error:
            payload = {"__type": error.code, "message": error.message, **error.extra}
            return _json_reply(start_response, error.status, payload, [*headers, ("x-amzn-ErrorType", error.code)])
        return _json_reply(start_response, 200, result, headers)

    def _image_builder(
        self, environ: dict[str, Any], start_response: StartResponse, call: AwsCall, body: bytes
    ) -> list[bytes]:
        request = image_builder.ImageBuilderRequest(
            operation=call.operation,
            query_string=environ.get("QUERY_STRING", ""),
            body=body,
            account_id=_caller_account(environ, call),
            region=call.region,
        )
        try:
            result = image_builder.answer(request, method=environ.get("REQUEST_METHOD", "GET"))
        except image_builder.ImageBuilderError as error:
            return _rest_json_error(start_response, error.status, error.code, error.message)
        headers = [("Content-Type", REST_JSON_CONTENT_TYPE), ("x-amzn-RequestId", result["requestId"])]
        return _json_reply(start_response, 200, result, headers)

    def _vm_import(self, environ: dict[str, Any], start_response: StartResponse, body: bytes) -> list[bytes]:
        try:
            xml = vm_import.describe_import_image_tasks(environ.get("QUERY_STRING", ""), body)
        except vm_import.Ec2Error as error:
            status = f"{error.status} {_REASONS.get(error.status, 'Error')}"
            return _xml_reply(start_response, status, error.xml(str(uuid.uuid4())))
        return _xml_reply(start_response, "200 OK", xml)


class _QuietRequestHandler(MotoRequestHandler):
    """moto's handler (it keeps header names with underscores) without a log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for werkzeug to serve on.

    Binding here rather than in werkzeug matters: werkzeug prints "Port ... is in use" and calls
    sys.exit(1) when its own bind fails, which would end a test run or the caller's process; an
    OSError from here can be caught and explained.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(socket.SOMAXCONN)
    except OSError:
        listener.close()
        raise
    return listener


@dataclass
class SandboxHandle:
    """A sandbox running in a background thread; ``stop()`` shuts it down."""

    host: str
    port: int
    state: SandboxState
    _server: BaseWSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> "SandboxHandle":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sandbox(
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    import_delay: float = DEFAULT_IMPORT_DELAY,
    image_quota: int | None = None,
    seed: bool = True,
    log_requests: bool = False,
) -> SandboxHandle:
    """Start the sandbox on ``host:port`` (0 picks a free port) and return once it accepts calls.

    moto keeps its state per process, so two sandboxes in one process share AMIs and images;
    each has its own counters, faults and settings.
    """
    state = SandboxState(import_delay=import_delay, image_quota=image_quota)
    if seed:
        seed_images()
        seed_audit_bucket()
    handler = MotoRequestHandler if log_requests else _QuietRequestHandler
    # Bound before the thread starts, so the port is known and accepting when this returns.
    with _listening_socket(host, port) as listener:
        server = make_server(
            host, port, SandboxApp(state), threaded=True, request_handler=handler, fd=listener.fileno()
        )
    thread = threading.Thread(target=server.serve_forever, name=f"aws-sandbox-{server.port}", daemon=True)
    thread.start()
    return SandboxHandle(host=host, port=server.port, state=state, _server=server, _thread=thread)
