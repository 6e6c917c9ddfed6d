"""The delivery plan's pages: the request page's rollout card (and the card alone, which the
page reloads in place while the rollout runs), the retry of a failed step, and what the portal
made in each target with the image quota it holds there."""

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from imports import aws, selectors, workflow
from imports.forms import DecisionForm
from imports.models import ImportRequest, RolloutStep
from imports.paging import keyset_page
from imports.steps.base import console_url
from imports.steps.bundle import CreateBundle
from imports.steps.copy import CopyImage
from imports.steps.share import ShareImage

StepState = RolloutStep.State
TARGET_PAGE_SIZE = 25
MSG_STEP_RETRIED = "Step {position} of {reference} goes again: the portal runs it in a moment."
MSG_NO_SUCH_STEP = "This request has no such step."
# Each state's sign, beside its name (never the colour alone); the sign itself is hidden from
# screen readers, which read the name.
STEP_ICONS = {
    StepState.PENDING: "○",
    StepState.RUNNING: "↻",
    StepState.WAITING: "⏳",
    StepState.TRACKING: "◔",
    StepState.DONE: "✓",
    StepState.FAILED: "✗",
}
BLOCKED_ICON = "⏸"


def _visible_or_404(request: HttpRequest, pk: int) -> ImportRequest:
    import_request = selectors.visible_request(request.user, pk)
    if import_request is None:
        raise Http404("No such request.")
    return import_request


# --- the rollout card --------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    step: RolloutStep
    # The failed step this one waits for (its position): it starts after that one's retry.
    blocked_by: int | None
    may_retry: bool

    @property
    def icon(self) -> str:
        return BLOCKED_ICON if self.blocked_by else STEP_ICONS[self.step.state]

    @property
    def state_text(self) -> str:
        return f"Waits for step {self.blocked_by}" if self.blocked_by else self.step.get_state_display()


@dataclass(frozen=True)
class RolloutCard:
    # Before the image is available: the plan, in the order its steps will run.
    planned: list[str]
    # After: each step as it stands.
    steps: list[StepRow]

    @property
    def summary(self) -> str:
        done = sum(row.step.state == StepState.DONE for row in self.steps)
        failed = sum(row.step.state == StepState.FAILED for row in self.steps)
        return f"{done} of {len(self.steps)} steps done" + (f", {failed} failed" if failed else "")

    @property
    def signature(self) -> str:
        return signature([row.step for row in self.steps])


def signature(steps: list[RolloutStep]) -> str:
    """What the card shows of the steps, in a line: the page reloads the card when it changes."""
    return "|".join(
        f"{s.position}:{s.state}:{s.resource_id}:{s.resource_state}:{s.calls}:{_iso(s.next_attempt_at)}:"
        f"{_iso(s.polled_at)}"
        for s in steps
    )


def _iso(moment: Any) -> str:
    return moment.isoformat() if moment else ""


def rollout_card(user: AbstractBaseUser, import_request: ImportRequest) -> RolloutCard | None:
    """The request page's rollout card; None for a request without a plan. One query (the steps)
    once the rollout started, whatever their number; none before."""
    if not import_request.rollout:
        return RolloutCard(planned_steps(import_request), []) if import_request.delivery_plan else None
    # Read through the request, so each step's `request` is this one (may_retry_step reads it).
    steps = list(import_request.steps.order_by("position"))
    by_pk = {step.pk: step for step in steps}
    rows = [StepRow(step, _blocked_by(step, by_pk), workflow.may_retry_step(user, step)) for step in steps]
    return RolloutCard([], rows)


def _blocked_by(step: RolloutStep, by_pk: dict[int, RolloutStep]) -> int | None:
    """The position of the failed step that `step` (not started) waits for, through its chain."""
    if step.state != StepState.PENDING:
        return None
    before = by_pk.get(step.depends_on_id) if step.depends_on_id else None
    while before is not None:
        if before.state == StepState.FAILED:
            return before.position
        before = by_pk.get(before.depends_on_id) if before.depends_on_id else None
    return None


def planned_steps(import_request: ImportRequest) -> list[str]:
    """The plan in the words and order of the steps it becomes (imports.steps.plan_steps)."""
    plan, home = import_request.delivery_plan, import_request.target.region

    def label(kind: str, region: str, parameters: dict[str, Any]) -> str:
        return RolloutStep(kind=kind, region=region, parameters=parameters).label

    bundle = plan.get("bundle")
    planned = [label(CreateBundle.kind, home, CreateBundle.from_plan(bundle))] if bundle else []
    for copy in plan.get("copies", []):
        planned.append(label(CopyImage.kind, copy["region"], CopyImage.from_plan(import_request)))
        if copy.get("bundle") and bundle:
            planned.append(label(CreateBundle.kind, copy["region"], CreateBundle.from_plan(bundle)))
    planned += [label(ShareImage.kind, s["region"], ShareImage.from_plan(s)) for s in plan.get("shares", [])]
    return planned


