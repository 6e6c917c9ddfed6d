"""The Image Builder import path (ImportCustomWorkspaceImage): its form rules, the exact
parameters approved and sent, the source and infrastructure checks, and its progress."""

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import Stubber

from imports import aws, execution, rules, workflow
from imports.forms import MSG_REQUIRED_FOR_PATH, ImportRequestForm
from imports.models import AwsTarget, ImportRequest
from imports.tests.conftest import form_data, request_fields

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
INFRASTRUCTURE = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT_ID}:infrastructure-configuration/byol-import"
IMAGE_VERSION = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT_ID}:image/byol-windows-11/1.0.0/1"
TASK_ID = "import-ami-0123456789abcdef0"


def image_builder_form(target: AwsTarget, **overrides: str) -> dict[str, str]:
    data = form_data(
        target,
        import_path="image_builder",
        windows_version="11",
        source_kind="ami",
        ec2_image_id="ami-0123456789abcdef0",
        infrastructure_configuration_arn=INFRASTRUCTURE,
        compute_type="BASE",
        protocol="DCV",
        image_validation_mode="",
        # Hidden fields of the other path, as a browser without JavaScript still posts them.
        ingestion_process="BYOL_REGULAR",
        office=rules.OFFICE_2019,
    )
    data.update(overrides)
    return data


def image_builder_fields(target: AwsTarget, **overrides: Any) -> dict[str, Any]:
    fields = request_fields(
        target,
        import_path="image_builder",
        windows_version="11",
        ec2_image_id="",
        ingestion_process="",
        source_kind="image_version",
        image_build_version_arn=IMAGE_VERSION,
        infrastructure_configuration_arn=INFRASTRUCTURE,
        compute_type="GRAPHICS_G6",
        protocol="DCV",
        image_validation_mode="SERVICE_MANAGED",
    )
    fields.update(overrides)
    return fields


# --- the form ------------------------------------------------------------------------------------


def test_an_image_builder_request_keeps_only_its_own_fields(target: AwsTarget) -> None:
    form = ImportRequestForm(image_builder_form(target))

    assert form.is_valid(), form.errors
    cleaned = form.cleaned_data
    assert (cleaned["import_path"], cleaned["ec2_image_id"], cleaned["protocol"]) == (
        "image_builder",
        "ami-0123456789abcdef0",
        "DCV",
    )
    # The classic path's hidden fields are emptied, not kept or refused.
    assert (cleaned["ingestion_process"], cleaned["office"]) == ("", "")


def test_only_the_chosen_source_is_kept(target: AwsTarget) -> None:
    form = ImportRequestForm(
        image_builder_form(
            target, source_kind="import_task", ec2_import_task_id=TASK_ID, image_build_version_arn="garbage"
        )
    )

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["ec2_import_task_id"], form.cleaned_data["ec2_image_id"]) == (TASK_ID, "")
    assert form.cleaned_data["image_build_version_arn"] == ""


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"protocol": "PCOIP"}, "protocol", rules.MSG_WIN11_NO_PCOIP_PROTOCOL),
        ({"protocol": "BYOP"}, "protocol", rules.MSG_BYOP_PROTOCOL_NOT_ALLOWED),
        (
            {"windows_version": "10", "protocol": "PCOIP", "compute_type": "GRAPHICS_G7"},
            "protocol",
            rules.MSG_DCV_ONLY_COMPUTE.format(compute="Graphics.g7 (GPU)"),
        ),
        ({"source_kind": "import_task", "ec2_import_task_id": "import-ami-1"}, "ec2_import_task_id", None),
        ({"source_kind": ""}, "source_kind", MSG_REQUIRED_FOR_PATH.format(label="Source")),
        (
            {"infrastructure_configuration_arn": "arn:aws:iam::123456789012:role/x"},
            "infrastructure_configuration_arn",
            None,
        ),
        ({"compute_type": "GRAPHICS_G5"}, "compute_type", None),
    ],
)
def test_each_rule_of_the_path_has_one_message_on_its_field(
    target: AwsTarget, overrides: dict[str, str], field: str, message: str | None
) -> None:
    form = ImportRequestForm(image_builder_form(target, **overrides))

    assert not form.is_valid()
    assert set(form.errors) == {field}, form.errors
    assert len(form.errors[field]) == 1
    if message is not None:
        assert form.errors[field] == [message]


