"""What an operation of the delivery plan declares, for the step engine (imports.steps.engine)
to run: how to make the call, how to find what an earlier call made, how to read its state."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

from imports import aws, rules
from imports.models import RolloutStep

DONE, WORKING, FAILED = "done", "working", "failed"


@dataclass(frozen=True)
class Made:
    """What a step made in AWS, as AWS last described it."""

    resource_id: str
    # AWS's own word for it (PENDING, AVAILABLE, ERROR, SHARED...).
    state: str
    # What that means for the step: DONE, WORKING (the poller follows it) or FAILED.
    outcome: str
    # Why it failed, in AWS's words.
    message: str = ""
    record: dict[str, Any] = field(default_factory=dict)


class NotOurs(Exception):
    """Something in AWS holds the step's name, and this request did not make it."""


class Operation:
    """One kind of step. Subclasses declare the call; the engine does the rest (claim, lease,
    reconcile, retry with backoff, audit). `find` is what makes a call safe to send again after
    a lost answer: it must recognise what this step made (by name and portal tag), or None."""

    kind: ClassVar[str]
    # For people: "Bundle", "Copy", "Share".
    title: ClassVar[str]
    # The IAM action the call needs (shown when AWS denies it).
    permission: ClassVar[str]

    def parameters(self, step: RolloutStep, image_id: str) -> dict[str, Any]:
        """The call's parameters: the approved ones with the image id, now known."""
        raise NotImplementedError

    def call(self, where: aws.Target, parameters: dict[str, Any], *, identity: str) -> Made:
        raise NotImplementedError

    def find(self, where: aws.Target, step: RolloutStep, parameters: dict[str, Any]) -> Made | None:
        raise NotImplementedError

    def read(self, where: aws.Target, step: RolloutStep) -> Made | None:
        """How a WORKING step stands now; None when AWS no longer knows it."""
        raise NotImplementedError

    def label(self, step: RolloutStep) -> str:
        raise NotImplementedError

    def console_url(self, step: RolloutStep) -> str:
        return console_url(step.region, "images")


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
