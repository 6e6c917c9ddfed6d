"""UpdateWorkspaceImagePermission: the image (or a copy, from the copy's region) shared with one
other account, which may copy it (AllowCopyImage) to make its own bundles. Done at once; sending
it again grants nothing twice, and DescribeWorkspaceImagePermissions says whether it was."""

from typing import Any

from imports import aws
from imports.models import RolloutStep
from imports.steps.base import DONE, Made, StepOperation, source_image

SHARED = "SHARED"


class ShareImage(StepOperation):
    kind = "share"
    title = "Share"
    permission = "workspaces:UpdateWorkspaceImagePermission"

    def parameters(self, step: RolloutStep) -> dict[str, Any]:
        return {**step.parameters, "ImageId": source_image(step)}

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        aws.share_image(
            where,
            image_id=parameters["ImageId"],
            account_id=parameters["SharedAccountId"],
            allow=parameters["AllowCopyImage"],
            identity=identity,
        )
        return Made(parameters["ImageId"], SHARED, DONE)

    def find(self, where: aws.Target, step: RolloutStep, parameters: dict[str, Any]) -> Made | None:
        if parameters["SharedAccountId"] in aws.image_shared_with(where, parameters["ImageId"]):
            return Made(parameters["ImageId"], SHARED, DONE)
        return None

    def label(self, step: RolloutStep) -> str:
        return f"Share with account {step.parameters['SharedAccountId']} in {step.region}"

    @staticmethod
    def from_plan(share: dict[str, Any]) -> dict[str, Any]:
        return {"SharedAccountId": share["account_id"], "AllowCopyImage": True}