def rollout_status(import_request: ImportRequest) -> dict[str, Any] | None:
    """The steps as the request's status endpoint reports them (None before the rollout)."""
    if not import_request.rollout:
        return None
    steps = list(import_request.steps.order_by("position"))
    return {
        "state": import_request.rollout,
        "label": import_request.get_rollout_display(),
        "signature": signature(steps),
        "steps": [
            {
                "position": s.position,
                "kind": s.kind,
                "region": s.region,
                "state": s.state,
                "state_label": s.get_state_display(),
                "resource_id": s.resource_id,
                "resource_state": s.resource_state,
                "calls": s.calls,
                "next_attempt_at": _iso(s.next_attempt_at) or None,
            }
            for s in steps
        ],
    }


@require_http_methods(["GET", "HEAD"])
def request_rollout(request: HttpRequest, pk: int) -> HttpResponse:
    """The rollout card alone, for the request page to swap in while the rollout runs."""
    import_request = _visible_or_404(request, pk)
    card = rollout_card(request.user, import_request)
    if card is None:
        raise Http404("This request has no delivery plan.")
    return render(request, "imports/_rollout.html", {"r": import_request, "rollout": card})


@require_POST
def step_retry(request: HttpRequest, pk: int, step_id: int) -> HttpResponse:
    import_request = _visible_or_404(request, pk)
    step = RolloutStep.objects.filter(pk=step_id, request=import_request).only("pk", "position").first()
    if step is None:
        raise Http404(MSG_NO_SUCH_STEP)
    decision = DecisionForm(request.POST)
    back = f"{reverse('request_detail', args=[pk])}#step-{step.position}"
    if not decision.is_valid():
        messages.error(request, " ".join(decision.errors.get("comment", [])))
        return redirect(back)
    try:
        workflow.retry_step(step_id=step.pk, actor=request.user, comment=decision.cleaned_data["comment"])
    except workflow.WorkflowError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, MSG_STEP_RETRIED.format(position=step.position, reference=import_request.reference))
    return redirect(back)


# --- images and bundles per target --------------------------------------------------------------


@dataclass(frozen=True)
class ImageRow:
    """A request's image in a target and what its rollout made from it."""

    request: ImportRequest

    @property
    def update(self) -> dict[str, Any] | None:
        """What AWS said about updates when the image became available; None if never."""
        image = self.request.available_image
        return image if isinstance(image, dict) else None

    @property
    def console_url(self) -> str:
        return console_url(self.request.target.region, "images")

    def _steps(self, kind: str) -> list[RolloutStep]:
        return [step for step in self.request.steps.all() if step.kind == kind]

    @property
    def copies(self) -> list[RolloutStep]:
        return self._steps(CopyImage.kind)

    @property
    def bundles(self) -> list[RolloutStep]:
        return self._steps(CreateBundle.kind)

    @property
    def shares(self) -> list[RolloutStep]:
        return self._steps(ShareImage.kind)

    @property
    def summary(self) -> str:
        """What a narrow screen's table shows of them, as "1 copy, 2 bundles, 1 share"."""
        counts = ((len(self.copies), "copy", "copies"), (len(self.bundles), "bundle", "bundles"))
        counts += ((len(self.shares), "share", "shares"),)
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n)


@require_http_methods(["GET", "HEAD"])
def target_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "imports/target_list.html",
        {"targets": selectors.active_targets(), "quota": aws.IMAGE_QUOTA, "warn_at": aws.IMAGE_QUOTA_WARNING_AT},
    )


@require_http_methods(["GET", "HEAD"])
def target_images(request: HttpRequest, pk: int) -> HttpResponse:
    target = selectors.visible_target(request.user, pk)
    if target is None:
        raise Http404("No such target.")
    page = keyset_page(
        selectors.target_images(request.user, target),
        size=TARGET_PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    context = {
        "target": target,
        "page": page,
        "rows": [ImageRow(r) for r in page.object_list],
        "quota": selectors.image_quota(target),
        "sees_all": selectors.sees_all_requests(request.user),
        "query": "",
    }
    return render(request, "imports/target_images.html", context)
