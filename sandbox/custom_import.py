"""ImportCustomWorkspaceImage and DescribeCustomWorkspaceImageImport: the import through EC2
Image Builder, which moto lacks.

An import walks through the stages DescribeCustomWorkspaceImageImport reports, one equal share
of ``import_delay`` each, with ProgressPercentage rising with the clock, and ends COMPLETED, or
ERROR at the compatibility check when its source AMI carries the sandbox's error-details tag.
Like the classic import, the image is stored in moto's WorkSpaces backend, so
DescribeWorkspaceImages, DescribeTags, DeleteWorkspaceImage and the name check see it (PENDING
while the import runs, then AVAILABLE or ERROR).

The sources and the infrastructure configuration the sandbox knows stand in for EC2's VM import
tasks and Image Builder's resources, which moto does not serve: see ``seed.py``.
https://docs.aws.amazon.com/workspaces/latest/api/API_ImportCustomWorkspaceImage.html
"""

import secrets
import time
from typing import Any

from .image_builder import image_version_named
from .seed import AVAILABLE, SEED_IMPORT_TASKS, SEED_INFRASTRUCTURE_CONFIGURATIONS
from .validation import custom_import_request_problems, describe_custom_import_request_problems
from .workspaces import (
    _IMAGES_LOCK,
    ERROR_DETAIL_MESSAGES,
    ImportedWorkspaceImage,
    ImportSettings,
    WorkSpacesError,
    _error_detail_codes,
    _refuse_duplicate_name,
    _refuse_over_quota,
    _refuse_without_byol,
    _source_ami,
    _workspaces_backend,
    invalid_parameters,
)

# The stages an import passes through, in order, before COMPLETED (or ERROR).
STAGES = (
    "PENDING",
    "IN_PROGRESS",
    "PROCESSING_SOURCE_IMAGE",
    "IMAGE_TESTING_START",
    "UPDATING_OPERATING_SYSTEM",
    "IMAGE_COMPATIBILITY_CHECKING",
    "IMAGE_TESTING_GENERALIZATION",
    "CREATING_TEST_INSTANCE",
    "INSTALLING_COMPONENTS",
    "GENERALIZING",
    "VALIDATING",
    "PUBLISHING",
)
FAILING_STAGE = STAGES.index("IMAGE_COMPATIBILITY_CHECKING")
# From this stage on, Image Builder has a build instance to report.
INSTANCE_STAGE = STAGES.index("CREATING_TEST_INSTANCE")
# AWS publishes no StateMessage texts; these are the sandbox's own.
STAGE_MESSAGES = {
    "PENDING": "The import is queued.",
    "IN_PROGRESS": "The import has started.",
    "PROCESSING_SOURCE_IMAGE": "Processing the source image.",
    "IMAGE_TESTING_START": "Starting the image tests.",
    "UPDATING_OPERATING_SYSTEM": "Updating the operating system.",
    "IMAGE_COMPATIBILITY_CHECKING": "Checking the image's compatibility with WorkSpaces.",
    "IMAGE_TESTING_GENERALIZATION": "Testing generalization (Sysprep).",
    "CREATING_TEST_INSTANCE": "Creating a test instance.",
    "INSTALLING_COMPONENTS": "Installing the WorkSpaces components.",
    "GENERALIZING": "Generalizing the image.",
    "VALIDATING": "Validating the image.",
    "PUBLISHING": "Publishing the WorkSpaces image.",
    "COMPLETED": "The image was imported.",
    "ERROR": "The image failed the compatibility checks: see ErrorDetails.",
}
PCOIP_ON_WINDOWS_11 = "Windows 11 does not support the PCOIP protocol: choose DCV (or BYOP)."


class CustomImportedWorkspaceImage(ImportedWorkspaceImage):
    """An image made by ImportCustomWorkspaceImage: its stage and progress follow the clock."""

    def __init__(
        self,
        *,
        params: dict[str, Any],
        source_ami_id: str,
        account_id: str,
        region: str,
        import_delay: float,
        error_detail_codes: tuple[str, ...],
    ) -> None:
        super().__init__(
            params={**params, "Ec2ImageId": source_ami_id, "IngestionProcess": "IMAGE_BUILDER"},
            account_id=account_id,
            region=region,
            import_delay=import_delay,
            error_detail_codes=error_detail_codes,
        )
        self.image_source: dict[str, str] = dict(params["ImageSource"])
        self.infrastructure_configuration_arn: str = params["InfrastructureConfigurationArn"]
        self.compute_type: str = params["ComputeType"]
        self.protocol: str = params["Protocol"]
        self.os_version: str = params["OsVersion"]
        self.validation_mode: str = params.get("ImageValidationMode") or "CUSTOMER_MANAGED"
        self.stage_seconds = import_delay / len(STAGES)
        if error_detail_codes:
            # It fails at the compatibility check, so the image ends ERROR from then on.
            self.ready_at = self.created + self.stage_seconds * FAILING_STAGE
        self.builder_instance_id = "i-" + secrets.token_hex(8)[:17]

    def stage_at(self, now: float) -> tuple[str, int, float]:
        """(stage, progress percentage, when the stage began) at time `now`."""
        if now >= self.ready_at:
            if self.error_detail_codes:
                return "ERROR", self._progress(self.ready_at), self.ready_at
            return "COMPLETED", 100, self.ready_at
        if self.stage_seconds <= 0:
            return STAGES[0], 0, self.created
        index = min(int((now - self.created) / self.stage_seconds), len(STAGES) - 1)
        return STAGES[index], self._progress(now), self.created + index * self.stage_seconds

    def _progress(self, now: float) -> int:
        total = self.stage_seconds * len(STAGES)
        return min(99, int(100 * (now - self.created) / total)) if total > 0 else 0

    def describe_import(self, now: float) -> dict[str, Any]:
        stage, progress, since = self.stage_at(now)
        described: dict[str, Any] = {
            "ImageId": self.image_id,
            "InfrastructureConfigurationArn": self.infrastructure_configuration_arn,
            "State": stage,
            "StateMessage": STAGE_MESSAGES[stage],
            "ProgressPercentage": progress,
            "Created": self.created,
            "LastUpdatedTime": since,
            "ImageSource": dict(self.image_source),
        }
        stage_index = STAGES.index(stage) if stage in STAGES else len(STAGES)
        if stage_index >= INSTANCE_STAGE and stage != "ERROR":
            described["ImageBuilderInstanceId"] = self.builder_instance_id
        if stage == "ERROR":
            described["ErrorDetails"] = [
                {"ErrorCode": code, "ErrorMessage": ERROR_DETAIL_MESSAGES.get(code, f"The {code} check failed.")}
                for code in self.error_detail_codes
            ]
        return described

    def summary(self) -> dict[str, Any]:
        stage, progress, _ = self.stage_at(time.time())
        return super().summary() | {
            "ImportPath": "IMAGE_BUILDER",
            "ImageSource": dict(self.image_source),
            "Stage": stage,
            "ProgressPercentage": progress,
        }


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(region, account, resource) of an Image Builder ARN the model's pattern accepted."""
    _, _, _, region, account, resource = arn.split(":", 5)
    return region, account, resource