def test_an_infrastructure_configuration_of_another_account_is_refused_with_both_named(target: AwsTarget) -> None:
    elsewhere = INFRASTRUCTURE.replace(ACCOUNT_ID, "210987654321").replace(REGION, "eu-west-1")

    form = ImportRequestForm(image_builder_form(target, infrastructure_configuration_arn=elsewhere))

    [message] = form.errors["infrastructure_configuration_arn"]
    assert "eu-west-1, account 210987654321" in message
    assert f"the target is {REGION}, account {ACCOUNT_ID}" in message


def test_an_image_version_of_another_region_is_refused(target: AwsTarget) -> None:
    form = ImportRequestForm(
        image_builder_form(
            target, source_kind="image_version", image_build_version_arn=IMAGE_VERSION.replace(REGION, "eu-west-1")
        )
    )

    assert form.errors["image_build_version_arn"] == [
        rules.MSG_VERSION_ELSEWHERE.format(region="eu-west-1", target_region=REGION)
    ]


def test_the_classic_path_ignores_the_image_builder_fields_posted_with_it(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, import_path="classic", protocol="garbage", compute_type="GRAPHICS_G7"))

    assert form.is_valid(), form.errors
    assert (form.cleaned_data["protocol"], form.cleaned_data["compute_type"]) == ("", "")


# --- what is approved and sent ---------------------------------------------------------------------


def test_the_approval_binds_to_the_exact_import_custom_parameters(target: AwsTarget, requester: Any) -> None:
    request = workflow.submit_request(requester=requester, fields=image_builder_fields(target))

    snapshot = request.events.get().data["parameters"]

    assert snapshot == {
        "ImageName": "win10-finance-2026",
        "ImageDescription": "Windows 10 22H2 for the finance team",
        "ComputeType": "GRAPHICS_G6",
        "Protocol": "DCV",
        "ImageSource": {"ImageBuildVersionArn": IMAGE_VERSION},
        "InfrastructureConfigurationArn": INFRASTRUCTURE,
        "Platform": "WINDOWS",
        "OsVersion": "Windows_11",
        "Tags": [{"Key": "CostCenter", "Value": "4711"}],
        "ImageValidationMode": "SERVICE_MANAGED",
    }
    assert request.source_value == IMAGE_VERSION
    assert execution.image_builder_source(request) == aws.ImageBuilderSource(
        kind="image_version", value=IMAGE_VERSION, infrastructure_configuration_arn=INFRASTRUCTURE
    )


def test_a_classic_request_has_no_image_builder_source(make_request: Any) -> None:
    assert execution.image_builder_source(make_request(checked=False)) is None


# --- AWS, exactly (botocore's Stubber) -------------------------------------------------------------


@pytest.fixture
def aws_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(aws, "_rate_limiter", None)
    aws.forget_clients()
    yield SimpleNamespace(
        account_id=ACCOUNT_ID, region=REGION, credentials="default", role_arn="", external_id="", endpoint_url=""
    )
    aws.forget_clients()


@contextmanager
def stubbed(target: SimpleNamespace, service: str, **client_args: Any) -> Iterator[Stubber]:
    with Stubber(aws.client(target, service, **client_args)) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_parameters_with_an_image_source_go_to_import_custom_workspace_image(aws_target: SimpleNamespace) -> None:
    parameters = {
        "ImageName": "ib-1",
        "ImageDescription": "ib",
        "ComputeType": "BASE",
        "Protocol": "DCV",
        "ImageSource": {"Ec2ImageId": "ami-0123456789abcdef0"},
        "InfrastructureConfigurationArn": INFRASTRUCTURE,
        "Platform": "WINDOWS",
        "OsVersion": "Windows_11",
    }
    with stubbed(aws_target, "workspaces", identity="IMP-000001", attempts=1, paced=False) as stub:
        stub.add_response(
            "import_custom_workspace_image", {"ImageId": "wsi-0123456789", "State": "PENDING"}, parameters
        )

        result = aws.import_image(aws_target, parameters=parameters, identity="IMP-000001")

    assert result.image_id == "wsi-0123456789"


