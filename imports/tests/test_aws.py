"""imports.aws: exact AWS request and response shapes with botocore's Stubber, and what only a
real HTTP exchange shows (retries, the rate limiter hook, assumed roles) against the sandbox.

No database: a target is any object with the attributes aws.Target names.

The Stubber answers at ``before-call``, before botocore's retry loop and before ``before-send``
is emitted, so a stubbed client never retries and never reaches the rate limiter hook: tests of
those two behaviours run against the sandbox instead.
"""

import json
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.stub import Stubber

from imports import aws
from sandbox import SandboxHandle, start_sandbox

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/Importer"
IDENTITY = "IMP-000001"
PORTAL_TAGS = {"reference": "IMP-000042", "requester": "rita", "approver": "anna"}


def make_target(**overrides: str) -> SimpleNamespace:
    fields = {
        "account_id": ACCOUNT_ID,
        "region": REGION,
        "credentials": "default",
        "role_arn": "",
        "external_id": "",
        "endpoint_url": "",
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.fixture(autouse=True)
def _credentials_and_fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # The app installs its database-backed limiter at start-up; these tests use no database.
    # monkeypatch puts that limiter back afterwards, whatever a test passed to use_rate_limiter.
    monkeypatch.setattr(aws, "_rate_limiter", None)
    aws.forget_clients()
    yield
    aws.forget_clients()


@contextmanager
def stubbed(target: SimpleNamespace, service: str, **client_args: Any) -> Iterator[Stubber]:
    """A Stubber on the very client aws.py caches for these arguments; every queued answer must be used."""
    with Stubber(aws.client(target, service, **client_args)) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- errors: AWS error codes -----------------------------------------------------------------

REFUSALS = [
    ("AccessDeniedException", aws.AccessDenied, aws.MSG_ACCESS_DENIED, False),
    ("AccessDenied", aws.AccessDenied, aws.MSG_ACCESS_DENIED, False),
    ("UnauthorizedOperation", aws.AccessDenied, aws.MSG_ACCESS_DENIED, False),
    ("InvalidParameterValuesException", aws.InvalidParameters, aws.MSG_INVALID_PARAMETERS, False),
    ("ValidationException", aws.InvalidParameters, aws.MSG_INVALID_PARAMETERS, False),
    ("ResourceNotFoundException", aws.ResourceNotFound, aws.MSG_RESOURCE_NOT_FOUND, False),
    ("OperationNotSupportedException", aws.NotSupported, aws.MSG_NOT_SUPPORTED, False),
    ("ResourceAlreadyExistsException", aws.AlreadyExists, aws.MSG_ALREADY_EXISTS, False),
    ("ResourceAssociatedException", aws.ImageInUse, aws.MSG_IMAGE_IN_USE, False),
    ("InvalidResourceStateException", aws.InvalidState, aws.MSG_INVALID_STATE, False),
    ("ResourceLimitExceededException", aws.LimitExceeded, aws.MSG_LIMIT_EXCEEDED, True),
    ("ResourceUnavailableException", aws.Unavailable, aws.MSG_UNAVAILABLE, True),
]
THROTTLING_CODES = [
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
]


def test_every_mapped_aws_code_has_a_test_below() -> None:
    assert {code for code, *_ in REFUSALS} == set(aws._BY_CODE)
    assert set(THROTTLING_CODES) == aws.THROTTLING_CODES


@pytest.mark.parametrize(("code", "error_class", "message", "retryable"), REFUSALS)
def test_known_aws_error_code_becomes_its_domain_error_and_keeps_the_aws_details(
    code: str, error_class: type[aws.AwsError], message: str, retryable: bool
) -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_client_error(
            "describe_workspace_images",
            service_error_code=code,
            service_message=f"AWS says {code}",
            http_status_code=400,
            response_meta={"RequestId": "req-1"},
            expected_params={"ImageIds": ["wsi-123456789"]},
        )
        with pytest.raises(aws.AwsError) as raised:
            aws.describe_images(target, ["wsi-123456789"])

    assert type(raised.value) is error_class
    assert raised.value.message == message
    assert str(raised.value) == message
    assert raised.value.retryable is retryable
    assert raised.value.as_record() == {
        "kind": error_class.__name__,
        "message": message,
        "code": code,
        "aws_message": f"AWS says {code}",
        "aws_request_id": "req-1",
    }


@pytest.mark.parametrize("code", THROTTLING_CODES)
def test_throttling_code_becomes_a_retryable_throttled_error(code: str) -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_client_error(
            "describe_workspace_images",
            service_error_code=code,
            service_message="Rate exceeded",
            http_status_code=503 if code == "RequestLimitExceeded" else 400,
            response_meta={"RequestId": "req-1"},
        )
        with pytest.raises(aws.Throttled) as raised:
            aws.describe_images(target, ["wsi-123456789"])

    assert raised.value.message == aws.MSG_THROTTLED
    assert raised.value.retryable is True
    assert (raised.value.code, raised.value.aws_message, raised.value.request_id) == (code, "Rate exceeded", "req-1")


@pytest.mark.parametrize(("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable"), (500, "")])
def test_unknown_code_with_a_5xx_status_becomes_a_retryable_server_error(status: int, code: str) -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_client_error(
            "describe_workspace_images",
            service_error_code=code,
            service_message="We encountered an internal error.",
            http_status_code=status,
            response_meta={"RequestId": "req-1"},
        )
        with pytest.raises(aws.ServerError) as raised:
            aws.describe_images(target, ["wsi-123456789"])

    assert raised.value.message == aws.MSG_SERVER_ERROR
    assert raised.value.retryable is True
    assert raised.value.as_record()["code"] == code
    assert raised.value.as_record()["aws_request_id"] == "req-1"


