"""CreateWorkspaceBundle: a bundle from the image (or from its copy, in the copy's region)."""

from typing import Any

from imports import aws
from imports.models import RolloutStep
from imports.steps.base import (
    DONE,
    FAILED,
    WORKING,
    Made,
    NotOurs,
    StepOperation,
    console_url,
    made_by,
    portal_tags,
    source_image,
)


def _made(bundle: aws.Bundle) -> Made:
    outcome = {"AVAILABLE": DONE, "ERROR": FAILED}.get(bundle.state, WORKING)
    message = f"AWS reports the bundle {bundle.bundle_id} in ERROR." if outcome == FAILED else ""
    return Made(bundle.bundle_id, bundle.state, outcome, message, {"compute_type": bundle.compute_type})


class CreateBundle(StepOperation):
    kind = "bundle"
    title = "Bundle"
    permission = "workspaces:CreateWorkspaceBundle"

    def parameters(self, step: RolloutStep) -> dict[str, Any]:
        return {**step.parameters, "ImageId": source_image(step), "Tags": portal_tags(step)}

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        return _made(aws.create_bundle(where, parameters=parameters, identity=identity))

    def find(self, where: aws.Target, step: RolloutStep, parameters: dict[str, Any]) -> Made | None:
        bundle = aws.find_bundle(where, name=parameters["BundleName"])
        if bundle is None:
            return None
        if not made_by(step, aws.image_tags(where, bundle.bundle_id)):
            raise NotOurs(
                f"A bundle named {bundle.name} already exists in {step.region} ({bundle.bundle_id}) "
                "and was not made by this request."
            )
        return _made(bundle)

    def read(self, where: aws.Target, step: RolloutStep) -> Made | None:
        bundle = aws.describe_bundle(where, step.resource_id)
        return _made(bundle) if bundle else None

    def label(self, step: RolloutStep) -> str:
        p = step.parameters
        return (
            f"Bundle {p['BundleName']} ({p['ComputeType']['Name']}, root {p['RootStorage']['Capacity']} GB, "
            f"user {p['UserStorage']['Capacity']} GB) in {step.region}"
        )

    def console_url(self, step: RolloutStep) -> str:
        return console_url(step.region, "bundles")

    @staticmethod
    def from_plan(bundle: dict[str, Any]) -> dict[str, Any]:
        return {
            "BundleName": bundle["name"],
            "BundleDescription": bundle["description"],
            "ComputeType": {"Name": bundle["compute_type"]},
            "RootStorage": {"Capacity": str(bundle["root_gb"])},
            "UserStorage": {"Capacity": str(bundle["user_gb"])},
        }
