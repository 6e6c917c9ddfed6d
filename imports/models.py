"""The portal's data. No I/O here, and no state changes: those live in imports.workflow."""

import secrets
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from imports import plan, rules
from imports.endpoints import validate_endpoint_url, validate_webhook_url


class AwsTarget(models.Model):
    """An AWS account and region that images are imported into."""

    class Credentials(models.TextChoices):
        DEFAULT_CHAIN = "default", "Default boto3 credential chain"
        ASSUME_ROLE = "assume_role", "Assume an IAM role"

    name = models.CharField(max_length=100, unique=True)
    account_id = models.CharField(
        "AWS account id",
        max_length=12,
        validators=[RegexValidator(r"^[0-9]{12}$", "An AWS account id is exactly 12 digits.")],
    )
    region = models.CharField(
        max_length=32,
        validators=[RegexValidator(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", "Enter a region code such as eu-west-1.")],
    )
    credentials = models.CharField(max_length=16, choices=Credentials.choices, default=Credentials.DEFAULT_CHAIN)
    role_arn = models.CharField(
        "IAM role ARN",
        max_length=2048,
        blank=True,
        validators=[
            RegexValidator(
                r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$",
                "Enter a role ARN such as arn:aws:iam::123456789012:role/WorkSpacesImport.",
            )
        ],
    )
    external_id = models.CharField("external id", max_length=1224, blank=True)
    endpoint_url = models.URLField(
        "endpoint URL",
        blank=True,
        validators=[validate_endpoint_url],
        help_text=(
            "Leave empty for AWS's own endpoints. Otherwise an https AWS endpoint (a VPC endpoint, say), "
            "or, where development allows it, the local AWS sandbox."
        ),
    )
    byop_allowed = models.BooleanField(
        "BYOP allowed",
        default=False,
        help_text="The account is allow-listed for WorkSpaces Core bring-your-own-protocol processes.",
    )
    is_active = models.BooleanField("active", default=True)
    # The approval policy: how many distinct approvers must approve a request for this target
    # (the quorum), and which groups they come from (none: anyone in Approvers).
    approvals_required = models.PositiveSmallIntegerField(
        "approvals required",
        default=1,
        db_default=1,
        validators=[MinValueValidator(1), MaxValueValidator(rules.MAX_APPROVALS_REQUIRED)],
        help_text="Distinct approvers who must each approve the same version before the import starts.",
    )
    approver_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="approvable_targets",
        verbose_name="approver groups",
        help_text="Only approvers in one of these groups decide requests for this target. None: every approver.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The account's Windows AMIs, for the request form to suggest, as a worker last listed them
    # ([{"image_id", "name", "created"}]): the web process never waits on AWS for them.
    ami_offers = models.JSONField(
        default=list, blank=True, db_default=models.Value([], output_field=models.JSONField())
    )
    ami_offers_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credentials="default") | ~Q(role_arn=""),
                name="awstarget_role_arn_when_assuming",
                violation_error_message="Enter the IAM role ARN to assume.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id}, {self.region})"

    def clean(self) -> None:
        assumes_role = self.credentials == self.Credentials.ASSUME_ROLE and self.role_arn
        if assumes_role and self.role_arn.split(":")[4:5] != [self.account_id]:
            raise ValidationError({"role_arn": "The role must belong to the target's account id."})


class RequestState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    SUBMITTING = "submitting", "Submitting to AWS"
    IMPORTING = "importing", "Importing"
    AVAILABLE = "available", "Available"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


# A request in one of these holds an image (once AWS named it) that takes a slot of the account's
# image quota: being imported, imported, or failed and not yet deleted (an ERROR image stays until
# the request is revised). The dashboard's quota chart and the images per region count them.
HOLDS_AN_IMAGE = [RequestState.IMPORTING, RequestState.AVAILABLE, RequestState.FAILED]


class ImportRequest(models.Model):
    State = RequestState

    # A request in one of these no longer holds its image name.
    ENDED_STATES = (State.REJECTED, State.CANCELLED, State.FAILED)

    # No index of their own on target, requester and state: each leads an index in Meta.indexes.
    target = models.ForeignKey(AwsTarget, on_delete=models.PROTECT, related_name="requests", db_index=False)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="import_requests", db_index=False
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approved_import_requests",
    )
    state = models.CharField(max_length=32, choices=State.choices, default=State.SUBMITTED)
    # Bumped by every edit: a decision names the version its maker saw, so nobody approves
    # parameters that changed under them.
    version = models.PositiveIntegerField(default=1)

    # Which AWS call imports the image: ImportWorkspaceImage (classic) or ImportCustomWorkspaceImage.
    import_path = models.CharField(
        max_length=16,
        choices=rules.IMPORT_PATH_CHOICES,
        default=rules.ImportPath.CLASSIC,
        db_default=rules.ImportPath.CLASSIC.value,
    )
    windows_version = models.CharField(max_length=2, choices=rules.WINDOWS_CHOICES)
    # The classic path's source, and the Image Builder path's when its source is an AMI.
    ec2_image_id = models.CharField("source AMI", max_length=21, blank=True)
    # The classic path only.
    ingestion_process = models.CharField(
        max_length=32, choices=[(p.value, p.label) for p in rules.INGESTION_PROCESSES.values()], blank=True
    )
    # The Image Builder path only (empty on classic requests).
    source_kind = models.CharField(
        "source", max_length=16, choices=rules.SOURCE_CHOICES, blank=True, default="", db_default=""
    )
    ec2_import_task_id = models.CharField("VM import task", max_length=28, blank=True, default="", db_default="")
    image_build_version_arn = models.CharField(
        "Image Builder image version", max_length=rules.ARN_MAX, blank=True, default="", db_default=""
    )
    infrastructure_configuration_arn = models.CharField(
        "Image Builder infrastructure configuration", max_length=rules.ARN_MAX, blank=True, default="", db_default=""
    )
    compute_type = models.CharField(
        max_length=16, choices=rules.COMPUTE_TYPE_CHOICES, blank=True, default="", db_default=""
    )
    protocol = models.CharField(max_length=8, choices=rules.PROTOCOL_CHOICES, blank=True, default="", db_default="")
    image_validation_mode = models.CharField(
        "image validation", max_length=20, choices=rules.VALIDATION_MODE_CHOICES, blank=True, default="", db_default=""
    )
    image_name = models.CharField(max_length=rules.IMAGE_NAME_MAX)
    image_description = models.CharField(max_length=rules.IMAGE_DESCRIPTION_MAX)
    tags = models.JSONField(default=list, blank=True)
    office = models.CharField("Microsoft Office", max_length=32, choices=rules.OFFICE_CHOICES, blank=True)
    justification = models.TextField(max_length=4000)

    aws_image_id = models.CharField("WorkSpaces image id", max_length=32, blank=True)
    failure = models.JSONField(default=dict, blank=True)
    # The failures of earlier attempts, oldest first ({"failure": {...}, "version": n, "at": iso}),
    # so that what went wrong stays in sight while the next attempt runs.
    earlier_failures = models.JSONField(
        default=list, blank=True, db_default=models.Value([], output_field=models.JSONField())
    )
    # A failed image this request made, to be deleted from WorkSpaces before the next import
    # (it holds the name and a slot of the account's image quota).
    stale_image_id = models.CharField(max_length=32, blank=True, default="", db_default="")
    # The latest pre-flight checks: {"version": n, "ran_at": iso, "passed": bool, "checks": [...]}.
    preflight = models.JSONField(default=dict, blank=True)
    # ImportWorkspaceImage calls made since the last approval: more than none means an earlier
    # attempt may have reached AWS, so the image is looked for before any new call.
    import_calls = models.PositiveIntegerField(default=0)
    # Until when the worker that claimed the import owns it; after that the sweeper takes over.
    # The worker renews it while it works; `lease_token` fences a worker that lost its lease
    # (paused, or taken over) out of every later write.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="", db_default="")
    # An import call was recorded whose outcome the portal does not know (the worker died, or
    # AWS did not answer): the image is looked for by name before anything is sent again.
    import_call_pending = models.BooleanField(default=False, db_default=False)
    # New columns have database defaults too, so that rows written by the previous release while
    # this one's migration runs (a rolling deploy) stay valid.
    # When a waiting import is tried next, and why it waits:
    # {"reason": "rate" | "transient", "message": str, "error": {...}, "since": iso, "attempts": n}.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    waiting = models.JSONField(default=dict, blank=True, db_default=models.Value({}, output_field=models.JSONField()))
    # When the broker last accepted a message for this request's pending work: the sweeper
    # sends it again only when that message can no longer be on its way.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # When the status tracker last asked AWS about the image: each pass starts with the oldest.
    polled_at = models.DateTimeField(null=True, blank=True)
    # Since when the current version waits for a decision, and when its approvers were reminded
    # and it was escalated (PORTAL_REMIND_AFTER_HOURS, PORTAL_ESCALATE_AFTER_HOURS): once each
    # per version, as a new version waits afresh.
    decision_asked_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    import_started_at = models.DateTimeField(null=True, blank=True)
    stalled_at = models.DateTimeField(null=True, blank=True)
    # The Image Builder path's progress, as DescribeCustomWorkspaceImageImport last told it:
    # the stage, its message, the percentage, when AWS was asked, and each stage seen
    # ([{"stage", "at", "progress"}], oldest first).
    import_stage = models.CharField(max_length=32, blank=True, default="", db_default="")
    import_stage_message = models.CharField(max_length=1000, blank=True, default="", db_default="")
    import_progress = models.PositiveSmallIntegerField(null=True, blank=True)
    progress_checked_at = models.DateTimeField(null=True, blank=True)
    import_stages = models.JSONField(
        default=list, blank=True, db_default=models.Value([], output_field=models.JSONField())
    )

    # What happens after the import, approved with it (imports.plan.plan_violations): a bundle, copies
    # to other regions of the account, sharing with other accounts. {} when nothing.
    # {"bundle": {"name", "description", "compute_type", "root_gb", "user_gb"},
    #  "copies": [{"region", "bundle": bool}], "shares": [{"account_id", "region"}]}
    delivery_plan = models.JSONField(
        "delivery plan", default=dict, blank=True, db_default=models.Value({}, output_field=models.JSONField())
    )
    # How the plan's steps stand (imports.steps), kept with every step's change so that the
    # list can filter on it: "" (no plan, or not started), running, done, incomplete.
    rollout = models.CharField(max_length=16, choices=rules.ROLLOUT_CHOICES, blank=True, default="", db_default="")

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list, its filters and the approvals queue read (created_at, id) pages, each after
        # an equality on at most one of these (imports.paging); a b-tree is read either way.
        # Search has trigram indexes on PostgreSQL, made by migration 0010 outside the model
        # state (they would not build on SQLite).
        indexes = [
            models.Index(fields=["created_at", "id"], name="request_created"),
            models.Index(fields=["state", "created_at", "id"], name="request_state_created"),
            models.Index(fields=["target", "created_at", "id"], name="request_target_created"),
            models.Index(fields=["requester", "created_at", "id"], name="request_requester_created"),
            # The approvals queue counted for one approver (selectors.approval_queue): the
            # requests waiting for a decision, by target and requester, with what a check of
            # the approver's own approvals needs, read from the index alone.
            models.Index(
                fields=["target", "requester", "id", "version"],
                condition=Q(state="submitted"),
                name="request_awaiting_decision",
            ),
            # The dashboard's count of decisions overdue (reminded) and escalated: the few
            # requests waiting past PORTAL_REMIND_AFTER_HOURS, not every one waiting.
            models.Index(
                fields=["escalated_at"],
                condition=Q(state="submitted", reminded_at__isnull=False),
                name="request_overdue",
            ),
            # "Rollout incomplete": few rows among many, so only those are indexed.
            models.Index(
                fields=["created_at", "id"],
                condition=Q(rollout__in=[rules.Rollout.RUNNING.value, rules.Rollout.INCOMPLETE.value]),
                name="request_rollout_open",
            ),
            # The images held per target (charts.holds_an_image; about 7 requests in 10 at
            # scale): counted from this index alone, not by reading every request.
            models.Index(
                fields=["target"],
                condition=Q(state__in=HOLDS_AN_IMAGE) & ~Q(aws_image_id=""),
                name="request_holds_image",
            ),
        ]
        permissions = [("approve_importrequest", "Can approve, reject, send back or retry import requests")]
        constraints = [
            models.CheckConstraint(
                condition=Q(approver__isnull=True) | ~Q(approver=F("requester")),
                name="importrequest_approver_is_not_requester",
            ),
            models.UniqueConstraint(
                fields=["target", "image_name"],
                condition=~Q(state__in=[RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED]),
                name="importrequest_unique_live_image_name",
                violation_error_message="Another open request for this target already uses this image name.",
            ),
            models.CheckConstraint(
                condition=Q(state__in=RequestState.values),
                name="importrequest_state_is_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.image_name}"

    @property
    def reference(self) -> str:
        return format_reference(self.pk)

    @property
    def process(self) -> rules.IngestionProcess | None:
        return rules.INGESTION_PROCESSES.get(self.ingestion_process)

    @property
    def via_image_builder(self) -> bool:
        return self.import_path == rules.ImportPath.IMAGE_BUILDER

    @property
    def stage_label(self) -> str:
        return rules.stage_label(self.import_stage) if self.import_stage else ""

    @property
    def stage_history(self) -> list[dict[str, Any]]:
        """The stages seen, each with its plain words and when it was first seen."""
        return [
            {**entry, "label": rules.stage_label(entry.get("stage", "")), "at": datetime.fromisoformat(entry["at"])}
            for entry in self.import_stages
            if entry.get("at")
        ]

    @property
    def source_value(self) -> str:
        """What the image is imported from: the AMI, the VM import task or the image version."""
        if not self.via_image_builder or self.source_kind == rules.SOURCE_AMI:
            return self.ec2_image_id
        if self.source_kind == rules.SOURCE_IMPORT_TASK:
            return self.ec2_import_task_id
        return self.image_build_version_arn

    @property
    def preflight_is_current(self) -> bool:
        return self.preflight.get("version") == self.version

    @property
    def preflight_ran_at(self) -> datetime | None:
        ran_at = self.preflight.get("ran_at")
        return datetime.fromisoformat(ran_at) if ran_at else None

    @property
    def preflight_passed(self) -> bool:
        return self.preflight_is_current and bool(self.preflight.get("passed"))

    @property
    def warnings(self) -> list[str]:
        advice = rules.warnings_for(ingestion_process=self.ingestion_process, office=self.office)
        return [*advice, *plan.plan_warnings(self.delivery_plan)]

    def aws_parameters(self) -> dict[str, Any]:
        """The parameters of the import call this request asks for (ImportWorkspaceImage, or
        ImportCustomWorkspaceImage on the Image Builder path), before the portal's own tags."""
        if self.via_image_builder:
            return self._image_builder_parameters()
        params: dict[str, Any] = {
            "Ec2ImageId": self.ec2_image_id,
            "IngestionProcess": self.ingestion_process,
            "ImageName": self.image_name,
            "ImageDescription": self.image_description,
        }
        if self.tags:
            params["Tags"] = [{"Key": t["Key"], "Value": t["Value"]} for t in self.tags]
        if self.office:
            params["Applications"] = [self.office]
        return params

    def _image_builder_parameters(self) -> dict[str, Any]:
        source_member = {
            rules.SOURCE_AMI: "Ec2ImageId",
            rules.SOURCE_IMPORT_TASK: "Ec2ImportTaskId",
            rules.SOURCE_IMAGE_VERSION: "ImageBuildVersionArn",
        }[self.source_kind]
        params: dict[str, Any] = {
            "ImageName": self.image_name,
            "ImageDescription": self.image_description,
            "ComputeType": self.compute_type,
            "Protocol": self.protocol,
            "ImageSource": {source_member: self.source_value},
            "InfrastructureConfigurationArn": self.infrastructure_configuration_arn,
            "Platform": "WINDOWS",
            "OsVersion": f"Windows_{self.windows_version}",
        }
        if self.tags:
            params["Tags"] = [{"Key": t["Key"], "Value": t["Value"]} for t in self.tags]
        if self.image_validation_mode:
            params["ImageValidationMode"] = self.image_validation_mode
        return params


def format_reference(pk: int | None) -> str:
    return f"IMP-{pk:06d}" if pk else "IMP-(new)"


class EventAction(models.TextChoices):
    SUBMIT = "submit", "Submitted"
    EDIT = "edit", "Edited and resubmitted"
    APPROVE = "approve", "Approved"
    # One approver's approval of a version, while the target's quorum is not reached yet.
    APPROVAL = "approval", "Approved (more approvals needed)"
    # Driven by beat: nobody decided in time.
    REMIND = "remind", "Approvers reminded: no decision yet"
    ESCALATE = "escalate", "Escalated: no decision yet"
    REJECT = "reject", "Rejected"
    REQUEST_CHANGES = "request_changes", "Sent back for changes"
    CANCEL = "cancel", "Cancelled"
    RETRY = "retry", "Retried the import"
    REVISE = "revise", "Revised after a failed import"
    # Driven by the worker, never by a person.
    CLAIM = "claim", "Claimed for import"
    AWS_ACCEPTED = "aws_accepted", "Accepted by AWS"
    AWS_REFUSED = "aws_refused", "Refused by AWS"
    IMPORT_STOPPED = "import_stopped", "Stopped before anything was sent to AWS"
    IMAGE_AVAILABLE = "image_available", "Image available"
    IMAGE_FAILED = "image_failed", "Image import failed"
    # Events that record a step without changing the state.
    PREFLIGHT = "preflight", "Pre-flight checks ran"
    IMPORT_CALL = "import_call", "Asked AWS to import the image"
    IMPORT_RETRY = "import_retry", "Import will be tried again"
    RECLAIM = "reclaim", "Import attempt resumed"
    IMAGE_STALLED = "image_stalled", "Import is taking unusually long"
    IMAGE_DELETED = "image_deleted", "Deleted the failed image of an earlier attempt"
    # The delivery plan's steps (imports.steps): each event's data names the step.
    STEP_CALL = "step_call", "Asked AWS for a rollout step"
    STEP_ACCEPTED = "step_accepted", "Rollout step accepted by AWS"
    STEP_RETRY = "step_retry", "Rollout step will be tried again"
    STEP_DONE = "step_done", "Rollout step done"
    STEP_FAILED = "step_failed", "Rollout step failed"
    STEP_RETRIED = "step_retried", "Retried a rollout step"


# Each action's label, read once: get_action_display() builds a dict of every action's label on
# each call, and a request's page shows 50 events.
ACTION_LABELS: dict[str, str] = dict(EventAction.choices)


class RequestEvent(models.Model):
    """One line of the append-only audit history. The database refuses UPDATE and DELETE
    (triggers from migration 0002); `hash` is the MAC that chains every event to the one before
    it, under the key `key_id` names (imports.audit; empty for events from before keys)."""

    # Indexed by (request, seq) below, which serves the foreign key as well.
    request = models.ForeignKey(ImportRequest, on_delete=models.PROTECT, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField("sequence", unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Who acted, as they were named then: renaming the user later changes no past event.
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=EventAction.choices)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32)
    comment = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["seq"]
        # A request's history, and the admin's search for what one user did.
        indexes = [
            models.Index(fields=["request", "seq"]),
            models.Index(fields=["actor_username", "seq"], name="event_actor"),
            # A request's approval and availability (2 events in about 10; a rollout adds more
            # after them): the dashboard's weekly chart reads them from this index alone, and a
            # request's page its latest availability without walking back through its history.
            models.Index(
                fields=["request", "action", "created_at"],
                condition=Q(action__in=[EventAction.APPROVE, EventAction.IMAGE_AVAILABLE]),
                name="event_milestone",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} #{self.seq} {self.action}"

    @property
    def from_state_label(self) -> str:
        return RequestState(self.from_state).label if self.from_state else "new"

    @property
    def to_state_label(self) -> str:
        return RequestState(self.to_state).label

    @property
    def action_label(self) -> str:
        """What get_action_display() says: the action's label, or the action itself if unknown."""
        return ACTION_LABELS.get(self.action, self.action)

    @property
    def actor_name(self) -> str:
        if self.actor_username:
            return self.actor_username
        # Events from before usernames were recorded.
        return self.actor.get_username() if self.actor_id else "system"


class RolloutStep(models.Model):
    """One AWS operation of a request's delivery plan (a bundle, a copy, a share), run by the
    step engine (imports.steps) after the image is AVAILABLE: its own state, lease, attempts
    and failure, so that a failed step neither undoes nor holds up the others."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        RUNNING = "running", "Calling AWS"
        WAITING = "waiting", "Waiting to try again"
        TRACKING = "tracking", "AWS is working on it"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.PENDING, State.RUNNING, State.WAITING, State.TRACKING)

    request = models.ForeignKey(ImportRequest, on_delete=models.PROTECT, related_name="steps", db_index=False)
    position = models.PositiveSmallIntegerField()
    # The operation (imports.steps.OPERATIONS), and the region it runs in.
    kind = models.CharField(max_length=16)
    region = models.CharField(max_length=32)
    # The step whose result this one needs (a copy, for the bundle and shares in its region);
    # none: the request's own image.
    depends_on = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="dependents")
    # The call's parameters as approved, without the image id (known only once made).
    parameters = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # What the step made in AWS (a bundle or image id), and AWS's last word on it.
    resource_id = models.CharField(max_length=64, blank=True)
    resource_state = models.CharField(max_length=32, blank=True)
    calls = models.PositiveIntegerField(default=0)
    # A call went out whose outcome is unknown: look for what it made before calling again.
    call_pending = models.BooleanField(default=False)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Why it waits: {"message", "since", "attempts"}.
    waiting = models.JSONField(default=dict, blank=True)
    failure = models.JSONField(default=dict, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "position"]
        constraints = [
            models.UniqueConstraint(fields=["request", "position"], name="rolloutstep_unique_position"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "running", "waiting", "tracking", "done", "failed"]),
                name="rolloutstep_state_is_known",
            ),
        ]
        # The engine's sweeps and polls look for the few steps still active.
        indexes = [
            models.Index(
                fields=["state", "updated_at"],
                condition=Q(state__in=["pending", "running", "waiting", "tracking"]),
                name="rolloutstep_active",
            )
        ]

    def __str__(self) -> str:
        return f"{format_reference(self.request_id)} step {self.position} ({self.kind} in {self.region})"

    @property
    def operation(self) -> Any:
        from imports.steps import OPERATIONS  # the operations read these rows

        return OPERATIONS[self.kind]

    @property
    def label(self) -> str:
        """What the step does, in plain words ("Bundle ... in eu-west-1")."""
        return self.operation.label(self)

    @property
    def console_url(self) -> str:
        return self.operation.console_url(self)


class AdminEvent(models.Model):
    """One line of the append-only admin history: a change to a target, a user, a group or a
    membership, whoever made it and however (imports.admin_history). Chained and sealed like
    the request history, in a chain of its own; the database refuses UPDATE and DELETE."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"
        ADDED = "added", "Added to"
        REMOVED = "removed", "Removed from"

    seq = models.PositiveBigIntegerField("sequence", unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A plain id, not a foreign key: deleting a user must not need, or erase, their history.
    actor_id = models.PositiveBigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["object_type", "-seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type} {self.object_repr}"

    @property
    def actor_name(self) -> str:
        return self.actor_username or "system"


class AuditChainHead(models.Model):
    """The newest event's seq and hash of each chain: row 1 the request history, row 2 the admin
    history. Appending locks the chain's row, so a chain never forks."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id__in=[1, 2]), name="auditchainhead_one_row_per_chain")]

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"


class AuditAnchor(models.Model):
    """Where the portal anchored its chain heads outside the database (imports.anchor). Only a
    note of what was written: verification reads the anchors from the bucket itself."""

    written_at = models.DateTimeField(default=timezone.now)
    object_key = models.CharField(max_length=1024, unique=True)
    version_id = models.CharField(max_length=1024, blank=True)
    request_seq = models.PositiveBigIntegerField()
    admin_seq = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["-written_at"]
        get_latest_by = "written_at"

    def __str__(self) -> str:
        return self.object_key


class JobLock(models.Model):
    """A named lock with an expiry, so a periodic job runs once at a time even when two beat
    processes send it (imports.locks)."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=32, blank=True)
    locked_until = models.DateTimeField()
    last_started_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} until {self.locked_until:%Y-%m-%d %H:%M:%S}"


class AccountRateLimit(models.Model):
    """A token bucket per AWS account, shared by every process that calls AWS (imports.ratelimit)."""

    account_id = models.CharField(max_length=12, primary_key=True)
    tokens = models.FloatField()
    refilled_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id}: {self.tokens:.2f} tokens"


class AuditExport(models.Model):
    """One CSV of the request history, built by a worker into a file under PORTAL_EXPORT_DIR
    (imports.exports): who asked, which events, and how far the build got."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being written"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The filters; all empty: the whole history.
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    target = models.ForeignKey(AwsTarget, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    request = models.ForeignKey(ImportRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    rows = models.PositiveBigIntegerField(default=0)
    # The request chain's head when the build started: the file covers events up to it.
    head_seq = models.PositiveBigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True)
    # The file's name inside PORTAL_EXPORT_DIR, once it is complete.
    file_name = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["requested_by", "-created_at"])]

    def __str__(self) -> str:
        return f"audit export #{self.pk} ({self.state})"

    @property
    def is_filtered(self) -> bool:
        return bool(self.date_from or self.date_to or self.target_id or self.request_id)


class Approval(models.Model):
    """One approver's approval of one version of a request. A target's quorum counts the
    distinct approvers of the request's current version; an edit makes a new version, which
    nobody has approved yet. The database refuses a second approval by the same person of the
    same version, and an approval by the request's own requester (`requester` is the request's,
    checked on insert by a trigger: migration 0013)."""

    # Indexed by the unique constraint below, which leads with it.
    request = models.ForeignKey(ImportRequest, on_delete=models.PROTECT, related_name="approvals", db_index=False)
    version = models.PositiveIntegerField()
    # Whose approval it is, and who gave it: the approver, or their stand-in (Delegation).
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "version", "approver"], name="approval_once_per_version"),
            # One person, one approval of a version: a stand-in who approved for someone does
            # not approve again for themselves (or for another), and the other way round.
            models.UniqueConstraint(fields=["request", "version", "decided_by"], name="approval_one_per_person"),
            models.CheckConstraint(condition=~Q(approver=F("requester")), name="approval_not_by_requester"),
            models.CheckConstraint(condition=~Q(decided_by=F("requester")), name="approval_not_given_by_requester"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} v{self.version} approved by {self.approver_id}"


class DelegationQuerySet(models.QuerySet):
    def in_force(self) -> "DelegationQuerySet":
        """Stand-ins not revoked whose days include today (in the portal's time zone)."""
        today = timezone.localdate()
        return self.filter(revoked_at__isnull=True, starts_on__lte=today, ends_on__gte=today)


class Delegation(models.Model):
    """An approver's stand-in for a range of days: meanwhile the stand-in (an approver too) also
    decides the requests the approver may decide, each decision recorded as "by the stand-in
    for the approver". Revoked, or past its last day, it gives nothing."""

    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stand_ins")
    stand_in = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="standing_in_for")
    # The first and last day, in the portal's time zone (TIME_ZONE), both included.
    starts_on = models.DateField()
    ends_on = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = DelegationQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_on", "-id"]
        indexes = [models.Index(fields=["stand_in", "ends_on"], name="delegation_stand_in")]
        constraints = [
            models.CheckConstraint(condition=~Q(stand_in=F("approver")), name="delegation_not_to_oneself"),
            models.CheckConstraint(condition=Q(ends_on__gte=F("starts_on")), name="delegation_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.stand_in_id} for {self.approver_id}, {self.starts_on} to {self.ends_on}"


class WebhookEvent(models.TextChoices):
    """What a webhook can be told about a request."""

    SUBMITTED = "submitted", "Submitted or resubmitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    IMPORT_AVAILABLE = "import_available", "Import available"
    IMPORT_FAILED = "import_failed", "Import failed"
    IMPORT_STALLED = "import_stalled", "Import stalled"
    ROLLOUT_FINISHED = "rollout_finished", "Rollout finished"
    OVERDUE = "overdue", "Decision overdue or escalated"


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookSubscription(models.Model):
    """A URL told about a target's requests (set by admins) or about the requests its owner may
    see (set by the owner). The secret signs generic deliveries, so it is kept as it is (an
    HMAC needs it): shown once, never listed, logged or recorded in the admin history."""

    class Kind(models.TextChoices):
        GENERIC = "generic", "Signed JSON webhook"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams incoming webhook"

    name = models.CharField(max_length=100)
    target = models.ForeignKey(AwsTarget, on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="webhooks"
    )
    url = models.URLField("URL", max_length=1000, validators=[validate_webhook_url])
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.GENERIC)
    events = models.JSONField(default=list, help_text="The events it is told about.")
    secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(target__isnull=False, owner__isnull=True) | Q(target__isnull=True, owner__isnull=False),
                name="webhook_of_a_target_or_a_user",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        unknown = set(self.events) - set(WebhookEvent.values) if isinstance(self.events, list) else {"?"}
        if unknown or not self.events:
            raise ValidationError({"events": f"Choose one or more of: {', '.join(WebhookEvent.values)}."})

    @property
    def destination(self) -> str:
        """The URL's scheme and host: what lists show (a Slack or Teams URL carries its own secret)."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


class WebhookDelivery(models.Model):
    """One event for one subscription: its body (the same on every attempt), the id receivers
    deduplicate on, and where its attempts stand."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        STOPPED = "stopped", "Stopped: refused, or no longer to be sent"
        FAILED = "failed", "Failed: gave up after retrying"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    request = models.ForeignKey(ImportRequest, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(RequestEvent, on_delete=models.PROTECT, related_name="+")
    event_name = models.CharField(max_length=32, choices=WebhookEvent)
    # Sent as X-Portal-Event-Id: the same on every attempt, so a receiver can drop repeats.
    uid = models.UUIDField("event id", default=uuid.uuid4, unique=True, editable=False)
    body = models.TextField()
    outcome = models.CharField(max_length=10, choices=Outcome, default=Outcome.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event", "event_name"], name="webhook_delivery_once")
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(outcome="pending"), name="webhook_delivery_due")
        ]

    def __str__(self) -> str:
        return f"{self.event_name} to {self.subscription_id}"


class WebhookAttempt(models.Model):
    """One attempt at a delivery, and what came of it: the delivery log."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Will try again"
        STOPPED = "stopped", "Stopped"
        FAILED = "failed", "Gave up"

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.started_at:%Y-%m-%d %H:%M:%S}: {self.outcome}"
