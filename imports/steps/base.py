"""What an operation declares, for the engine (imports.steps.engine) to run: its call's
parameters, the call, how to find what an earlier call made, how to read its state, and what to
tell people when it fails. The import itself (imports.steps.image) and each step of the
delivery plan (bundle, copy, share) are such declarations."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

from imports import aws, rules
from imports.models import RolloutStep

DONE, WORKING, FAILED = "done", "working", "failed"

# What to do, by what stopped a step: shown with its failure.
TODO_PERMISSION = (
    "An admin must give the portal's IAM role {permission} in {region} (the README's IAM policy), "
    "then an approver retries this step."
)
TODO_IN_AWS = "Fix this in AWS as the message says (in {region}), then an approver retries this step."
TODO_NAME = "Rename or delete it in AWS (in {region}), then an approver retries this step."
TODO_LATER = "An approver can retry this step once AWS works again."
MSG_VANISHED = "AWS no longer knows {resource_id}: it was deleted while AWS was still working on it."


@dataclass(frozen=True)
class Made:
    """What a call made in AWS, as AWS last described it."""

    resource_id: str
    # AWS's own word for it (PENDING, AVAILABLE, ERROR, SHARED...).
    state: str
    # What that means for the work: DONE, WORKING (the poller follows it) or FAILED.
    outcome: str
    # Why it failed, in AWS's words, and, where the operation explains it further, as shown.
    message: str = ""
    failure: dict[str, Any] = field(default_factory=dict)
    # What the audit event of the outcome keeps of it.
    record: dict[str, Any] = field(default_factory=dict)


class NotOurs(Exception):
    """Something in AWS holds the name, and this request did not make it."""


class Stop(Exception):
    """The portal ends the attempt itself, with `failure` (its checks failed, its parameters
    are no longer the approved ones...)."""

    def __init__(self, failure: dict[str, Any]) -> None:
        super().__init__(failure.get("message", ""))
        self.failure = failure


class Operation:
    """One kind of work in AWS. Subclasses declare the call; the engine does the rest (claim,
    lease, reconcile, retry with backoff, audit). `find` is what makes a call safe to send
    again after a lost answer: it must recognise what this unit made (by name and portal tag),
    or return None. The unit is the row the work is kept in: an ImportRequest for the import, a
    RolloutStep for the plan's steps (imports.steps.ledger)."""

    kind: ClassVar[str]
    # For people: "Import", "Bundle", "Copy", "Share".
    title: ClassVar[str]
    # The IAM action the call needs (shown when AWS denies it).
    permission: ClassVar[str]

    def parameters(self, unit: Any) -> dict[str, Any] | None:
        """The call's parameters, as approved; None when they no longer are (before_call stops)."""
        raise NotImplementedError

    def before_call(self, unit: Any, parameters: dict[str, Any] | None, *, resumed: bool) -> dict[str, Any]:
        """What must hold just before the call: raise Stop (or a retryable AwsError, or TryAgain
        to wait) when it does not. Returns what the call's audit event adds."""
        return {}

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        raise NotImplementedError

    def find(self, where: aws.Target, unit: Any, parameters: dict[str, Any] | None) -> Made | None:
        raise NotImplementedError

    def read(self, where: aws.Target, unit: Any) -> Made | None:
        """How WORKING work stands now; None when AWS no longer knows it."""
        raise NotImplementedError

    # What the failure says: AWS refused (`error`), a name held by someone else, AWS kept failing.
    def failure(self, unit: Any, error: aws.AwsError) -> dict[str, Any]:
        raise NotImplementedError

    def clash(self, unit: Any, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def gave_up(self, unit: Any, message: str, error: aws.AwsError) -> dict[str, Any]:
        raise NotImplementedError

    def vanished(self, unit: Any, resource_id: str) -> dict[str, Any]:
        """What AWS worked on is gone from its answers (deleted meanwhile)."""
        raise NotImplementedError


class StepOperation(Operation):
    """A step of the delivery plan, on the image the request made or on a copy of it."""

    def parameters(self, step: RolloutStep) -> dict[str, Any]:
        raise NotImplementedError

    def label(self, step: RolloutStep) -> str:
        raise NotImplementedError

    def console_url(self, step: RolloutStep) -> str:
        return console_url(step.region, "images")

    def failure(self, step: RolloutStep, error: aws.AwsError) -> dict[str, Any]:
        if isinstance(error, aws.AccessDenied):
            todo = TODO_PERMISSION.format(permission=self.permission, region=step.region)
        else:
            todo = TODO_IN_AWS.format(region=step.region)
        return {**error.as_record(), "what_to_do": todo}

    def clash(self, step: RolloutStep, message: str) -> dict[str, Any]:
        return {"message": message, "what_to_do": TODO_NAME.format(region=step.region)}

    def gave_up(self, step: RolloutStep, message: str, error: aws.AwsError) -> dict[str, Any]:
        return {**error.as_record(), "message": message, "what_to_do": TODO_LATER}

    def vanished(self, step: RolloutStep, resource_id: str) -> dict[str, Any]:
        return {"message": MSG_VANISHED.format(resource_id=resource_id), "what_to_do": TODO_LATER}


def source_image(step: RolloutStep) -> str:
    """The image a step works on: the copy its dependency made, or the request's own."""
    return step.depends_on.resource_id if step.depends_on_id else step.request.aws_image_id


def portal_tags(step: RolloutStep) -> list[dict[str, str]]:
    """The request's tags and the portal's own, so that what a step makes is found again by tag."""
    request = step.request
    approver = request.approver.get_username() if request.approver_id else ""
    tagged = aws.with_portal_tags(
        {"Tags": list(request.tags)},
        reference=request.reference,
        requester=request.requester.get_username(),
        approver=approver,
    )
    return tagged["Tags"]


def made_by(step: RolloutStep, tags: dict[str, str]) -> bool:
    return tags.get(rules.PORTAL_TAG_KEYS[0]) == step.request.reference


def console_url(region: str, page: str) -> str:
    """The WorkSpaces console's page in the region's own partition."""
    if region.startswith("cn-"):
        host = f"{region}.console.amazonaws.cn"
    elif region.startswith("us-gov-"):
        host = f"{region}.console.amazonaws-us-gov.com"
    else:
        host = f"{region}.console.aws.amazon.com"
    return f"https://{host}/workspaces/v2/{page}?region={region}"
