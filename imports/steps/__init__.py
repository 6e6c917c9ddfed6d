"""The work the portal sends to AWS: each operation a small declaration (an `Operation` in a
module of its own), run by one engine (imports.steps.engine). The import is one (image.py, kept
on its request); the delivery plan's steps are the others (bundle, copy, share: RolloutSteps).

To add an operation: a module here with an Operation subclass (what to call, how to find what
an earlier call made, how to read its state), its entry in OPERATIONS, and where the plan asks
for it, a line in `plan_steps`.
"""

from typing import Any

from imports.models import ImportRequest, RolloutStep
from imports.steps.base import Operation
from imports.steps.bundle import CreateBundle
from imports.steps.copy import CopyImage
from imports.steps.share import ShareImage

OPERATIONS: dict[str, Operation] = {op.kind: op for op in (CreateBundle(), CopyImage(), ShareImage())}


def plan_steps(request: ImportRequest, plan: dict[str, Any]) -> list[RolloutStep]:
    """The plan as steps, in the order they are shown: the bundle, each copy followed by its
    bundle, then the shares (of the image, or of a copy in the copy's region). Made once."""
    if not plan or request.steps.exists():
        return []
    made: list[RolloutStep] = []

    def add(kind: str, region: str, parameters: dict[str, Any], after: RolloutStep | None = None) -> RolloutStep:
        step = RolloutStep.objects.create(
            request=request, position=len(made) + 1, kind=kind, region=region, parameters=parameters, depends_on=after
        )
        made.append(step)
        return step

    home = request.target.region
    bundle = plan.get("bundle")
    if bundle:
        add(CreateBundle.kind, home, CreateBundle.from_plan(bundle))
    copies: dict[str, RolloutStep] = {}
    for copy in plan.get("copies", []):
        copies[copy["region"]] = add(CopyImage.kind, copy["region"], CopyImage.from_plan(request))
        if copy.get("bundle") and bundle:
            add(CreateBundle.kind, copy["region"], CreateBundle.from_plan(bundle), copies[copy["region"]])
    for share in plan.get("shares", []):
        add(ShareImage.kind, share["region"], ShareImage.from_plan(share), copies.get(share["region"]))
    return made
