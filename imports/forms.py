"""Input and validation only. The rules themselves live in imports.rules."""

import re
from collections.abc import Callable
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from imports import plan, roles, rules
from imports.models import AwsTarget, ImportRequest, WebhookEvent, WebhookSubscription

MSG_NAME_IN_USE = "Another open request for this target already uses this image name: choose a different image name."
MSG_COMMENT_TOO_LONG = "Keep the comment under 2,000 characters."
MSG_STALE_FORM = "This form was damaged or is out of date: reload the page and try again."
MSG_REQUIRED_FOR_PATH = "Enter the {label}: the chosen way of importing needs it."
MSG_REQUIRED_FOR_BUNDLE = "Fill this in for the bundle, or untick 'Make a bundle from the image'."

# The fields only one import path has; the other path's are emptied when a request is saved.
PATH_FIELDS: dict[str, list[str]] = {
    rules.ImportPath.CLASSIC: ["ec2_image_id", "ingestion_process", "office"],
    rules.ImportPath.IMAGE_BUILDER: [
        "source_kind",
        "ec2_import_task_id",
        "image_build_version_arn",
        "infrastructure_configuration_arn",
        "compute_type",
        "protocol",
        "image_validation_mode",
    ],
}
SOURCE_FIELDS = {
    rules.SOURCE_AMI: "ec2_image_id",
    rules.SOURCE_IMPORT_TASK: "ec2_import_task_id",
    rules.SOURCE_IMAGE_VERSION: "image_build_version_arn",
}
# The delivery plan's inputs (imports.plan): the form turns them into ImportRequest.delivery_plan.
BUNDLE_FIELDS = ("bundle_name", "bundle_description", "bundle_compute_type", "bundle_root_gb", "bundle_user_gb")
PLAN_FIELDS = ("bundle", *BUNDLE_FIELDS, "copy_regions", "copy_bundles", "share_accounts", "share_copies")
LIST_SEPARATORS_RE = re.compile(r"[\s,]+")
# The AWS console shows account ids as 1234-5678-9012; the API takes the 12 digits alone.
CONSOLE_ACCOUNT_ID_RE = re.compile(r"[0-9]{4}-[0-9]{4}-[0-9]{4}")


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
    import_path = forms.ChoiceField(
        label="How to import",
        # Not required: a form posted without it (an older page) means the classic import.
        required=False,
        choices=rules.IMPORT_PATH_CHOICES,
        initial=rules.ImportPath.CLASSIC.value,
        widget=forms.RadioSelect,
        help_text=(
            "The classic import takes a licensed Windows AMI and an ingestion process (with optional Office). "
            "The import through EC2 Image Builder also takes a VM import task or an Image Builder image version, "
            "offers the newer GPU compute (G6, G7) and reports its progress stage by stage; it needs an Image "
            "Builder infrastructure configuration in the target's account and region, and has no Office option."
        ),
    )
    ec2_image_id = forms.CharField(
        label="Source AMI",
        required=False,
        validators=[aws_text_rule(rules.EC2_IMAGE_ID_RE, 21, rules.MSG_AMI_FORMAT)],
        help_text="The licensed Windows EC2 image (AMI) in the target account and region, e.g. ami-0123456789abcdef0.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    ec2_import_task_id = forms.CharField(
        label="VM import task",
        required=False,
        validators=[aws_text_rule(rules.EC2_IMPORT_TASK_ID_RE, 28, rules.MSG_IMPORT_TASK_FORMAT)],
        help_text="A completed EC2 VM import task of the licensed image, e.g. import-ami-0123456789abcdef0.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    image_build_version_arn = forms.CharField(
        label="Image Builder image version",
        required=False,
        validators=[aws_text_rule(rules.IMAGE_BUILD_VERSION_ARN_RE, rules.ARN_MAX, rules.MSG_IMAGE_VERSION_FORMAT)],
        help_text="The ARN of an available image version in the target's region.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    infrastructure_configuration_arn = forms.CharField(
        label="Image Builder infrastructure configuration",
        required=False,
        validators=[
            aws_text_rule(rules.INFRASTRUCTURE_CONFIGURATION_ARN_RE, rules.ARN_MAX, rules.MSG_INFRASTRUCTURE_FORMAT)
        ],
        help_text="The ARN of the infrastructure configuration Image Builder builds with, in the target's account "
        "and region.",
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
    # After the import (imports.plan checks them all, in clean()).
    bundle = forms.BooleanField(
        label="Make a bundle from the image",
        required=False,
        help_text="Once the image is available, a WorkSpaces bundle made from it in the target's region, "
        "ready to launch WorkSpaces from.",
        widget=forms.CheckboxInput(attrs={"aria-controls": "plan-bundle"}),
    )
    bundle_name = forms.CharField(
        label="Bundle name",
        required=False,
        help_text=f"Up to {plan.BUNDLE_NAME_MAX} letters, digits and _ . / ( ) -. No spaces.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    bundle_description = forms.CharField(
        label="Bundle description",
        required=False,
        help_text=f"Up to {plan.BUNDLE_DESCRIPTION_MAX} letters, digits, spaces and _ . / ( ) -.",
    )
    bundle_compute_type = forms.ChoiceField(
        label="Bundle hardware",
        required=False,
        choices=[("", "Choose…")] + [(c, f"{plan.compute_label(c)} — {c}") for c in plan.COMPUTE_TYPES],
        help_text="The compute type of the bundle's WorkSpaces. It must suit the image: GPU types for GPU images, "
        "regular types for regular ones.",
    )
    bundle_root_gb = forms.IntegerField(
        label="Root volume (GB)",
        required=False,
        initial=plan.SMALL_ROOT_GB,
        help_text="80 GB, or 175 to 2000 GB.",
    )
    bundle_user_gb = forms.IntegerField(
        label="User volume (GB)",
        required=False,
        initial=50,
        help_text="With an 80 GB root volume: 10, 50 or 100 GB. With a larger one: 100 to 2000 GB.",
    )
    copy_regions = forms.CharField(
        label="Copy to regions",
        required=False,
        help_text=f"Other regions of the target's account, e.g. eu-central-1, separated by commas or spaces "
        f"(at most {plan.MAX_COPIES}). Each copy has the image's name.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    copy_bundles = forms.BooleanField(
        label="Make the bundle in each copy's region too",
        required=False,
        help_text="The same bundle settings, from each copy once it is available.",
    )
    share_accounts = forms.CharField(
        label="Share with AWS accounts",
        required=False,
        help_text=f"12-digit account ids, one per line or separated by commas (at most {plan.MAX_SHARE_ACCOUNTS}). "
        "Each gets the image in the target's region; AWS shares BYOL images only with accounts enabled for BYOL "
        "in your organization.",
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
    )
    share_copies = forms.BooleanField(
        label="Share the copies too, from their regions",
        required=False,
        help_text="Each account also gets each copy, in the copy's region.",
    )

    class Meta:
        model = ImportRequest
        fields = [
            "target",
            "import_path",
            "windows_version",
            "ec2_image_id",
            "ingestion_process",
            "office",
            "source_kind",
            "ec2_import_task_id",
            "image_build_version_arn",
            "infrastructure_configuration_arn",
            "compute_type",
            "protocol",
            "image_validation_mode",
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
            "source_kind": "What Image Builder starts from.",
            "compute_type": "The kind of bundle the image is for. G6 and G7 stream with DCV only.",
            "protocol": "The streaming protocol. Windows 11 does not support PCoIP; BYOP needs an allow-listed target.",
            "image_validation_mode": "Who validates the image for WorkSpaces: you, before the import, or AWS.",
        }

    def __init__(self, *args: Any, amis: dict[int, list[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.amis = amis or {}
        if self.instance.pk:
            for name, value in plan_initial(self.instance.delivery_plan).items():
                self.initial.setdefault(name, value)
        chosen = self["target"].value() or next(iter(self.amis), None)
        if chosen:
            self.fields["ec2_image_id"].widget.attrs["list"] = f"amis-{chosen}"
        self.fields["ingestion_process"].choices = [("", "Choose a process…")] + [
            (p.value, f"{p.label} — {p.value}") for p in rules.INGESTION_PROCESSES.values()
        ]
        self.fields["windows_version"].choices = [("", "Choose a version…"), *rules.WINDOWS_CHOICES]
        for name, choices in (
            ("source_kind", rules.SOURCE_CHOICES),
            ("compute_type", rules.COMPUTE_TYPE_CHOICES),
            ("protocol", rules.PROTOCOL_CHOICES),
        ):
            self.fields[name].choices = [("", "Choose…"), *choices]
        for name in PATH_FIELDS[rules.ImportPath.CLASSIC] + PATH_FIELDS[rules.ImportPath.IMAGE_BUILDER]:
            self.fields[name].required = False
        self.fields["office"].choices = [
            (value, f"{label} (support ended {rules.OFFICE_END_OF_SUPPORT})" if value else label)
            for value, label in rules.OFFICE_CHOICES
        ]
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout(
            Fieldset("Where to, and how", "target", "import_path", "windows_version"),
            Fieldset(
                "Classic import",
                "ec2_image_id",
                "ingestion_process",
                "office",
                css_id="path-classic",
                data_path=rules.ImportPath.CLASSIC.value,
            ),
            Fieldset(
                "Import through EC2 Image Builder",
                "source_kind",
                "ec2_import_task_id",
                "image_build_version_arn",
                "infrastructure_configuration_arn",
                "compute_type",
                "protocol",
                "image_validation_mode",
                css_id="path-image-builder",
                data_path=rules.ImportPath.IMAGE_BUILDER.value,
            ),
            Fieldset("The WorkSpaces image", "image_name", "image_description"),
            Fieldset(
                'After the import <span class="fs-6 text-body-secondary">(optional)</span>',
                "bundle",
                Div(*BUNDLE_FIELDS, css_id="plan-bundle"),
                "copy_regions",
                "copy_bundles",
                "share_accounts",
                "share_copies",
                css_id="plan",
            ),
            Fieldset("For the approver", Field("justification")),
        )

    @property
    def bundle_compute_table(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """plan.allowed_bundle_compute_types as a table, for the page's script to narrow the choices."""
        return {
            rules.ImportPath.CLASSIC.value: plan.BUNDLE_COMPUTE_BY_PROCESS,
            rules.ImportPath.IMAGE_BUILDER.value: plan.BUNDLE_COMPUTE_BY_IMAGE_COMPUTE,
        }

    def request_fields(self) -> dict[str, Any]:
        """The cleaned request as the workflow takes it: the model's fields and the delivery plan
        (the plan's inputs are not request fields)."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields} | {
            "delivery_plan": self.cleaned_data["delivery_plan"]
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        target = cleaned.get("target")
        path = cleaned.get("import_path") or rules.ImportPath.CLASSIC.value
        cleaned["import_path"] = path
        other = rules.ImportPath.IMAGE_BUILDER if path == rules.ImportPath.CLASSIC else rules.ImportPath.CLASSIC
        # Only the chosen path's fields are kept: the other path's, hidden on the page, are emptied,
        # and whatever they held is no error.
        for name in PATH_FIELDS[other]:
            if name != "ec2_image_id":
                cleaned[name] = ""
                self.errors.pop(name, None)
        if path == rules.ImportPath.CLASSIC:
            self._require("ec2_image_id", "ingestion_process")
            violations = rules.combination_violations(
                windows_version=cleaned.get("windows_version", ""),
                ingestion_process=cleaned.get("ingestion_process", ""),
                office=cleaned.get("office", ""),
                byop_allowed=bool(target and target.byop_allowed),
            )
        else:
            self._clean_image_builder_source(cleaned)
            self._require("infrastructure_configuration_arn", "compute_type", "protocol")
            violations = rules.image_builder_violations(
                windows_version=cleaned.get("windows_version", ""),
                compute_type=cleaned.get("compute_type", ""),
                protocol=cleaned.get("protocol", ""),
                source_kind=cleaned.get("source_kind", ""),
                source_value=cleaned.get("image_build_version_arn", ""),
                infrastructure_configuration_arn=cleaned.get("infrastructure_configuration_arn", ""),
                target_region=target.region if target else "",
                target_account=target.account_id if target else "",
                byop_allowed=bool(target and target.byop_allowed),
            )
        for violation in violations:
            if violation.field not in self.errors:
                self.add_error(violation.field, violation.message)
        name = cleaned.get("image_name")
        if target and name and self._name_in_use(target, name):
            self.add_error("image_name", MSG_NAME_IN_USE)
        self._clean_delivery_plan(cleaned, target)
        return cleaned

    def _clean_delivery_plan(self, cleaned: dict[str, Any], target: AwsTarget | None) -> None:
        """The plan's inputs into cleaned["delivery_plan"], and imports.plan's rules onto its fields."""
        if cleaned.get("bundle"):
            self._require(*BUNDLE_FIELDS, message=MSG_REQUIRED_FOR_BUNDLE)
        else:
            # Hidden on the page while no bundle is asked for: whatever they hold is no error.
            for name in BUNDLE_FIELDS:
                self.errors.pop(name, None)
        if target is None:  # the target has its own error, and the plan's rules need it
            cleaned["delivery_plan"] = {}
            return
        cleaned["delivery_plan"] = delivery_plan_from(cleaned, target_region=target.region)
        checked_already = set(self.errors)
        violations = plan.plan_violations(
            cleaned["delivery_plan"],
            target_region=target.region,
            target_account_id=target.account_id,
            import_path=cleaned["import_path"],
            ingestion_process=cleaned.get("ingestion_process", ""),
            compute_type=cleaned.get("compute_type", ""),
        )
        for field, messages in violations.items():
            if field not in checked_already:
                for message in messages:
                    self.add_error(None if field == "__all__" else field, message)

    def _require(self, *names: str, message: str = MSG_REQUIRED_FOR_PATH) -> None:
        for name in names:
            if self.cleaned_data.get(name) in (None, "") and name not in self.errors:
                self.add_error(name, message.format(label=self.fields[name].label))

    def _clean_image_builder_source(self, cleaned: dict[str, Any]) -> None:
        """Exactly one source: the one chosen; the other two are emptied."""
        kind = cleaned.get("source_kind", "")
        self._require("source_kind")
        chosen = SOURCE_FIELDS.get(kind)
        for field_name in SOURCE_FIELDS.values():
            if field_name != chosen:
                cleaned[field_name] = ""
                self.errors.pop(field_name, None)
        if chosen:
            self._require(chosen)

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


def list_items(text: str) -> list[str]:
    """What a list field holds: items separated by commas, spaces or new lines, in order."""
    return [item for item in LIST_SEPARATORS_RE.split(text) if item]


def delivery_plan_from(cleaned: dict[str, Any], *, target_region: str) -> dict[str, Any]:
    """The plan's JSON (imports.plan) from the form's inputs: each account is shared with in the
    target's region and, when asked, in each copy's."""
    delivery_plan: dict[str, Any] = {}
    if cleaned.get("bundle"):
        delivery_plan["bundle"] = {
            "name": cleaned.get("bundle_name", ""),
            "description": cleaned.get("bundle_description", ""),
            "compute_type": cleaned.get("bundle_compute_type", ""),
            "root_gb": cleaned.get("bundle_root_gb"),
            "user_gb": cleaned.get("bundle_user_gb"),
        }
    regions = list_items(cleaned.get("copy_regions", ""))
    if regions:
        copy_bundle = bool(cleaned.get("copy_bundles"))
        delivery_plan["copies"] = [{"region": region, "bundle": copy_bundle} for region in regions]
    accounts = [account_id(item) for item in list_items(cleaned.get("share_accounts", ""))]
    if accounts:
        share_regions = [target_region]
        if cleaned.get("share_copies"):
            # A repeated or misplaced copy region is copy_regions' error, not a second one on the shares.
            share_regions += [region for region in dict.fromkeys(regions) if region != target_region]
        delivery_plan["shares"] = [
            {"account_id": account, "region": region} for region in share_regions for account in accounts
        ]
    return delivery_plan


def account_id(text: str) -> str:
    return text.replace("-", "") if CONSOLE_ACCOUNT_ID_RE.fullmatch(text) else text


def plan_initial(delivery_plan: dict[str, Any]) -> dict[str, Any]:
    """The form's plan inputs for a saved plan, so that editing a request starts from it."""
    copies, shares = delivery_plan.get("copies", []), delivery_plan.get("shares", [])
    copy_regions = [copy["region"] for copy in copies]
    initial: dict[str, Any] = {
        "copy_regions": ", ".join(copy_regions),
        "copy_bundles": any(copy["bundle"] for copy in copies),
        "share_accounts": "\n".join(dict.fromkeys(share["account_id"] for share in shares)),
        "share_copies": any(share["region"] in copy_regions for share in shares),
    }
    bundle = delivery_plan.get("bundle")
    if bundle:
        initial |= {
            "bundle": True,
            "bundle_name": bundle["name"],
            "bundle_description": bundle["description"],
            "bundle_compute_type": bundle["compute_type"],
            "bundle_root_gb": bundle["root_gb"],
            "bundle_user_gb": bundle["user_gb"],
        }
    return initial


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


MSG_EXPORT_DATES_REVERSED = "The end date is before the start date: swap them, or leave one empty."
MSG_EXPORT_DATE_RANGE = "Enter a date between 2000-01-01 and 9999-12-31."
MSG_EXPORT_NO_SUCH_REQUEST = "No request has the reference {reference}: check it on the request's page."
MSG_EXPORT_BAD_REFERENCE = "Enter a request reference such as IMP-000123, or leave it empty."
EXPORT_REFERENCE_RE = re.compile(r"\s*(?:IMP-)?0*([0-9]{1,12})\s*", re.IGNORECASE)


class AuditExportForm(forms.Form):
    """What to export: everything, or the events of a date range, one target, one request."""

    date_from = forms.DateField(
        label="From",
        required=False,
        help_text="The first day, included (YYYY-MM-DD).",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": MSG_EXPORT_DATE_RANGE},
    )
    date_to = forms.DateField(
        label="To",
        required=False,
        help_text="The last day, included.",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": MSG_EXPORT_DATE_RANGE},
    )
    target = forms.ModelChoiceField(
        queryset=AwsTarget.objects.all(), required=False, label="AWS target", empty_label="Every target"
    )
    reference = forms.CharField(
        label="Request", required=False, max_length=20, help_text="A reference such as IMP-000123."
    )

    def clean_reference(self) -> ImportRequest | None:
        text = self.cleaned_data["reference"].strip()
        if not text:
            return None
        match = EXPORT_REFERENCE_RE.fullmatch(text)
        if not match:
            raise ValidationError(MSG_EXPORT_BAD_REFERENCE, code="invalid")
        request = ImportRequest.objects.filter(pk=int(match.group(1))).first()
        if request is None:
            raise ValidationError(MSG_EXPORT_NO_SUCH_REQUEST.format(reference=text), code="missing")
        return request

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_to < date_from:
            self.add_error("date_to", MSG_EXPORT_DATES_REVERSED)
        return cleaned


MSG_STAND_IN_DAYS = "The last day must be on or after the first."
MSG_STAND_IN_PAST = "The first day cannot be in the past."
MSG_STAND_IN_TOO_LONG = "A stand-in is named for at most {days} days at a time."
STAND_IN_MAX_DAYS = 90


class DelegationForm(forms.Form):
    """An approver names a stand-in for a range of days."""

    stand_in = forms.ModelChoiceField(
        queryset=None,
        label="Stand-in",
        help_text="An approver who decides, in your name, the requests you may decide, while you are away.",
    )
    starts_on = forms.DateField(
        label="From", help_text="The first day, included.", widget=forms.DateInput(attrs={"type": "date"})
    )
    ends_on = forms.DateField(
        label="To", help_text="The last day, included.", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, approver: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        others = get_user_model().objects.filter(groups__name=roles.APPROVERS, is_active=True).exclude(pk=approver.pk)
        self.fields["stand_in"].queryset = others.order_by("username")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        starts_on, ends_on = cleaned.get("starts_on"), cleaned.get("ends_on")
        if starts_on and starts_on < timezone.localdate():
            self.add_error("starts_on", MSG_STAND_IN_PAST)
        if starts_on and ends_on and ends_on < starts_on:
            self.add_error("ends_on", MSG_STAND_IN_DAYS)
        elif starts_on and ends_on and (ends_on - starts_on).days >= STAND_IN_MAX_DAYS:
            self.add_error("ends_on", MSG_STAND_IN_TOO_LONG.format(days=STAND_IN_MAX_DAYS))
        return cleaned


class WebhookForm(forms.ModelForm):
    """A webhook: where it posts, in which format, and about which events. The URL is checked
    against the allowed destinations (imports.endpoints) here and before every delivery."""

    url = forms.URLField(label="URL", max_length=1000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple, help_text="What it is told about."
    )

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "kind", "events"]