@pytest.mark.parametrize(("code", "shown"), [("BrandNewException", "BrandNewException"), ("", "no code")])
def test_unknown_code_with_a_4xx_status_becomes_an_unknown_error_naming_the_code(code: str, shown: str) -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_client_error(
            "describe_workspace_images",
            service_error_code=code,
            service_message="Something new",
            http_status_code=400,
            response_meta={"RequestId": "req-1"},
        )
        with pytest.raises(aws.UnknownAwsError) as raised:
            aws.describe_images(target, ["wsi-123456789"])

    assert raised.value.message == aws.MSG_UNKNOWN.format(code=shown)
    assert f"({shown})" in raised.value.message
    assert raised.value.retryable is False
    assert raised.value.as_record() == {
        "kind": "UnknownAwsError",
        "message": aws.MSG_UNKNOWN.format(code=shown),
        "code": code,
        "aws_message": "Something new",
        "aws_request_id": "req-1",
    }


# --- errors: no answer, no credentials -------------------------------------------------------

URL = "https://workspaces.us-east-1.amazonaws.com/"


@pytest.mark.parametrize(
    ("exc", "maybe_sent", "detail"),
    [
        (EndpointConnectionError(endpoint_url=URL), False, "no connection"),
        (ConnectTimeoutError(endpoint_url=URL), False, "no connection"),
        (ReadTimeoutError(endpoint_url=URL), True, "no answer in time"),
        (ConnectionClosedError(endpoint_url=URL), True, "no answer in time"),
    ],
)
def test_network_failure_becomes_a_network_error_that_says_whether_the_request_may_have_been_sent(
    exc: Exception, maybe_sent: bool, detail: str
) -> None:
    error = aws.translate(exc)

    assert type(error) is aws.NetworkError
    assert error.maybe_sent is maybe_sent
    assert error.message == aws.MSG_NETWORK.format(detail=detail)
    assert error.retryable is True
    assert error.as_record() == {
        "kind": "NetworkError",
        "message": aws.MSG_NETWORK.format(detail=detail),
        "code": "",
        "aws_message": str(exc),
        "aws_request_id": "",
    }


def test_proxy_that_refuses_the_connection_becomes_a_network_error_not_sent() -> None:
    error = aws.translate(ProxyConnectionError(proxy_url="http://proxy.internal:3128", error="Connection refused"))

    assert type(error) is aws.NetworkError
    assert error.maybe_sent is False
    assert error.message == aws.MSG_NETWORK.format(detail="no connection")


def test_a_parameter_botocore_refuses_before_sending_is_invalid_parameters() -> None:
    error = aws.translate(ParamValidationError(report="Missing required parameter ImageDescription"))

    assert type(error) is aws.InvalidParameters
    assert error.message == aws.MSG_INVALID_PARAMETERS
    assert "ImageDescription" in error.aws_message
    assert error.retryable is False


