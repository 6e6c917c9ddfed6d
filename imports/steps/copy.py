"""CopyWorkspaceImage: the image copied to another region of the same account, called in the
destination region; AWS works on the copy (PENDING) until it is AVAILABLE."""

from typing import Any

from imports import aws
from imports.models import RolloutStep
from imports.steps.base import DONE, FAILED, WORKING, Made, NotOurs, StepOperation, made_by, portal_tags, source_image


def _made(image: aws.ImageStatus) -> Made:
    outcome = {"AVAILABLE": DONE, "ERROR": FAILED}.get(image.state, WORKING)
    message = ""
    if outcome == FAILED:
        message = f"AWS could not copy the image: {image.error_message or image.error_code or 'no reason given'}."
    return Made(image.image_id, image.state, outcome, message, {"update_available": image.update_available})


class CopyImage(StepOperation):
    kind = "copy"
    title = "Copy"
    permission = "workspaces:CopyWorkspaceImage"

    def parameters(self, step: RolloutStep) -> dict[str, Any]:
        return {**step.parameters, "SourceImageId": source_image(step), "Tags": portal_tags(step)}

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        image_id = aws.copy_image(where, parameters=parameters, identity=identity)
        return Made(image_id, "PENDING", WORKING)

    def find(self, where: aws.Target, step: RolloutStep, parameters: dict[str, Any]) -> Made | None:
        image = aws.find_owned_image(where, name=parameters["Name"])
        if image is None:
            return None
        if not made_by(step, aws.image_tags(where, image.image_id)):
            raise NotOurs(
                f"An image called {image.name} already exists in {step.region} ({image.image_id}) "
                "and was not made by this request."
            )
        return _made(image)

    def read(self, where: aws.Target, step: RolloutStep) -> Made | None:
        image = aws.describe_images(where, [step.resource_id]).get(step.resource_id)
        return _made(image) if image else None

    def label(self, step: RolloutStep) -> str:
        return f"Copy {step.parameters['Name']} from {step.parameters['SourceRegion']} to {step.region}"

    @staticmethod
    def from_plan(request: Any) -> dict[str, Any]:
        return {
            "Name": request.image_name,
            "Description": request.image_description,
            "SourceRegion": request.target.region,
        }
