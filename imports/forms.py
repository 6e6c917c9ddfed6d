"""Input and validation only. The rules themselves live in imports.rules."""

import re
from collections.abc import Callable
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Field, Fieldset, Layout
from django import forms
from django.core.exceptions import ValidationError

from imports import rules
from imports.models import AwsTarget, ImportRequest

MSG_NAME_IN_USE = "Another open request for this target already uses this image name: choose a different image name."
MSG_COMMENT_TOO_LONG = "Keep the comment under 2,000 characters."
MSG_STALE_FORM = "This form was damaged or is out of date: reload the page and try again."


def aws_text_rule(pattern: re.Pattern[str], max_length: int, message: str) -> Callable[[str], None]:
    """One validator, one message, for an AWS text parameter: its length limit and its whole
    pattern (fullmatch, as `$` alone would also accept a final newline)."""

    def validate(value: str) -> None:
        if len(value) > max_length or not pattern.fullmatch(value):
            raise ValidationError(message, code="invalid")

    return validate


class ImportRequestForm(forms.ModelForm):
    target = forms.ModelChoiceField(
        queryset=AwsTarget.objects.filter(is_active=True),
        label="AWS target",
        help_text="The AWS account and region the image is imported into.",
        empty_label="Choose a target…",
    )
    ec2_image_id = forms.CharField(
        label="Source AMI",
        validators=[aws_text_rule(rules.EC2_IMAGE_ID_RE, 21, rules.MSG_AMI_FORMAT)],
        help_text="The licensed Windows EC2 image (AMI) in the target account and region, e.g. ami-0123456789abcdef0.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    image_name = forms.CharField(
        validators=[aws_text_rule(rules.IMAGE_NAME_RE, rules.IMAGE_NAME_MAX, rules.MSG_IMAGE_NAME_FORMAT)],
        help_text="Up to 64 letters, digits and _ . / ( ) -. No spaces.",
    )
    image_description = forms.CharField(
        validators=[
            aws_text_rule(rules.IMAGE_DESCRIPTION_RE, rules.IMAGE_DESCRIPTION_MAX, rules.MSG_IMAGE_DESCRIPTION_FORMAT)
        ],
        help_text="Up to 256 letters, digits, spaces and _ . / ( ) -.",
    )
    justification = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this image is needed: the approver reads this.",
    )

    class Meta:
        model = ImportRequest
        fields = [
            "target",
            "windows_version",
            "ec2_image_id",
            "ingestion_process",
            "office",
            "image_name",
            "image_description",
            "justification",
        ]
        help_texts = {
            "windows_version": "The Windows version installed on the AMI. Windows 11 needs WSP (DCV) or BYOP.",
            "ingestion_process": (
                "The streaming protocol and the kind of bundle the image is for. PCoIP works with "
                "Windows 10 only; BYOP needs a target allow-listed for WorkSpaces Core; Graphics and "
                "GraphicsPro bundles are retired by AWS."
            ),
            "office": (
                "Optional Microsoft Office subscription installed during the import. Microsoft ended support "
                f"for Office 2016 and 2019 on {rules.OFFICE_END_OF_SUPPORT}."
            ),
        }

    def __init__(self, *args: Any, amis: dict[int, list[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.amis = amis or {}
        chosen = self["target"].value() or next(iter(self.amis), None)
        if chosen:
            self.fields["ec2_image_id"].widget.attrs["list"] = f"amis-{chosen}"
        self.fields["ingestion_process"].choices = [("", "Choose a process…")] + [
            (p.value, f"{p.label} — {p.value}") for p in rules.INGESTION_PROCESSES.values()
        ]
        self.fields["windows_version"].choices = [("", "Choose a version…"), *rules.WINDOWS_CHOICES]
        self.fields["office"].choices = [
            (value, f"{label} (support ended {rules.OFFICE_END_OF_SUPPORT})" if value else label)
            for value, label in rules.OFFICE_CHOICES
        ]
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout(
            Fieldset("Where from and where to", "target", "ec2_image_id", "windows_version"),
            Fieldset("How to import", "ingestion_process", "office"),
            Fieldset("The WorkSpaces image", "image_name", "image_description"),
            Fieldset("For the approver", Field("justification")),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        target = cleaned.get("target")
        for violation in rules.combination_violations(
            windows_version=cleaned.get("windows_version", ""),
            ingestion_process=cleaned.get("ingestion_process", ""),
            office=cleaned.get("office", ""),
            byop_allowed=bool(target and target.byop_allowed),
        ):
            if violation.field not in self.errors:
                self.add_error(violation.field, violation.message)
        name = cleaned.get("image_name")
        if target and name and self._name_in_use(target, name):
            self.add_error("image_name", MSG_NAME_IN_USE)
        return cleaned

    def _name_in_use(self, target: AwsTarget, name: str) -> bool:
        live = ImportRequest.objects.filter(target=target, image_name=name).exclude(
            state__in=ImportRequest.ENDED_STATES
        )
        if self.instance.pk:
            live = live.exclude(pk=self.instance.pk)
        return live.exists()

    def validate_unique(self) -> None:
        # The model's unique-constraint check would repeat clean()'s with a vaguer message;
        # the workflow and the database enforce it again when the request is saved.
        return


class TagForm(forms.Form):
    key = forms.CharField(
        label="Tag key",
        max_length=rules.TAG_KEY_MAX,
        required=False,
        strip=False,
        error_messages={"max_length": rules.MSG_TAG_KEY_LENGTH},
    )
    value = forms.CharField(
        label="Tag value",
        max_length=rules.TAG_VALUE_MAX,
        required=False,
        strip=False,
        error_messages={"max_length": rules.MSG_TAG_VALUE_LENGTH},
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        key, value = cleaned.get("key", ""), cleaned.get("value", "")
        if not key and not value:
            return cleaned
        for field, text, is_key in (("key", key, True), ("value", value, False)):
            message = rules.tag_text_violation(text, is_key=is_key)
            if message and field not in self.errors:
                self.add_error(field, message)
        return cleaned

    def as_tag(self) -> dict[str, str] | None:
        if self.cleaned_data.get("DELETE") or not (self.cleaned_data.get("key") or self.cleaned_data.get("value")):
            return None
        return {"Key": self.cleaned_data["key"], "Value": self.cleaned_data["value"]}


class BaseTagFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        violations = rules.tag_violations(self.tags())
        if violations:
            raise forms.ValidationError([violation.message for violation in violations])

    def tags(self) -> list[dict[str, str]]:
        return [tag for form in self.forms if (tag := form.as_tag()) is not None]


TagFormSet = forms.formset_factory(
    TagForm,
    formset=BaseTagFormSet,
    extra=1,
    can_delete=True,
    max_num=rules.MAX_USER_TAGS,
)


def tag_formset(data: Any = None, *, tags: list[dict[str, str]] | None = None) -> BaseTagFormSet:
    initial = [{"key": t["Key"], "value": t["Value"]} for t in tags or []]
    formset = TagFormSet(data, initial=initial, prefix="tags")
    for form in formset.forms:
        form.fields["key"].widget.attrs.update({"class": "form-control", "autocomplete": "off"})
        form.fields["value"].widget.attrs.update({"class": "form-control", "autocomplete": "off"})
    return formset


class DecisionForm(forms.Form):
    """The POST body of every action button: the version the actor saw, and a comment."""

    version = forms.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid": MSG_STALE_FORM, "min_value": MSG_STALE_FORM, "max_value": MSG_STALE_FORM},
    )
    comment = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"max_length": MSG_COMMENT_TOO_LONG},
    )