@pytest.mark.parametrize(
    "code",
    ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch"],
)
def test_credentials_aws_does_not_accept_are_access_denied_with_a_credentials_message(code: str) -> None:
    error = aws.translate(
        ClientError({"Error": {"Code": code, "Message": "nope"}, "ResponseMetadata": {"RequestId": "r-9"}}, "Op")
    )

    assert type(error) is aws.AccessDenied
    assert error.message == aws.MSG_BAD_CREDENTIALS
    assert (error.code, error.request_id) == (code, "r-9")


def test_a_failed_tls_handshake_is_a_network_error_before_anything_was_sent() -> None:
    error = aws.translate(SSLError(endpoint_url="https://workspaces.us-east-1.amazonaws.com", error="bad handshake"))

    assert type(error) is aws.NetworkError
    assert error.maybe_sent is False


def test_missing_credentials_become_access_denied_with_the_no_credentials_message() -> None:
    error = aws.translate(NoCredentialsError())

    assert type(error) is aws.AccessDenied
    assert error.message == aws.MSG_NO_CREDENTIALS
    assert error.retryable is False
    assert (error.code, error.aws_message) == ("NoCredentials", str(NoCredentialsError()))


def test_import_to_an_endpoint_that_refuses_connections_raises_a_network_error_not_sent() -> None:
    target = make_target(endpoint_url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(aws.NetworkError) as raised:
        aws.import_image(target, parameters=import_parameters(), identity=IDENTITY)

    assert raised.value.maybe_sent is False
    assert raised.value.message == aws.MSG_NETWORK.format(detail="no connection")


def test_import_without_any_credentials_raises_access_denied_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    target = make_target(endpoint_url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(aws.AccessDenied) as raised:
        aws.import_image(target, parameters=import_parameters(), identity=IDENTITY)

    assert raised.value.message == aws.MSG_NO_CREDENTIALS
    assert raised.value.code == "NoCredentials"


def test_an_exception_botocore_does_not_name_becomes_an_unknown_error_naming_its_type() -> None:
    error = aws.translate(ValueError("odd"))

    assert type(error) is aws.UnknownAwsError
    assert error.message == aws.MSG_UNKNOWN.format(code="ValueError")
    assert error.aws_message == "odd"


# --- ImportWorkspaceImage --------------------------------------------------------------------


def import_parameters(**overrides: Any) -> dict[str, Any]:
    parameters = {
        "Ec2ImageId": "ami-05eed000000000001",
        "IngestionProcess": "BYOL_REGULAR_WSP",
        "ImageName": "win10-finance-2026",
        "ImageDescription": "Windows 10 22H2 for the finance team",
        "Tags": [{"Key": "CostCenter", "Value": "4711"}],
        "Applications": ["Microsoft_Office_2019"],
    }
    parameters.update(overrides)
    return parameters


EXPECTED_PORTAL_TAGS = [
    {"Key": "byol-portal:request", "Value": "IMP-000042"},
    {"Key": "byol-portal:requested-by", "Value": "rita"},
    {"Key": "byol-portal:approved-by", "Value": "anna"},
]


def test_import_sends_the_request_parameters_with_user_tags_then_the_three_portal_tags() -> None:
    target = make_target()
    parameters = import_parameters(Tags=[{"Key": "CostCenter", "Value": "4711"}, {"Key": "Team", "Value": "fin"}])
    expected = {
        "Ec2ImageId": "ami-05eed000000000001",
        "IngestionProcess": "BYOL_REGULAR_WSP",
        "ImageName": "win10-finance-2026",
        "ImageDescription": "Windows 10 22H2 for the finance team",
        "Tags": [{"Key": "CostCenter", "Value": "4711"}, {"Key": "Team", "Value": "fin"}, *EXPECTED_PORTAL_TAGS],
        "Applications": ["Microsoft_Office_2019"],
    }

    with stubbed(target, "workspaces", identity=IDENTITY, attempts=1, paced=False) as stubber:
        stubber.add_response(
            "import_workspace_image",
            {"ImageId": "wsi-123456789", "ResponseMetadata": {"RequestId": "req-9"}},
            expected,
        )
        result = aws.import_image(target, parameters=aws.with_portal_tags(parameters, **PORTAL_TAGS), identity=IDENTITY)

    assert result == aws.ImportResult(image_id="wsi-123456789", request_id="req-9")
    assert parameters["Tags"] == [{"Key": "CostCenter", "Value": "4711"}, {"Key": "Team", "Value": "fin"}]


def test_user_tag_with_a_portal_key_is_replaced_by_the_portal_tag_not_duplicated() -> None:
    forged = [
        {"Key": "byol-portal:approved-by", "Value": "mallory"},
        {"Key": "CostCenter", "Value": "4711"},
        {"Key": "byol-portal:request", "Value": "IMP-999999"},
    ]

    sent = aws.with_portal_tags(import_parameters(Tags=forged), **PORTAL_TAGS)

    assert sent["Tags"] == [{"Key": "CostCenter", "Value": "4711"}, *EXPECTED_PORTAL_TAGS]
    assert {key: value for key, value in sent.items() if key != "Tags"} == {
        key: value for key, value in import_parameters().items() if key != "Tags"
    }


def test_import_of_a_request_without_tags_sends_only_the_portal_tags() -> None:
    target = make_target()
    parameters = import_parameters()
    del parameters["Tags"], parameters["Applications"]
    expected = {**parameters, "Tags": EXPECTED_PORTAL_TAGS}

    with stubbed(target, "workspaces", identity=IDENTITY, attempts=1, paced=False) as stubber:
        stubber.add_response(
            "import_workspace_image", {"ImageId": "wsi-123456789", "ResponseMetadata": {"RequestId": "req-9"}}, expected
        )
        result = aws.import_image(target, parameters=aws.with_portal_tags(parameters, **PORTAL_TAGS), identity=IDENTITY)

    assert result.image_id == "wsi-123456789"
    assert "Tags" not in parameters


def test_throttled_import_raises_throttled_after_one_call_without_trying_again() -> None:
    target = make_target()

    with stubbed(target, "workspaces", identity=IDENTITY, attempts=1, paced=False) as stubber:
        stubber.add_client_error("import_workspace_image", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(aws.Throttled):
            aws.import_image(target, parameters=import_parameters(), identity=IDENTITY)

    # The stubber's queue is empty (checked by `stubbed`), and a second call would have raised
    # UnStubbedResponseError instead of Throttled. botocore's own retries are checked against the
    # sandbox below: a Stubber answers before the retry loop.


# --- DescribeWorkspaceImages -----------------------------------------------------------------


def image(image_id: str, **fields: Any) -> dict[str, Any]:
    return {"ImageId": image_id, "Name": f"name-{image_id}", "State": "AVAILABLE", **fields}


@pytest.mark.parametrize(("count", "batch_sizes"), [(0, []), (1, [1]), (25, [25]), (26, [25, 1]), (60, [25, 25, 10])])
def test_describe_images_asks_at_most_25_ids_per_call_and_merges_the_answers(
    count: int, batch_sizes: list[int]
) -> None:
    target = make_target()
    ids = [f"wsi-{n:09d}" for n in range(count)]

    with stubbed(target, "workspaces") as stubber:
        start = 0
        for size in batch_sizes:
            batch = ids[start : start + size]
            stubber.add_response(
                "describe_workspace_images", {"Images": [image(i) for i in batch]}, {"ImageIds": batch}
            )
            start += size
        found = aws.describe_images(target, ids)

    assert list(found) == ids
    assert all(status.state == "AVAILABLE" and status.name == f"name-{i}" for i, status in found.items())


def test_describe_images_leaves_out_ids_aws_no_longer_knows() -> None:
    target = make_target()
    ids = [f"wsi-{n:09d}" for n in range(26)]

    with stubbed(target, "workspaces") as stubber:
        stubber.add_response("describe_workspace_images", {"Images": [image(ids[3])]}, {"ImageIds": ids[:25]})
        stubber.add_response("describe_workspace_images", {"Images": []}, {"ImageIds": ids[25:]})
        found = aws.describe_images(target, ids)

    assert list(found) == [ids[3]]


def test_describe_images_maps_state_error_code_message_and_details_into_image_status() -> None:
    target = make_target()
    created = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    failed = image(
        "wsi-000000002",
        State="ERROR",
        Created=created,
        ErrorCode="ValidationFailed",
        ErrorMessage="The image failed BYOL validation (2 checks): see ErrorDetails.",
        ErrorDetails=[
            {"ErrorCode": "OfficeInstalled", "ErrorMessage": "Microsoft Office is installed on the image."},
            {"ErrorCode": "DiskSizeExceeded", "ErrorMessage": "The root volume is larger than 70 GB."},
        ],
    )

    with stubbed(target, "workspaces") as stubber:
        stubber.add_response(
            "describe_workspace_images",
            {"Images": [image("wsi-000000001", State="PENDING", Created=created), failed]},
            {"ImageIds": ["wsi-000000001", "wsi-000000002"]},
        )
        found = aws.describe_images(target, ["wsi-000000001", "wsi-000000002"])

    assert found == {
        "wsi-000000001": aws.ImageStatus(
            image_id="wsi-000000001", name="name-wsi-000000001", state="PENDING", created="2026-10-05T09:30:00+00:00"
        ),
        "wsi-000000002": aws.ImageStatus(
            image_id="wsi-000000002",
            name="name-wsi-000000002",
            state="ERROR",
            error_code="ValidationFailed",
            error_message="The image failed BYOL validation (2 checks): see ErrorDetails.",
            error_details=[
                {"ErrorCode": "OfficeInstalled", "ErrorMessage": "Microsoft Office is installed on the image."},
                {"ErrorCode": "DiskSizeExceeded", "ErrorMessage": "The root volume is larger than 70 GB."},
            ],
            created="2026-10-05T09:30:00+00:00",
        ),
    }
    assert found["wsi-000000002"].as_record()["error_details"][1]["ErrorCode"] == "DiskSizeExceeded"


def test_describe_images_carries_updates_available_into_image_status_and_none_means_no_update() -> None:
    target = make_target()
    updates = {"UpdateAvailable": True, "Description": "Updated drivers are available."}

    with stubbed(target, "workspaces") as stubber:
        stubber.add_response(
            "describe_workspace_images",
            {
                "Images": [
                    image("wsi-000000001", State="AVAILABLE", Updates=updates),
                    image("wsi-000000002", State="AVAILABLE", Updates={"UpdateAvailable": False}),
                    image("wsi-000000003", State="PENDING"),
                ]
            },
            {"ImageIds": ["wsi-000000001", "wsi-000000002", "wsi-000000003"]},
        )
        found = aws.describe_images(target, ["wsi-000000001", "wsi-000000002", "wsi-000000003"])

    assert [(s.update_available, s.update_description) for s in found.values()] == [
        (True, "Updated drivers are available."),
        (False, ""),
        (False, ""),
    ]
    assert found["wsi-000000001"].as_record()["update_available"] is True


# --- owned images, page by page --------------------------------------------------------------

OWNED_PAGE = {"ImageType": "OWNED", "MaxResults": 25}


def stub_three_owned_pages(stubber: Stubber) -> None:
    stubber.add_response(
        "describe_workspace_images",
        {"Images": [image("wsi-00000000a"), image("wsi-00000000b")], "NextToken": "t2"},
        OWNED_PAGE,
    )
    stubber.add_response(
        "describe_workspace_images",
        {"Images": [image("wsi-00000000c")], "NextToken": "t3"},
        {**OWNED_PAGE, "NextToken": "t2"},
    )
    stubber.add_response(
        "describe_workspace_images",
        {"Images": [image("wsi-00000000d", Name="win11-last-page")]},
        {**OWNED_PAGE, "NextToken": "t3"},
    )


def test_owned_images_follows_next_token_across_every_page() -> None:
    target = make_target()

    with stubbed(target, "workspaces") as stubber:
        stub_three_owned_pages(stubber)
        owned = list(aws.owned_images(target))

    assert [status.image_id for status in owned] == ["wsi-00000000a", "wsi-00000000b", "wsi-00000000c", "wsi-00000000d"]


def test_find_owned_image_finds_a_name_on_the_last_page() -> None:
    target = make_target()

    with stubbed(target, "workspaces") as stubber:
        stub_three_owned_pages(stubber)
        found = aws.find_owned_image(target, name="win11-last-page")

    assert found is not None
    assert (found.image_id, found.name) == ("wsi-00000000d", "win11-last-page")


def test_find_owned_image_returns_none_after_reading_every_page_without_the_name() -> None:
    target = make_target()

    with stubbed(target, "workspaces") as stubber:
        stub_three_owned_pages(stubber)
        found = aws.find_owned_image(target, name="win11-nowhere")

    assert found is None


def test_owned_images_explains_an_error_on_a_later_page() -> None:
    target = make_target()

    with stubbed(target, "workspaces") as stubber:
        stubber.add_response(
            "describe_workspace_images", {"Images": [image("wsi-00000000a")], "NextToken": "t2"}, OWNED_PAGE
        )
        stubber.add_client_error("describe_workspace_images", "AccessDeniedException", "no", 400)
        with pytest.raises(aws.AccessDenied):
            aws.find_owned_image(target, name="win11-nowhere")


# --- EC2 AMIs --------------------------------------------------------------------------------


def test_list_windows_amis_asks_for_own_available_windows_amis_and_sorts_newest_first() -> None:
    target = make_target()
    expected = {
        "Owners": ["self"],
        "Filters": [{"Name": "platform", "Values": ["windows"]}, {"Name": "state", "Values": ["available"]}],
    }
    answer = {
        "Images": [
            {"ImageId": "ami-0000000000000000a", "Name": "october", "CreationDate": "2026-10-05T09:30:00.000Z"},
            {"ImageId": "ami-0000000000000000b", "Name": "november", "CreationDate": "2026-11-02T09:30:00.000Z"},
            {"ImageId": "ami-0000000000000000c", "CreationDate": "2026-09-21T09:30:00.000Z"},
        ]
    }

    with stubbed(target, "ec2") as stubber:
        stubber.add_response("describe_images", answer, expected)
        amis = aws.list_windows_amis(target)

    assert amis == [
        aws.Ami(image_id="ami-0000000000000000b", name="november", created="2026-11-02T09:30:00.000Z"),
        aws.Ami(image_id="ami-0000000000000000a", name="october", created="2026-10-05T09:30:00.000Z"),
        aws.Ami(image_id="ami-0000000000000000c", name="", created="2026-09-21T09:30:00.000Z"),
    ]


# --- assumed roles: the AssumeRole request ----------------------------------------------------


@pytest.mark.parametrize(("external_id", "sent_external_id"), [("ext-1", {"ExternalId": "ext-1"}), ("", {})])
def test_assumed_role_session_is_named_after_the_identity_and_carries_it_as_source_identity(
    monkeypatch: pytest.MonkeyPatch, external_id: str, sent_external_id: dict[str, str]
) -> None:
    target = make_target(credentials="assume_role", role_arn=ROLE_ARN, external_id=external_id)
    expected = {
        "RoleArn": ROLE_ARN,
        "RoleSessionName": IDENTITY,
        "SourceIdentity": IDENTITY,
        "DurationSeconds": 3600,
        **sent_external_id,
    }
    answer = {
        "Credentials": {
            "AccessKeyId": "ASIAASSUMEDEXAMPLE1",
            "SecretAccessKey": "assumed-secret",
            "SessionToken": "assumed-token",
            "Expiration": datetime.now(UTC) + timedelta(hours=1),
        }
    }
    stubbers: list[Stubber] = []
    real_client = boto3.Session.client

    def client_with_stubbed_sts(self: boto3.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(self, service_name, *args, **kwargs)
        if service_name == "sts":
            stubber = Stubber(made)
            stubber.add_response("assume_role", answer, expected)
            stubber.activate()
            stubbers.append(stubber)
        return made

    monkeypatch.setattr(boto3.Session, "client", client_with_stubbed_sts)
    session = aws._assumed_role_session(target, IDENTITY)
    monkeypatch.undo()
    credentials = session.get_credentials().get_frozen_credentials()

    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "ASIAASSUMEDEXAMPLE1",
        "assumed-secret",
        "assumed-token",
    )
    assert len(stubbers) == 1
    stubbers[0].assert_no_pending_responses()


# --- against the sandbox: retries, the rate limiter hook, assumed roles ----------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(port=0, import_delay=1.0)
    yield handle
    handle.stop()


def control(sandbox: SandboxHandle, method: str, name: str, payload: Any = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    # S310: the sandbox's own http://127.0.0.1 address.
    request = urllib.request.Request(f"{sandbox.url}/_sandbox/{name}", data=data, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


@pytest.fixture
def sandbox_target(sandbox: SandboxHandle) -> SimpleNamespace:
    control(sandbox, "POST", "reset")
    return make_target(endpoint_url=sandbox.url)


class RecordingLimiter:
    def __init__(self, *, still_to_wait: float = 0.0) -> None:
        self.keys: list[str] = []
        self.reserved: list[str] = []
        self.still_to_wait = still_to_wait

    def acquire(self, key: str, *, max_wait: float) -> float:
        assert max_wait == aws.RATE_WAIT_SECONDS
        self.keys.append(key)
        return self.still_to_wait

    def reserve(self, key: str) -> float:
        self.reserved.append(key)
        return 0.0


def test_import_is_not_retried_by_botocore_when_aws_throttles_it(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    # Every second ImportWorkspaceImage is throttled: the first import succeeds, the second fails.
    control(sandbox, "POST", "faults", {"throttle_rate": 0.5, "operations": ["ImportWorkspaceImage"]})
    first = aws.import_image(
        sandbox_target, parameters=import_parameters(ImageName=f"no-retry-{uuid.uuid4().hex[:8]}"), identity=IDENTITY
    )

    with pytest.raises(aws.Throttled) as raised:
        aws.import_image(sandbox_target, parameters=import_parameters(ImageName="never-made"), identity=IDENTITY)

    assert first.image_id.startswith("wsi-")
    assert raised.value.code == "ThrottlingException"
    assert raised.value.request_id
    assert control(sandbox, "GET", "calls") == {"ImportWorkspaceImage": 2}


def test_describe_images_is_retried_by_botocore_when_aws_throttles_it(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    # Contrast with the import: the same fault on DescribeWorkspaceImages costs one more call, no error.
    control(sandbox, "POST", "faults", {"throttle_rate": 0.5, "operations": ["DescribeWorkspaceImages"]})

    first = aws.describe_images(sandbox_target, ["wsi-000000000"])
    second = aws.describe_images(sandbox_target, ["wsi-000000000"])

    assert first == second == {}
    assert control(sandbox, "GET", "calls") == {"DescribeWorkspaceImages": 3}


def test_each_workspaces_call_asks_the_rate_limiter_for_room_in_the_targets_account(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    limiter = RecordingLimiter()
    aws.use_rate_limiter(limiter)
    other_account = make_target(account_id="210987654321", endpoint_url=sandbox.url)

    found = aws.describe_images(sandbox_target, ["wsi-000000000"])
    aws.describe_images(other_account, ["wsi-000000000"])

    assert found == {}
    assert limiter.keys == [ACCOUNT_ID, "210987654321"]
    assert control(sandbox, "GET", "calls") == {"DescribeWorkspaceImages": 2}


def test_rate_limiter_is_asked_again_for_each_retry(sandbox: SandboxHandle, sandbox_target: SimpleNamespace) -> None:
    limiter = RecordingLimiter()
    aws.use_rate_limiter(limiter)
    control(sandbox, "POST", "faults", {"throttle_rate": 0.5, "operations": ["DescribeWorkspaceImages"]})

    aws.describe_images(sandbox_target, ["wsi-000000000"])
    aws.describe_images(sandbox_target, ["wsi-000000000"])

    assert limiter.keys == [ACCOUNT_ID] * 3
    assert control(sandbox, "GET", "calls") == {"DescribeWorkspaceImages": 3}


def test_ec2_and_sts_calls_do_not_ask_the_rate_limiter(sandbox: SandboxHandle, sandbox_target: SimpleNamespace) -> None:
    limiter = RecordingLimiter()
    aws.use_rate_limiter(limiter)

    amis = aws.list_windows_amis(sandbox_target)
    caller = aws.client(sandbox_target, "sts").get_caller_identity()

    assert [ami.image_id for ami in amis][:2] == ["ami-05eed000000000008", "ami-05eed000000000002"]
    assert caller["Account"] == ACCOUNT_ID
    assert limiter.keys == []
    assert control(sandbox, "GET", "calls") == {"DescribeImages": 1, "GetCallerIdentity": 1}


def test_calls_without_a_rate_limiter_go_straight_through(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    limiter = RecordingLimiter()
    aws.use_rate_limiter(limiter)
    aws.use_rate_limiter(None)

    found = aws.describe_images(sandbox_target, ["wsi-000000000"])

    assert found == {}
    assert limiter.keys == []


@pytest.fixture
def role_target(sandbox: SandboxHandle) -> SimpleNamespace:
    control(sandbox, "POST", "reset")
    return make_target(credentials="assume_role", role_arn=ROLE_ARN, external_id="ext-1", endpoint_url=sandbox.url)


def test_calls_for_an_assume_role_target_run_in_a_role_session_named_after_the_identity(
    sandbox: SandboxHandle, role_target: SimpleNamespace
) -> None:
    account = aws.client(role_target, "workspaces", identity=IDENTITY).describe_account()
    caller = aws.client(role_target, "sts", identity=IDENTITY).get_caller_identity()

    assert account["DedicatedTenancySupport"] == "ENABLED"
    assert caller["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Importer/{IDENTITY}"
    assert control(sandbox, "GET", "calls") == {"AssumeRole": 1, "DescribeAccount": 1, "GetCallerIdentity": 1}


def test_calls_with_the_same_identity_reuse_one_assumed_session(
    sandbox: SandboxHandle, role_target: SimpleNamespace
) -> None:
    first = aws.client(role_target, "workspaces", identity=IDENTITY)
    first.describe_account()
    second = aws.client(role_target, "workspaces", identity=IDENTITY)
    second.describe_account()
    aws.client(role_target, "sts", identity=IDENTITY).get_caller_identity()

    assert second is first
    assert control(sandbox, "GET", "calls") == {"AssumeRole": 1, "DescribeAccount": 2, "GetCallerIdentity": 1}


def test_different_identities_assume_the_role_separately(sandbox: SandboxHandle, role_target: SimpleNamespace) -> None:
    callers = [
        aws.client(role_target, "sts", identity=identity).get_caller_identity()["Arn"]
        for identity in ("IMP-000001", "IMP-000002", "IMP-000001")
    ]

    assert callers == [
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Importer/IMP-000001",
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Importer/IMP-000002",
        f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Importer/IMP-000001",
    ]
    assert control(sandbox, "GET", "calls") == {"AssumeRole": 2, "GetCallerIdentity": 3}


def test_the_import_call_takes_no_turn_itself_its_caller_reserved_one(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    limiter = RecordingLimiter()
    aws.use_rate_limiter(limiter)

    wait = aws.reserve_turn(sandbox_target)
    result = aws.import_image(
        sandbox_target, parameters=import_parameters(ImageName=f"reserved-{uuid.uuid4().hex[:8]}"), identity=IDENTITY
    )

    assert (wait, result.image_id[:4]) == (0.0, "wsi-")
    assert (limiter.reserved, limiter.keys) == ([ACCOUNT_ID], [])
    assert control(sandbox, "GET", "calls") == {"ImportWorkspaceImage": 1}


def test_a_call_with_no_free_turn_in_time_is_not_sent_and_can_be_tried_again(
    sandbox: SandboxHandle, sandbox_target: SimpleNamespace
) -> None:
    aws.use_rate_limiter(RecordingLimiter(still_to_wait=42.0))

    with pytest.raises(aws.RateBusy) as busy:
        aws.describe_images(sandbox_target, ["wsi-000000000"])

    assert busy.value.retryable
    assert busy.value.message == aws.MSG_RATE_BUSY
    assert "42 s away" in busy.value.aws_message
    assert control(sandbox, "GET", "calls") == {}


def test_deleting_an_image_sends_its_id_and_an_image_already_gone_counts_as_deleted() -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_response("delete_workspace_image", {}, {"ImageId": "wsi-abc123def"})
        stubber.add_client_error(
            "delete_workspace_image",
            "ResourceNotFoundException",
            "no such image",
            expected_params={"ImageId": "wsi-gone"},
        )

        aws.delete_image(target, "wsi-abc123def")
        aws.delete_image(target, "wsi-gone")


def test_aws_refusing_to_delete_a_shared_image_says_what_to_undo_first() -> None:
    target = make_target()
    with stubbed(target, "workspaces") as stubber:
        stubber.add_client_error("delete_workspace_image", "ResourceAssociatedException", "image is shared")

        with pytest.raises(aws.ImageInUse) as refused:
            aws.delete_image(target, "wsi-abc123def")

    assert refused.value.message == aws.MSG_IMAGE_IN_USE
    assert refused.value.aws_message == "image is shared"
