"""What the OpenAPI document says beyond what drf-spectacular reads from the views: the body of a
new request, made from the request form itself (so the document and the page never disagree on
a field), the error shape, and request bodies closed to fields they do not name."""

from typing import Any

from django import forms
from django.utils.html import strip_tags
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

# The request bodies whose every field the API checks: a field they do not name is refused.
CLOSED_BODIES = ("NewRequestRequest", "DecisionRequest", "ActionRequest", "RecheckRequest", "TagRequest")


def field_for(form_field: forms.Field) -> serializers.Field:
    """The JSON field (type, choices, whether required) of one of a form's fields."""
    common: dict[str, Any] = {
        "required": form_field.required,
        "help_text": strip_tags(str(form_field.help_text or form_field.label or "")),
    }
    if isinstance(form_field, forms.BooleanField):
        return serializers.BooleanField(**common)
    if isinstance(form_field, forms.ModelChoiceField):
        return serializers.IntegerField(**common)
    if isinstance(form_field, forms.IntegerField):
        return serializers.IntegerField(allow_null=not form_field.required, **common)
    if isinstance(form_field, forms.ChoiceField):
        choices = [(value, label) for value, label in form_field.choices if value != ""]
        return serializers.ChoiceField(choices=choices, allow_blank=not form_field.required, **common)
    return serializers.CharField(
        allow_blank=not form_field.required, max_length=getattr(form_field, "max_length", None), **common
    )


def serializer_of_form(form: forms.BaseForm, name: str, **extra: serializers.Field) -> serializers.Serializer:
    """A serializer that describes `form`'s fields, for the document only: the form validates."""
    fields = {field_name: field_for(field) for field_name, field in form.fields.items()}
    return inline_serializer(name=name, fields=fields | extra)


ERROR = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(help_text="Stable: invalid, not_found, permission_denied, conflict, ..."),
                "message": serializers.CharField(help_text="For a person: what went wrong and what to do next."),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()),
                    required=False,
                    help_text="Only for invalid input: each field's messages (a tag's as tags[0].key).",
                ),
            },
        )
    },
)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses an operation may give, besides the ones every operation may."""
    return {status: OpenApiResponse(ERROR) for status in (*statuses, 401, 429)}


def closed_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the API refuses a field a body does not name, and the
    document says so (additionalProperties: false)."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_BODIES:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