def test_progress_is_read_from_describe_custom_workspace_image_import(aws_target: SimpleNamespace) -> None:
    with stubbed(aws_target, "workspaces", paced=False) as stub:
        stub.add_response(
            "describe_custom_workspace_image_import",
            {"ImageId": "wsi-0123456789", "State": "GENERALIZING", "StateMessage": "Sysprep", "ProgressPercentage": 70},
            {"ImageId": "wsi-0123456789"},
        )

        progress = aws.import_progress(aws_target, "wsi-0123456789")

    assert progress == aws.ImportProgress(stage="GENERALIZING", message="Sysprep", progress=70)


def test_progress_is_asked_only_in_a_free_turn_of_the_rate(
    aws_target: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = SimpleNamespace(acquire=lambda key, *, max_wait: 3.0)
    monkeypatch.setattr(aws, "_rate_limiter", busy)

    with pytest.raises(aws.RateBusy):
        aws.import_progress(aws_target, "wsi-0123456789")


def test_a_completed_vm_import_task_leads_to_the_checks_on_its_ami(aws_target: SimpleNamespace) -> None:
    source = aws.ImageBuilderSource(kind="import_task", value=TASK_ID, infrastructure_configuration_arn=INFRASTRUCTURE)
    with stubbed(aws_target, "ec2", identity="IMP-000001", attempts=4) as ec2:
        ec2.add_response(
            "describe_import_image_tasks",
            {
                "ImportImageTasks": [
                    {"ImportTaskId": TASK_ID, "Status": "completed", "ImageId": "ami-0aaaaaaaaaaaaaaaa"}
                ]
            },
            {"ImportTaskIds": [TASK_ID]},
        )
        ec2.add_response("describe_images", {"Images": []}, {"ImageIds": ["ami-0aaaaaaaaaaaaaaaa"]})

        checks = aws._checks_on_source(aws_target, source, "IMP-000001", "11")

    assert [(c.key, c.outcome) for c in checks] == [("source", aws.PASS), ("ami", aws.FAIL)]
    assert checks[0].message == f"{TASK_ID} completed and made ami-0aaaaaaaaaaaaaaaa."


def test_a_vm_import_task_still_running_fails_the_source_check(aws_target: SimpleNamespace) -> None:
    source = aws.ImageBuilderSource(kind="import_task", value=TASK_ID, infrastructure_configuration_arn=INFRASTRUCTURE)
    with stubbed(aws_target, "ec2", identity="IMP-000001", attempts=4) as ec2:
        ec2.add_response(
            "describe_import_image_tasks",
            {"ImportImageTasks": [{"ImportTaskId": TASK_ID, "Status": "active", "StatusMessage": "converting"}]},
            {"ImportTaskIds": [TASK_ID]},
        )

        [check] = aws._checks_on_source(aws_target, source, "IMP-000001", "11")

    assert (check.outcome, check.message) == (
        aws.FAIL,
        f"{TASK_ID} is active (converting), not completed: wait for it to finish.",
    )


@pytest.mark.parametrize(
    ("image", "outcome", "message"),
    [
        (
            {"state": {"status": "AVAILABLE"}, "outputResources": {"amis": [{"region": REGION, "image": "ami-0b"}]}},
            aws.PASS,
            "The image version is available as ami-0b.",
        ),
        ({"state": {"status": "BUILDING"}}, aws.FAIL, "The image version is BUILDING, not AVAILABLE."),
        (
            {
                "state": {"status": "AVAILABLE"},
                "outputResources": {"amis": [{"region": "eu-west-1", "image": "ami-0c"}]},
            },
            aws.FAIL,
            f"The image version made no AMI in {REGION}: distribute it to the target's region.",
        ),
    ],
)
def test_an_image_builder_version_must_be_available_in_the_targets_region(
    aws_target: SimpleNamespace, image: dict[str, Any], outcome: str, message: str
) -> None:
    with stubbed(aws_target, "imagebuilder", identity="IMP-000001", attempts=4) as builder:
        builder.add_response("get_image", {"image": image}, {"imageBuildVersionArn": IMAGE_VERSION})

        check, _ = aws._check_image_version(aws_target, IMAGE_VERSION, "IMP-000001", attempts=4)

    assert (check.outcome, check.message) == (outcome, message)


def test_a_missing_infrastructure_configuration_fails_its_check(aws_target: SimpleNamespace) -> None:
    with stubbed(aws_target, "imagebuilder", identity="IMP-000001", attempts=4) as builder:
        builder.add_client_error(
            "get_infrastructure_configuration", service_error_code="ResourceNotFoundException", http_status_code=404
        )

        check = aws._check_infrastructure(aws_target, INFRASTRUCTURE, "IMP-000001")

    assert (check.key, check.outcome) == ("infrastructure", aws.FAIL)
    assert check.message == f"{INFRASTRUCTURE} does not exist in {REGION}."


# --- progress on the request ---------------------------------------------------------------------


def test_progress_keeps_a_history_of_each_stage_seen(target: AwsTarget, requester: Any) -> None:
    request = workflow.submit_request(requester=requester, fields=image_builder_fields(target))
    ImportRequest.objects.filter(pk=request.pk).update(state="importing", aws_image_id="wsi-0123456789")

    for stage, progress in [("PENDING", 0), ("IN_PROGRESS", 8), ("IN_PROGRESS", 12), ("GENERALIZING", 70)]:
        assert workflow.record_import_progress(request_id=request.pk, stage=stage, message=stage, progress=progress)

    request.refresh_from_db()
    assert [(s["stage"], s["progress"]) for s in request.import_stages] == [
        ("PENDING", 0),
        ("IN_PROGRESS", 8),
        ("GENERALIZING", 70),
    ]
    assert (request.import_stage, request.import_progress) == ("GENERALIZING", 70)
    assert request.progress_checked_at is not None


def test_progress_is_not_noted_on_a_request_no_longer_importing(target: AwsTarget, requester: Any) -> None:
    request = workflow.submit_request(requester=requester, fields=image_builder_fields(target))

    assert not workflow.record_import_progress(request_id=request.pk, stage="PENDING", message="", progress=0)


# --- the pages -------------------------------------------------------------------------------------


def test_the_request_page_and_status_show_the_stage_in_plain_words(
    client: Any, target: AwsTarget, requester: Any
) -> None:
    from django.urls import reverse

    request = workflow.submit_request(requester=requester, fields=image_builder_fields(target))
    ImportRequest.objects.filter(pk=request.pk).update(state="importing", aws_image_id="wsi-0123456789")
    workflow.record_import_progress(request_id=request.pk, stage="IN_PROGRESS", message="Started", progress=5)
    workflow.record_import_progress(request_id=request.pk, stage="GENERALIZING", message="Sysprep", progress=72)
    client.force_login(requester)

    page = client.get(reverse("request_detail", args=[request.pk]))
    status = client.get(reverse("request_status", args=[request.pk])).json()

    html = page.content.decode()
    assert 'id="import-progress"' in html
    assert "Generalizing the image" in html
    assert '<progress class="w-100 import-progress-bar" id="progress-bar" max="100" value="72"' in html
    assert "Stages so far (2)" in html
    assert "Through EC2 Image Builder" in html
    assert IMAGE_VERSION in html
    assert status["progress"]["stage"] == "GENERALIZING"
    assert (status["progress"]["label"], status["progress"]["percent"]) == ("Generalizing the image", 72)
