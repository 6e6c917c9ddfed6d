"""Where the engine keeps a unit of work, and the workflow verbs that move it: the import on its
request's row (ImportRequest), each step of the delivery plan on its own (RolloutStep). The
engine (imports.steps.engine) runs both the same way through these two."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from imports import aws, workflow
from imports.models import ImportRequest, RolloutStep
from imports.retry import Wait
from imports.steps.base import DONE, FAILED, TODO_IN_AWS, Made, Operation

# What the import's poller records besides the engine's outcomes: AWS works on it for too long.
STALLED = "stalled"


class Ledger:
    """How the engine takes, reads and records a unit. Every write is a workflow verb: a
    compare-and-set on the lease token with its audit event, or a Conflict."""

    name: str

    def take(self, unit_id: int, *, lease_token: str, due_at: datetime | None, lease_seconds: float) -> Any:
        """Claim the unit (or resume it at its due time, under the lease it kept); Conflict when
        another worker holds it or it is not there to be taken."""
        raise NotImplementedError

    def renew(self, unit_id: int, lease_token: str, lease_seconds: float) -> bool:
        raise NotImplementedError

    def operation(self, unit: Any) -> Operation:
        raise NotImplementedError

    def where(self, unit: Any) -> aws.Target:
        raise NotImplementedError

    def identity(self, unit: Any) -> str:
        """Who the calls are made for, in the logs and AWS's user agent: the request's reference."""
        raise NotImplementedError

    def resource_id(self, unit: Any) -> str:
        """What AWS works on for the unit (an image id, a bundle id)."""
        raise NotImplementedError

    def working_since(self, unit: Any) -> datetime:
        """Since when AWS works on it (for how long it may not show yet, or be stalled)."""
        raise NotImplementedError

    def counters(self, unit_id: int) -> tuple[int, bool, dict[str, Any]]:
        """The unit's calls so far, whether the last one's outcome is unknown, and its `waiting`."""
        raise NotImplementedError

    def record_call(self, unit: Any, lease_token: str, parameters: dict[str, Any], extra: dict[str, Any]) -> Any:
        raise NotImplementedError

    def settle(self, unit: Any, lease_token: str | None, made: Made, data: dict[str, Any]) -> str | None:
        """What the call made (under the worker's `lease_token`), or what the poller read of it
        (None); may return the ledger's own word for what it recorded."""
        raise NotImplementedError

    def fail(self, unit: Any, lease_token: str | None, failure: dict[str, Any], *, sent: bool) -> None:
        raise NotImplementedError

    def schedule_retry(
        self, unit: Any, lease_token: str, error: dict[str, Any], wait: Wait, lease_seconds: float
    ) -> datetime:
        """The unit waits for AWS until `wait` is over, keeping its lease until a little after."""
        waits = self.retry_verb(
            unit.pk,
            lease_token=lease_token,
            error=error,
            retry_in=wait.seconds,
            lease_seconds=lease_seconds,
            outcome_unknown=wait.outcome_unknown,
            waiting=wait.waiting,
        )
        return waits.next_attempt_at

    def retry_verb(self, unit_id: int, **kwargs: Any) -> Any:
        """The workflow verb that schedules the unit's retry."""
        raise NotImplementedError


class Requests(Ledger):
    """The import, on its request: approved -> submitting (claimed) -> importing (AWS accepted),
    or failed. What it makes is followed by the import's poller (imports.execution)."""

    name = "request"

    def take(self, unit_id: int, *, lease_token: str, due_at: datetime | None, lease_seconds: float) -> ImportRequest:
        if lease_token and due_at is not None:
            return workflow.resume_import(
                request_id=unit_id, lease_token=lease_token, due_at=due_at, lease_seconds=lease_seconds
            )
        state = ImportRequest.objects.filter(pk=unit_id).values_list("state", flat=True).first()
        if state == ImportRequest.State.APPROVED:
            return workflow.claim_for_import(request_id=unit_id, lease_seconds=lease_seconds)
        if state == ImportRequest.State.SUBMITTING:
            return workflow.reclaim_import(request_id=unit_id, lease_seconds=lease_seconds)
        raise workflow.Conflict(f"the request is {state or 'gone'}, not waiting to be imported")

    def retry_verb(self, unit_id: int, **kwargs: Any) -> ImportRequest:
        return workflow.schedule_import_retry(request_id=unit_id, **kwargs)

    def renew(self, unit_id: int, lease_token: str, lease_seconds: float) -> bool:
        return workflow.renew_lease(request_id=unit_id, lease_token=lease_token, lease_seconds=lease_seconds)

    def operation(self, request: ImportRequest) -> Operation:
        from imports.steps.image import IMPORT  # it builds on the workflow, as this module does

        return IMPORT

    def where(self, request: ImportRequest) -> aws.Target:
        return request.target

    def identity(self, request: ImportRequest) -> str:
        return request.reference

    def resource_id(self, request: ImportRequest) -> str:
        return request.aws_image_id

    def working_since(self, request: ImportRequest) -> datetime:
        return request.import_started_at or request.updated_at

    def counters(self, unit_id: int) -> tuple[int, bool, dict[str, Any]]:
        row = ImportRequest.objects.filter(pk=unit_id).values_list("import_calls", "import_call_pending", "waiting")
        return row.get()

    def record_call(
        self, request: ImportRequest, lease_token: str, parameters: dict[str, Any], extra: dict[str, Any]
    ) -> ImportRequest:
        return workflow.record_import_call(
            request_id=request.pk, lease_token=lease_token, parameters=parameters, checks=extra.get("checks", [])
        )

    def settle(self, request: ImportRequest, lease_token: str | None, made: Made, data: dict[str, Any]) -> str | None:
        if lease_token is not None:
            # Whatever AWS says of the image now, the poller follows it from here.
            workflow.record_import_accepted(
                request_id=request.pk, lease_token=lease_token, aws_image_id=made.resource_id, data=data
            )
        elif made.outcome == DONE:
            workflow.record_image_available(request_id=request.pk, data=data)
        elif made.outcome == FAILED:
            workflow.record_image_failed(request_id=request.pk, failure=made.failure, data=data)
        else:
            running = timezone.now() - self.working_since(request)
            if request.stalled_at is None and running > timedelta(hours=settings.PORTAL_STALLED_AFTER_HOURS):
                workflow.record_image_stalled(request_id=request.pk, running_for_hours=running.total_seconds() / 3600)
                return STALLED
        return None

    def fail(self, request: ImportRequest, lease_token: str | None, failure: dict[str, Any], *, sent: bool) -> None:
        if lease_token is None:  # the poller: AWS lost the image
            workflow.record_image_failed(request_id=request.pk, failure=failure, data={})
            return
        workflow.record_import_refused(
            request_id=request.pk, lease_token=lease_token, failure=failure, data={}, sent=sent
        )


class Steps(Ledger):
    """A step of the delivery plan: pending -> running (claimed) -> waiting / tracking -> done,
    or failed; the request's rollout follows its steps."""

    name = "step"

    def take(self, unit_id: int, *, lease_token: str, due_at: datetime | None, lease_seconds: float) -> RolloutStep:
        if lease_token and due_at is not None:
            return workflow.resume_step(
                step_id=unit_id, lease_token=lease_token, due_at=due_at, lease_seconds=lease_seconds
            )
        return workflow.claim_step(step_id=unit_id, lease_seconds=lease_seconds)

    def retry_verb(self, unit_id: int, **kwargs: Any) -> RolloutStep:
        return workflow.schedule_step_retry(step_id=unit_id, **kwargs)

    def renew(self, unit_id: int, lease_token: str, lease_seconds: float) -> bool:
        return workflow.renew_step_lease(step_id=unit_id, lease_token=lease_token, lease_seconds=lease_seconds)

    def operation(self, step: RolloutStep) -> Operation:
        return step.operation

    def where(self, step: RolloutStep) -> aws.Target:
        return aws.in_region(step.request.target, step.region)

    def identity(self, step: RolloutStep) -> str:
        return step.request.reference

    def resource_id(self, step: RolloutStep) -> str:
        return step.resource_id

    def working_since(self, step: RolloutStep) -> datetime:
        return step.updated_at

    def counters(self, unit_id: int) -> tuple[int, bool, dict[str, Any]]:
        return RolloutStep.objects.filter(pk=unit_id).values_list("calls", "call_pending", "waiting").get()

    def record_call(
        self, step: RolloutStep, lease_token: str, parameters: dict[str, Any], extra: dict[str, Any]
    ) -> RolloutStep:
        return workflow.record_step_call(step_id=step.pk, lease_token=lease_token, parameters=parameters)

    def settle(self, step: RolloutStep, lease_token: str | None, made: Made, data: dict[str, Any]) -> str | None:
        kept = {"resource_id": made.resource_id, "resource_state": made.state, "data": data}
        if made.outcome == DONE:
            workflow.record_step_done(step_id=step.pk, lease_token=lease_token, **kept)
        elif made.outcome == FAILED:
            failure = {"message": made.message, "what_to_do": TODO_IN_AWS.format(region=step.region)}
            workflow.record_step_failed(step_id=step.pk, lease_token=lease_token, failure=failure, data=data)
        elif lease_token is not None:
            workflow.record_step_accepted(step_id=step.pk, lease_token=lease_token, **kept)
        else:
            workflow.record_step_polled(step_id=step.pk, resource_state=made.state)
        return None

    def fail(self, step: RolloutStep, lease_token: str | None, failure: dict[str, Any], *, sent: bool) -> None:
        workflow.record_step_failed(step_id=step.pk, lease_token=lease_token, failure=failure, data={}, sent=sent)


REQUESTS, STEPS = Requests(), Steps()
