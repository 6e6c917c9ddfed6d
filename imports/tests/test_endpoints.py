"""A target's endpoint URL cannot turn the portal's signed AWS requests against its own network,
and an endpoint that answers garbage gets a clear message, never an error page."""

import http.server
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from imports import aws, endpoints
from imports.models import AwsTarget


@pytest.fixture
def production(settings: Any) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = False
    settings.PORTAL_ENDPOINT_HOSTS = ["vpce-0abc.workspaces.internal.example.com", ".vpce.example.org"]


@pytest.mark.parametrize(
    "url",
    [
        "https://workspaces.eu-west-1.amazonaws.com",
        "https://ec2.cn-north-1.amazonaws.com.cn",
        "https://workspaces.eu-west-1.api.aws",
        "https://vpce-0abc.workspaces.internal.example.com",
        "https://ws.vpce.example.org:8443/",
    ],
)
def test_aws_hosts_and_listed_hosts_over_https_are_allowed(production: None, url: str) -> None:
    assert endpoints.endpoint_problem(url) == ""


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://169.254.169.254/latest/meta-data/", endpoints.MSG_SCHEME),
        ("https://169.254.169.254/", endpoints.MSG_HOST.format(host="169.254.169.254")),
        ("https://10.0.0.1/", endpoints.MSG_HOST.format(host="10.0.0.1")),
        ("https://user:pw@workspaces.eu-west-1.amazonaws.com/", endpoints.MSG_USERINFO),
        ("https://evil.amazonaws.com.attacker.net/", endpoints.MSG_HOST.format(host="evil.amazonaws.com.attacker.net")),
        ("https://127.0.0.1:5055", endpoints.MSG_HOST.format(host="127.0.0.1")),
        ("ftp://workspaces.eu-west-1.amazonaws.com", endpoints.MSG_NOT_A_URL),
        ("https://workspaces.eu-west-1.amazonaws.com:port", endpoints.MSG_NOT_A_URL),
    ],
)
def test_other_endpoints_are_refused_with_what_to_change(production: None, url: str, problem: str) -> None:
    assert endpoints.endpoint_problem(url) == problem


def test_a_target_with_a_refused_endpoint_does_not_validate(production: None, db: None) -> None:
    target = AwsTarget(
        name="Metadata", account_id="123456789012", region="us-east-1", endpoint_url="http://169.254.169.254/"
    )

    with pytest.raises(ValidationError) as refused:
        target.full_clean()

    assert refused.value.message_dict["endpoint_url"] == [endpoints.MSG_SCHEME]


def test_development_allows_the_local_sandbox_over_http(settings: Any) -> None:
    settings.PORTAL_ALLOW_HTTP_ENDPOINTS = True
    settings.PORTAL_ENDPOINT_HOSTS = ["127.0.0.1", "localhost"]

    assert endpoints.endpoint_problem("http://127.0.0.1:5055") == ""
    assert endpoints.endpoint_problem("http://10.0.0.1:5055") == endpoints.MSG_HOST.format(host="10.0.0.1")


def test_no_request_leaves_for_a_refused_endpoint_even_one_stored_before_the_rules(production: None) -> None:
    stored = SimpleNamespace(
        account_id="123456789012",
        region="us-east-1",
        credentials="default",
        role_arn="",
        external_id="",
        endpoint_url="http://169.254.169.254/",
    )

    with pytest.raises(aws.EndpointRefused) as refused:
        aws.list_windows_amis(stored)

    assert refused.value.message == aws.MSG_ENDPOINT_REFUSED.format(problem=endpoints.MSG_SCHEME)


class GarbageHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = b"upstream connect error or disconnect/reset before headers <"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def garbage_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GarbageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_answers_garbage_gets_a_clear_message_not_an_error_page(
    garbage_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    aws.forget_clients()
    target = SimpleNamespace(
        account_id="123456789012",
        region="us-east-1",
        credentials="default",
        role_arn="",
        external_id="",
        endpoint_url=garbage_endpoint,
    )

    with pytest.raises(aws.AwsError) as garbled:
        aws.list_windows_amis(target)

    assert isinstance(garbled.value, aws.Garbled)
    assert garbled.value.message == aws.MSG_GARBLED
    assert garbled.value.retryable
    aws.forget_clients()