def _refuse_unknown_infrastructure(arn: str, *, account_id: str, region: str) -> None:
    arn_region, arn_account, resource = _arn_parts(arn)
    name = resource.partition("/")[2]
    if (arn_region, arn_account) != (region, account_id) or name not in SEED_INFRASTRUCTURE_CONFIGURATIONS:
        raise WorkSpacesError(
            "ResourceNotFoundException",
            f"The Image Builder infrastructure configuration {arn} was not found in {region} for account {account_id}.",
        )


def _source_of(source: dict[str, str], *, account_id: str, region: str) -> Any:
    """The AMI behind the source, once AWS would accept the source."""
    if "Ec2ImageId" in source:
        return _source_ami(source["Ec2ImageId"], account_id=account_id, region=region)
    if "Ec2ImportTaskId" in source:
        task_id = source["Ec2ImportTaskId"]
        task = SEED_IMPORT_TASKS.get(task_id)
        if task is None:
            raise WorkSpacesError(
                "ResourceNotFoundException", f"The VM import task {task_id} was not found in {region}."
            )
        if task.status != "completed" or task.ami_id is None:
            raise invalid_parameters(f"The VM import task {task_id} is {task.status}, not completed.")
        return _source_ami(task.ami_id, account_id=account_id, region=region)
    arn = source["ImageBuildVersionArn"]
    version = image_version_named(arn, account_id=account_id, region=region)
    if version is None:
        raise WorkSpacesError(
            "ResourceNotFoundException", f"The Image Builder image version {arn} was not found in {region}."
        )
    build, seed = version
    if seed.status != AVAILABLE or seed.ami_id is None:
        raise invalid_parameters(f"The Image Builder image version {build} is {seed.status}, not {AVAILABLE}.")
    return _source_ami(seed.ami_id, account_id=account_id, region=region)


def import_custom_workspace_image(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    problems = custom_import_request_problems(params)
    if problems:
        raise invalid_parameters("Invalid ImportCustomWorkspaceImage request: " + "; ".join(problems) + ".")
    # https://docs.aws.amazon.com/workspaces/latest/api/API_ImportCustomWorkspaceImage.html (Protocol)
    if params["OsVersion"] == "Windows_11" and params["Protocol"] == "PCOIP":
        raise invalid_parameters(PCOIP_ON_WINDOWS_11)
    _refuse_without_byol(settings, region)
    _refuse_unknown_infrastructure(params["InfrastructureConfigurationArn"], account_id=account_id, region=region)
    ami = _source_of(params["ImageSource"], account_id=account_id, region=region)
    codes = _error_detail_codes(ami, account_id=account_id, region=region)
    backend = _workspaces_backend(account_id, region)
    with _IMAGES_LOCK:
        _refuse_duplicate_name(backend, params["ImageName"], region)
        _refuse_over_quota(backend, settings.image_quota, region)
        image = CustomImportedWorkspaceImage(
            params=params,
            source_ami_id=ami.id,
            account_id=account_id,
            region=region,
            import_delay=settings.import_delay,
            error_detail_codes=codes,
        )
        backend.workspace_images[image.image_id] = image
    return {"ImageId": image.image_id, "State": image.stage_at(image.created)[0]}


def describe_custom_workspace_image_import(
    params: dict[str, Any], *, account_id: str, region: str, settings: ImportSettings
) -> dict[str, Any]:
    problems = describe_custom_import_request_problems(params)
    if problems:
        raise invalid_parameters("Invalid DescribeCustomWorkspaceImageImport request: " + "; ".join(problems) + ".")
    with _IMAGES_LOCK:
        image = _workspaces_backend(account_id, region).workspace_images.get(params["ImageId"])
    if not isinstance(image, CustomImportedWorkspaceImage):
        raise WorkSpacesError(
            "ResourceNotFoundException",
            f"No import through ImportCustomWorkspaceImage of {params['ImageId']} was found in {region}.",
        )
    return image.describe_import(time.time())
