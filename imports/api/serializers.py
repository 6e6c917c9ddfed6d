"""What the API shows of targets, requests and their history, and the bodies of the actions it
takes on a request (decide, cancel, retry, recheck).

A request is filed through the request form itself (imports.api.views.file_request), not a
serializer: the pages' rules and messages, exactly."""

from collections.abc import Iterable
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from imports.forms import MSG_COMMENT_TOO_LONG
from imports.models import AwsTarget, ImportRequest, RequestEvent
from imports.workflow import Action

MSG_UNKNOWN_FIELD = "The API has no such field here: remove it, or check its name."
DECISIONS = {
    "approve": Action.APPROVE,
    "reject": Action.REJECT,
    "request_changes": Action.REQUEST_CHANGES,
}
# How `actions` names what has an endpoint of its own (/requests/{id}/recheck/); any other action
# by its value, a decision's as the decision endpoint takes it.
ACTION_NAMES = {Action.PREFLIGHT: "recheck"}


def absolute_url(serializer: serializers.Serializer, name: str, pk: int) -> str:
    """A link in a body, absolute as the pages' `next` links are (the call's own scheme and host)."""
    return serializer.context["request"].build_absolute_uri(reverse(name, kwargs={"pk": pk}))


class TargetSerializer(serializers.ModelSerializer):
    class Meta:
        model = AwsTarget
        fields = ["id", "name", "account_id", "region", "byop_allowed", "is_active"]


class TargetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TagSerializer(serializers.Serializer):
    key = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)

    def to_representation(self, instance: dict[str, str]) -> dict[str, str]:
        return {"key": instance["Key"], "value": instance["Value"]}


class RequestSummarySerializer(serializers.Serializer):
    """A row of the list: only the columns selectors.listed_requests reads."""

    id = serializers.IntegerField()
    reference = serializers.CharField()
    url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=ImportRequest.State.choices)
    state_label = serializers.CharField(source="get_state_display")
    rollout = serializers.CharField(help_text="The delivery plan's progress: empty, running, done or incomplete.")
    image_name = serializers.CharField()
    target = TargetRefSerializer()
    requester = serializers.CharField(source="requester.username")
    created_at = serializers.DateTimeField()
    import_stage = serializers.CharField()
    import_progress = serializers.IntegerField(allow_null=True)

    def get_url(self, request: ImportRequest) -> str:
        return absolute_url(self, "api:request_detail", request.pk)


class RequestSerializer(RequestSummarySerializer):
    """One request: its parameters, where it stands, and what the caller may do with it now."""

    version = serializers.IntegerField(help_text="Name it as expected_version in a decision.")
    history_url = serializers.SerializerMethodField()
    approver = serializers.CharField(source="approver.username", allow_null=True, default=None)
    updated_at = serializers.DateTimeField()
    import_path = serializers.CharField()
    windows_version = serializers.CharField()
    ec2_image_id = serializers.CharField()
    ingestion_process = serializers.CharField()
    office = serializers.CharField()
    source_kind = serializers.CharField()
    ec2_import_task_id = serializers.CharField()
    image_build_version_arn = serializers.CharField()
    infrastructure_configuration_arn = serializers.CharField()
    compute_type = serializers.CharField()
    protocol = serializers.CharField()
    image_validation_mode = serializers.CharField()
    image_description = serializers.CharField()
    justification = serializers.CharField()
    tags = TagSerializer(many=True)
    delivery_plan = serializers.JSONField()
    aws_image_id = serializers.CharField()
    preflight = serializers.JSONField(help_text="The latest pre-flight checks and the version they checked.")
    failure = serializers.JSONField()
    warnings = serializers.ListField(child=serializers.CharField())
    actions = serializers.SerializerMethodField(
        help_text="What the caller may do with the request now: a decision (approve, reject, request_changes), "
        "cancel, retry or recheck (each its own endpoint), or edit or revise (on the request's page)."
    )

    def get_history_url(self, request: ImportRequest) -> str:
        return absolute_url(self, "api:request_history", request.pk)

    def get_actions(self, request: ImportRequest) -> list[str]:
        return sorted(ACTION_NAMES.get(action, action.value) for action in self.context["actions"])


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", help_text="A user name, or 'system'.")

    class Meta:
        model = RequestEvent
        fields = ["seq", "created_at", "actor", "action", "from_state", "to_state", "comment", "data"]


def version_field(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text=help_text)


def comment_field(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        error_messages={"max_length": MSG_COMMENT_TOO_LONG},
        help_text=help_text,
    )


class ClosedSerializer(serializers.Serializer):
    """A field the body does not name is refused, not ignored."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = unknown_fields(data, self.fields)
        if unknown:
            raise serializers.ValidationError(unknown)
        return super().to_internal_value(data)


class DecisionSerializer(ClosedSerializer):
    decision = serializers.ChoiceField(choices=list(DECISIONS))
    expected_version = version_field(
        "The request's version the decision was made on: a request changed since is not decided."
    )
    comment = comment_field("Required to reject or request changes: it tells the requester why.")


class ActionSerializer(ClosedSerializer):
    """Cancel or retry, as the request page's button: the version the caller saw, and a comment for
    the history. A field the body does not name is refused, not ignored."""

    expected_version = version_field(
        "The request's version the caller saw (its `version`): a request changed since is left as it is."
    )
    comment = comment_field("Optional: it goes into the request's history with the event.")


class RecheckSerializer(ClosedSerializer):
    """Run the pre-flight checks again: the version the caller saw. The checks record no comment, so
    a comment is refused rather than lost, as is any field the body does not name."""

    expected_version = version_field("The request's version the caller saw: the checks run again on that version only.")


def unknown_fields(data: Any, known: Iterable[str]) -> dict[str, list[str]]:
    """A message for each field of a JSON object that is not among `known`: a misspelt field is
    refused, not ignored."""
    if not isinstance(data, dict):
        return {}
    return {name: [MSG_UNKNOWN_FIELD] for name in sorted(set(data) - set(known))}
