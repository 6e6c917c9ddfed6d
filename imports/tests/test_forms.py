"""The request form and the tag formset: every rule of PRODUCT.md section 4 passes valid input
and refuses invalid input with its exact message on the right field; then the same through the
view, as a requester sees it."""

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from django import forms as django_forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.urls import reverse
from django.utils.html import escape

from imports import plan, rules
from imports.forms import (
    BUNDLE_FIELDS,
    MSG_NAME_IN_USE,
    MSG_REQUIRED_FOR_BUNDLE,
    MSG_REQUIRED_FOR_PATH,
    ImportRequestForm,
    tag_formset,
)
from imports.models import AwsTarget, ImportRequest, RequestEvent
from imports.tests.conftest import form_data
from imports.tests.test_image_builder import image_builder_form

State = ImportRequest.State
REQUIRED = django_forms.Field.default_error_messages["required"]
LIVE_STATES = [s for s in State.values if s not in ImportRequest.ENDED_STATES]


def tag_rows(*rows: tuple[str, str], deleted: tuple[int, ...] = ()) -> dict[str, str]:
    """The POST body of the tag formset alone: one row per (key, value)."""
    data = {
        "tags-TOTAL_FORMS": str(len(rows)),
        "tags-INITIAL_FORMS": "0",
        "tags-MIN_NUM_FORMS": "0",
        "tags-MAX_NUM_FORMS": str(rules.MAX_USER_TAGS),
    }
    for i, (key, value) in enumerate(rows):
        data[f"tags-{i}-key"] = key
        data[f"tags-{i}-value"] = value
    for i in deleted:
        data[f"tags-{i}-DELETE"] = "on"
    return data


def numbered_tags(count: int) -> list[tuple[str, str]]:
    return [(f"key{i}", f"value{i}") for i in range(count)]


def max_length_messages(limit: int, text: str) -> list[str]:
    """Django's own message for a value over a plain max_length, as the validator words it."""
    with pytest.raises(ValidationError) as exc:
        MaxLengthValidator(limit)(text)
    return exc.value.messages


class Page(HTMLParser):
    """What a rendered page shows: by element id, its attributes and its text (unescaped); by
    select id, the value of the selected option."""

    VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.text: dict[str, str] = {}
        self.selected: dict[str, str | None] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        element_id = attributes.get("id")
        if element_id:
            self.attrs[element_id] = attributes
            self.text.setdefault(element_id, "")
        if tag == "option" and "selected" in attributes:
            select_id = next((i for t, i in reversed(self._open) if t == "select"), None)
            if select_id:
                self.selected[select_id] = attributes.get("value")
        if tag not in self.VOID:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth][0] == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data

    def words(self, element_id: str) -> str:
        return " ".join(self.text[element_id].split())


# --- ImportRequestForm: field rules ---------------------------------------------------------


def test_the_default_form_data_is_valid_and_cleaned_as_typed(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target))

    assert form.is_valid(), form.errors
    assert form.cleaned_data == {
        "target": target,
        "windows_version": "10",
        "ec2_image_id": "ami-0123456789abcdef0",
        "ingestion_process": "BYOL_REGULAR_WSP",
        "office": "",
        "image_name": "win10-finance-2026",
        "image_description": "Windows 10 22H2 for the finance team",
        "justification": "Finance needs the new accounting add-in.",
        # Posted without a path (an older page): the classic import, the other path's fields empty.
        "import_path": "classic",
        "source_kind": "",
        "ec2_import_task_id": "",
        "image_build_version_arn": "",
        "infrastructure_configuration_arn": "",
        "compute_type": "",
        "protocol": "",
        "image_validation_mode": "",
        # Nothing asked for after the import: an empty plan, whatever the plan's inputs say.
        "bundle": False,
        "bundle_name": "",
        "bundle_description": "",
        "bundle_compute_type": "",
        "bundle_root_gb": None,
        "bundle_user_gb": None,
        "copy_regions": "",
        "copy_bundles": False,
        "share_accounts": "",
        "share_copies": False,
        "delivery_plan": {},
    }


@pytest.mark.parametrize("ami", ["ami-0123abcd", "ami-0123456789abcdef0", " ami-0123abcd "])
def test_an_ami_id_with_8_or_17_lowercase_hex_digits_is_accepted(target: AwsTarget, ami: str) -> None:
    form = ImportRequestForm(form_data(target, ec2_image_id=ami))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["ec2_image_id"] == ami.strip()


@pytest.mark.parametrize(
    "ami",
    ["ami-0123ABCD", "ami-0123456789ABCDEF0", "ami-0123abcd9", "ami-0123abc", "ami-0123abcg", "AMI-0123abcd", "img-1"],
)
def test_an_ami_id_in_another_form_is_refused_with_the_ami_message(target: AwsTarget, ami: str) -> None:
    form = ImportRequestForm(form_data(target, ec2_image_id=ami))

    assert form.errors == {"ec2_image_id": [rules.MSG_AMI_FORMAT]}


def test_an_ami_id_with_18_hex_digits_gets_the_ami_message_too(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, ec2_image_id="ami-0123456789abcdef01"))

    assert not form.is_valid()
    assert rules.MSG_AMI_FORMAT in form.errors["ec2_image_id"]


@pytest.mark.parametrize("name", ["a", "x" * rules.IMAGE_NAME_MAX, "Image_v1.2/(test)-x"])
def test_an_image_name_of_1_to_64_allowed_characters_is_accepted(target: AwsTarget, name: str) -> None:
    form = ImportRequestForm(form_data(target, image_name=name))

    assert form.is_valid(), form.errors


@pytest.mark.parametrize("name", ["with space", "name#1", "Größe", "a,b", "x" * (rules.IMAGE_NAME_MAX + 1)])
def test_a_bad_image_name_is_refused_with_the_image_name_message(target: AwsTarget, name: str) -> None:
    form = ImportRequestForm(form_data(target, image_name=name))

    assert form.errors == {"image_name": [rules.MSG_IMAGE_NAME_FORMAT]}


@pytest.mark.parametrize("description", ["a", "x" * rules.IMAGE_DESCRIPTION_MAX, "Win 11 (v1.2) a/b_c - d"])
def test_a_description_of_1_to_256_allowed_characters_is_accepted(target: AwsTarget, description: str) -> None:
    form = ImportRequestForm(form_data(target, image_description=description))

    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    "description", ["comma, no", "<script>", "Größe", "tab\tinside", "x" * (rules.IMAGE_DESCRIPTION_MAX + 1)]
)
def test_a_bad_description_is_refused_with_the_description_message(target: AwsTarget, description: str) -> None:
    form = ImportRequestForm(form_data(target, image_description=description))

    assert form.errors == {"image_description": [rules.MSG_IMAGE_DESCRIPTION_FORMAT]}


@pytest.mark.parametrize("description", ["", "   "])
def test_an_empty_description_is_refused_as_required(target: AwsTarget, description: str) -> None:
    form = ImportRequestForm(form_data(target, image_description=description))

    assert form.errors == {"image_description": [REQUIRED]}


@pytest.mark.parametrize(
    "field",
    [
        "target",
        "windows_version",
        "ec2_image_id",
        "ingestion_process",
        "image_name",
        "image_description",
        "justification",
    ],
)
def test_a_missing_required_field_is_refused_on_that_field(target: AwsTarget, field: str) -> None:
    data = form_data(target)
    del data[field]

    form = ImportRequestForm(data)

    # The classic path's own fields say which way of importing needs them.
    expected = (
        MSG_REQUIRED_FOR_PATH.format(label=form.fields[field].label)
        if field in ("ec2_image_id", "ingestion_process")
        else REQUIRED
    )
    assert form.errors[field] == [expected]
    assert set(form.errors) == {field}


def test_office_may_be_left_out(target: AwsTarget) -> None:
    data = form_data(target)
    del data["office"]

    form = ImportRequestForm(data)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["office"] == ""


def test_an_inactive_target_is_not_offered_and_not_accepted(target: AwsTarget, byop_target: AwsTarget) -> None:
    AwsTarget.objects.filter(pk=target.pk).update(is_active=False)

    form = ImportRequestForm(form_data(target))

    assert list(form.fields["target"].queryset) == [byop_target]
    assert form.errors == {"target": [form.fields["target"].error_messages["invalid_choice"]]}
    assert ImportRequestForm(form_data(byop_target)).is_valid()


@pytest.mark.parametrize(
    ("field", "value"),
    [("windows_version", "12"), ("ingestion_process", "BYOL_FANCY"), ("office", "Microsoft_Office_2021")],
)
def test_a_value_outside_a_fields_choices_is_refused(target: AwsTarget, field: str, value: str) -> None:
    message = django_forms.ChoiceField.default_error_messages["invalid_choice"] % {"value": value}

    form = ImportRequestForm(form_data(target, **{field: value}))

    assert form.errors == {field: [message]}


def test_a_justification_of_4000_characters_is_accepted(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, justification="j" * 4000))

    assert form.is_valid(), form.errors


def test_a_justification_over_4000_characters_is_refused(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, justification="j" * 4001))

    assert form.errors == {"justification": max_length_messages(4000, "j" * 4001)}
    assert form.has_error("justification", code="max_length")


# --- ImportRequestForm: cross-field rules ---------------------------------------------------


@pytest.mark.parametrize(
    ("target_fixture", "windows", "process", "office"),
    [
        ("byop_target", "10", "BYOL_REGULAR_BYOP", ""),
        ("byop_target", "11", "BYOL_GRAPHICS_G4DN_BYOP", rules.OFFICE_2019),
        ("target", "10", "BYOL_REGULAR", rules.OFFICE_2016),
        ("target", "11", "BYOL_REGULAR_WSP", rules.OFFICE_2019),
        ("target", "11", "BYOL_REGULAR_WSP", ""),
        ("target", "11", "BYOL_GRAPHICS_G4DN_WSP", ""),
        ("target", "10", "BYOL_GRAPHICS_G4DN", rules.OFFICE_2019),
        ("target", "10", "BYOL_GRAPHICS_G4DN_WSP", rules.OFFICE_2019),
        ("target", "10", "BYOL_GRAPHICS", ""),  # end-of-life: a warning, not an error
        ("target", "10", "BYOL_GRAPHICSPRO", rules.OFFICE_2016),
    ],
)
def test_an_allowed_combination_passes_the_form(
    request: pytest.FixtureRequest, target_fixture: str, windows: str, process: str, office: str
) -> None:
    chosen = request.getfixturevalue(target_fixture)

    form = ImportRequestForm(form_data(chosen, windows_version=windows, ingestion_process=process, office=office))

    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    ("windows", "process", "office", "field", "message"),
    [
        ("10", "BYOL_REGULAR_BYOP", "", "ingestion_process", rules.MSG_BYOP_NOT_ALLOWED),
        ("11", "BYOL_GRAPHICS_G4DN_BYOP", "", "ingestion_process", rules.MSG_BYOP_NOT_ALLOWED),
        ("11", "BYOL_REGULAR", "", "ingestion_process", rules.MSG_WIN11_NO_PCOIP),
        ("11", "BYOL_GRAPHICS", "", "ingestion_process", rules.MSG_WIN11_NO_PCOIP),
        ("11", "BYOL_GRAPHICSPRO", "", "ingestion_process", rules.MSG_WIN11_NO_PCOIP),
        ("11", "BYOL_GRAPHICS_G4DN", "", "ingestion_process", rules.MSG_WIN11_NO_PCOIP),
        ("11", "BYOL_REGULAR_WSP", rules.OFFICE_2016, "office", rules.MSG_WIN11_WSP_REGULAR_OFFICE),
        ("11", "BYOL_GRAPHICS_G4DN_WSP", rules.OFFICE_2019, "office", rules.MSG_WIN11_WSP_GPU_OFFICE),
        ("11", "BYOL_GRAPHICS_G4DN_WSP", rules.OFFICE_2016, "office", rules.MSG_WIN11_WSP_GPU_OFFICE),
    ],
)
def test_a_refused_combination_puts_its_message_on_the_field_to_change(
    target: AwsTarget, windows: str, process: str, office: str, field: str, message: str
) -> None:
    form = ImportRequestForm(form_data(target, windows_version=windows, ingestion_process=process, office=office))

    assert form.errors == {field: [message]}


@pytest.mark.parametrize("process", ["BYOL_GRAPHICS_G4DN", "BYOL_GRAPHICS_G4DN_WSP", "BYOL_GRAPHICS_G4DN_BYOP"])
def test_windows_10_with_g4dn_and_office_2016_passes_the_form_as_no_aws_source_forbids_it(
    byop_target: AwsTarget, process: str
) -> None:
    form = ImportRequestForm(form_data(byop_target, ingestion_process=process, office=rules.OFFICE_2016))

    assert form.is_valid(), form.errors


def test_the_office_choices_say_that_microsoft_support_ended_and_the_model_keeps_its_values(
    target: AwsTarget,
) -> None:
    form = ImportRequestForm()

    assert form.fields["office"].choices == [
        ("", "No Office"),
        (rules.OFFICE_2016, "Microsoft Office 2016 (support ended 14 October 2025)"),
        (rules.OFFICE_2019, "Microsoft Office 2019 (support ended 14 October 2025)"),
    ]
    assert "ended support for Office 2016 and 2019 on 14 October 2025" in form.fields["office"].help_text
    assert ImportRequestForm(form_data(target, office=rules.OFFICE_2019)).is_valid()


# --- ImportRequestForm: image name unique per target among live requests --------------------


@pytest.mark.parametrize("state", LIVE_STATES)
def test_a_name_used_by_a_live_request_on_the_same_target_is_refused(
    target: AwsTarget, make_request: Any, state: str
) -> None:
    existing = make_request(image_name="win10-finance-2026")
    ImportRequest.objects.filter(pk=existing.pk).update(state=state)

    form = ImportRequestForm(form_data(target, image_name="win10-finance-2026"))

    assert form.errors == {"image_name": [MSG_NAME_IN_USE]}


@pytest.mark.parametrize("state", ImportRequest.ENDED_STATES)
def test_a_name_of_a_rejected_cancelled_or_failed_request_is_free_again(
    target: AwsTarget, make_request: Any, state: str
) -> None:
    existing = make_request(image_name="win10-finance-2026")
    ImportRequest.objects.filter(pk=existing.pk).update(state=state)

    form = ImportRequestForm(form_data(target, image_name="win10-finance-2026"))

    assert form.is_valid(), form.errors


def test_the_same_name_on_another_target_is_accepted(
    target: AwsTarget, byop_target: AwsTarget, make_request: Any
) -> None:
    make_request(image_name="win10-finance-2026")

    form = ImportRequestForm(form_data(byop_target, image_name="win10-finance-2026"))

    assert form.is_valid(), form.errors


def test_editing_a_request_keeps_its_own_name_valid(target: AwsTarget, make_request: Any) -> None:
    own = make_request(image_name="win10-finance-2026")

    form = ImportRequestForm(form_data(target, image_name="win10-finance-2026", justification="Changed"), instance=own)

    assert form.is_valid(), form.errors


def test_editing_a_request_to_the_name_of_another_live_request_is_refused(target: AwsTarget, make_request: Any) -> None:
    make_request(image_name="win10-finance-2026")
    other = make_request(image_name="win10-hr-2026")

    form = ImportRequestForm(form_data(target, image_name="win10-finance-2026"), instance=other)

    assert form.errors == {"image_name": [MSG_NAME_IN_USE]}


# --- the tag formset ------------------------------------------------------------------------


def test_valid_tags_are_returned_exactly_in_order() -> None:
    formset = tag_formset(tag_rows(("CostCenter", "4711"), ("Team", "Finance"), ("Größe", "groß")))

    assert formset.is_valid(), formset.errors
    assert formset.tags() == [
        {"Key": "CostCenter", "Value": "4711"},
        {"Key": "Team", "Value": "Finance"},
        {"Key": "Größe", "Value": "groß"},
    ]


def test_no_tag_rows_at_all_give_no_tags() -> None:
    formset = tag_formset(tag_rows())

    assert formset.is_valid(), formset.errors
    assert formset.tags() == []


def test_empty_rows_are_ignored() -> None:
    formset = tag_formset(tag_rows(("", ""), ("CostCenter", "4711"), ("", ""), ("Team", "a"), ("", "")))

    assert formset.is_valid(), formset.errors
    assert formset.tags() == [{"Key": "CostCenter", "Value": "4711"}, {"Key": "Team", "Value": "a"}]


@pytest.mark.parametrize("value", ["", "v" * rules.TAG_VALUE_MAX, "a+b-c=d.e_f:g/h@i", "two words", "Größe"])
def test_a_tag_value_up_to_255_allowed_characters_or_empty_is_fine(value: str) -> None:
    formset = tag_formset(tag_rows(("CostCenter", value)))

    assert formset.is_valid(), formset.errors
    assert formset.tags() == [{"Key": "CostCenter", "Value": value}]


@pytest.mark.parametrize("key", ["a", "k" * rules.TAG_KEY_MAX, "team:finance", "a+b-c=d.e_f:g/h@i", "my aws:key"])
def test_a_tag_key_up_to_127_allowed_characters_is_fine(key: str) -> None:
    formset = tag_formset(tag_rows((key, "v")))

    assert formset.is_valid(), formset.errors
    assert formset.tags() == [{"Key": key, "Value": "v"}]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", rules.MSG_TAG_KEY_REQUIRED),
        ("k" * (rules.TAG_KEY_MAX + 1), rules.MSG_TAG_KEY_LENGTH),
        ("cost#center", rules.MSG_TAG_CHARACTERS),
        ("<b>", rules.MSG_TAG_CHARACTERS),
        ("a\tb", rules.MSG_TAG_CHARACTERS),
        (" leading", rules.MSG_TAG_SPACES),
        ("trailing ", rules.MSG_TAG_SPACES),
        ("aws:owner", rules.MSG_TAG_AWS_PREFIX),
        ("AWS:owner", rules.MSG_TAG_AWS_PREFIX),
        ("aWs:Owner", rules.MSG_TAG_AWS_PREFIX),
        ("byol-portal:request", rules.MSG_TAG_PORTAL_PREFIX),
        ("Byol-Portal:mine", rules.MSG_TAG_PORTAL_PREFIX),
    ],
)
def test_a_bad_tag_key_gets_its_message_on_the_key(key: str, message: str) -> None:
    formset = tag_formset(tag_rows(("Team", "a"), (key, "4711")))

    assert not formset.is_valid()
    assert formset.errors == [{}, {"key": [message]}]
    assert formset.non_form_errors() == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("v" * (rules.TAG_VALUE_MAX + 1), rules.MSG_TAG_VALUE_LENGTH),
        ("#1", rules.MSG_TAG_CHARACTERS),
        ("<script>", rules.MSG_TAG_CHARACTERS),
        ("a\tb", rules.MSG_TAG_CHARACTERS),
        (" leading", rules.MSG_TAG_SPACES),
        ("trailing ", rules.MSG_TAG_SPACES),
    ],
)
def test_a_bad_tag_value_gets_its_message_on_the_value(value: str, message: str) -> None:
    formset = tag_formset(tag_rows(("CostCenter", value)))

    assert not formset.is_valid()
    assert formset.errors == [{"value": [message]}]


def test_a_bad_key_and_a_bad_value_in_one_row_each_get_their_message() -> None:
    formset = tag_formset(tag_rows(("aws:x", "#1")))

    assert formset.errors == [{"key": [rules.MSG_TAG_AWS_PREFIX], "value": [rules.MSG_TAG_CHARACTERS]}]


@pytest.mark.parametrize(
    ("key", "value", "errors"),
    [
        ("k" * 300, "v", {"key": [rules.MSG_TAG_KEY_LENGTH]}),
        ("CostCenter", "v" * 600, {"value": [rules.MSG_TAG_VALUE_LENGTH]}),
    ],
)
def test_a_very_long_tag_key_or_value_gets_the_tag_length_message(key: str, value: str, errors: dict) -> None:
    formset = tag_formset(tag_rows((key, value)))

    assert formset.errors == [errors]


def test_a_tag_key_or_value_ending_in_a_newline_is_refused() -> None:
    formset = tag_formset(tag_rows(("CostCenter\n", "4711"), ("Team", "Finance\n")))

    assert formset.errors == [{"key": [rules.MSG_TAG_CHARACTERS]}, {"value": [rules.MSG_TAG_CHARACTERS]}]


def test_a_duplicate_key_is_named_in_the_formsets_message() -> None:
    formset = tag_formset(tag_rows(("Team", "a"), ("CostCenter", "4711"), ("Team", "b")))

    assert not formset.is_valid()
    assert formset.errors == [{}, {}, {}]
    assert formset.non_form_errors() == [rules.MSG_TAG_DUPLICATE.format(key="Team")]


def test_keys_that_differ_only_in_case_are_not_duplicates() -> None:
    formset = tag_formset(tag_rows(("Team", "a"), ("team", "b")))

    assert formset.is_valid(), formset.non_form_errors()


def test_47_tags_are_accepted() -> None:
    formset = tag_formset(tag_rows(*numbered_tags(rules.MAX_USER_TAGS)))

    assert formset.is_valid(), formset.non_form_errors()
    assert len(formset.tags()) == 47


@pytest.mark.parametrize("count", [rules.MAX_USER_TAGS + 1, rules.MAX_USER_TAGS + 60])
def test_more_than_47_tags_are_refused_with_the_too_many_tags_message(count: int) -> None:
    formset = tag_formset(tag_rows(*numbered_tags(count)))

    assert not formset.is_valid()
    assert formset.non_form_errors() == [rules.MSG_TOO_MANY_TAGS]


def test_a_row_ticked_for_removal_is_not_counted() -> None:
    formset = tag_formset(tag_rows(*numbered_tags(rules.MAX_USER_TAGS + 1), deleted=(5,)))

    assert formset.is_valid(), formset.non_form_errors()
    assert len(formset.tags()) == 47
    assert {"Key": "key5", "Value": "value5"} not in formset.tags()


def test_a_row_ticked_for_removal_is_not_a_duplicate_and_not_checked() -> None:
    formset = tag_formset(tag_rows(("Team", "a"), ("Team", "b"), ("aws:bad", "#"), deleted=(1, 2)))

    assert formset.is_valid(), (formset.errors, formset.non_form_errors())
    assert formset.tags() == [{"Key": "Team", "Value": "a"}]


# --- through the view, as the requester sees it ---------------------------------------------


def test_a_post_with_errors_shows_each_message_next_to_its_field_and_keeps_what_was_typed(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)
    justification = "Needed for Q3 <budget> & the 'audit' team."
    data = form_data(
        target,
        windows_version="11",
        ingestion_process="BYOL_REGULAR",
        office=rules.OFFICE_2019,
        image_name="win11-finance-2026",
        justification=justification,
        **{"tags-TOTAL_FORMS": "2", "tags-0-value": "#1", "tags-1-key": "Größe", "tags-1-value": "groß"},
    )

    response = client.post(reverse("request_create"), data)

    assert response.status_code == 400
    html = response.content.decode()
    assert escape(rules.MSG_WIN11_NO_PCOIP) in html
    assert escape(rules.MSG_TAG_CHARACTERS) in html
    page = Page(html)
    assert page.words("id_ingestion_process_error") == rules.MSG_WIN11_NO_PCOIP
    assert page.attrs["id_ingestion_process"]["aria-invalid"] == "true"
    assert page.text["id_tags-0-value-error"] == rules.MSG_TAG_CHARACTERS
    assert page.attrs["id_tags-0-value"]["aria-describedby"] == "id_tags-0-value-error"
    assert page.selected == {
        "id_target": str(target.pk),
        "id_windows_version": "11",
        "id_ingestion_process": "BYOL_REGULAR",
        "id_office": rules.OFFICE_2019,
        # The Image Builder path's selects, left at their first choice.
        "id_source_kind": "",
        "id_compute_type": "",
        "id_protocol": "",
        "id_image_validation_mode": "",
        "id_bundle_compute_type": "",
    }
    assert page.attrs["id_ec2_image_id"]["value"] == "ami-0123456789abcdef0"
    assert page.attrs["id_image_name"]["value"] == "win11-finance-2026"
    assert page.attrs["id_image_description"]["value"] == "Windows 10 22H2 for the finance team"
    assert page.text["id_justification"].removeprefix("\n") == justification
    assert escape(justification) in html
    assert [page.attrs[f"id_tags-{i}-{part}"]["value"] for i in (0, 1) for part in ("key", "value")] == [
        "CostCenter",
        "#1",
        "Größe",
        "groß",
    ]
    assert ImportRequest.objects.count() == 0
    assert RequestEvent.objects.count() == 0


def test_a_post_with_duplicate_tags_shows_the_tag_message_in_the_tags_section(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)
    data = form_data(target, **{"tags-TOTAL_FORMS": "2", "tags-1-key": "CostCenter", "tags-1-value": "0815"})

    response = client.post(reverse("request_create"), data)

    assert response.status_code == 400
    message = rules.MSG_TAG_DUPLICATE.format(key="CostCenter")
    assert escape(message) in response.content.decode()
    assert message in Page(response.content.decode()).words("tags")
    assert ImportRequest.objects.count() == 0


def test_a_valid_post_stores_the_request_with_its_tags_exactly_and_redirects_to_it(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)
    data = form_data(
        target,
        **{
            "tags-TOTAL_FORMS": "4",
            "tags-1-key": "Größe",
            "tags-1-value": "",
            "tags-2-key": "",
            "tags-2-value": "",
            "tags-3-key": "Removed",
            "tags-3-value": "x",
            "tags-3-DELETE": "on",
        },
    )

    response = client.post(reverse("request_create"), data)

    created = ImportRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    created.refresh_from_db()
    assert created.tags == [{"Key": "CostCenter", "Value": "4711"}, {"Key": "Größe", "Value": ""}]
    assert (created.requester, created.state, created.image_name, created.office) == (
        requester,
        State.SUBMITTED,
        "win10-finance-2026",
        "",
    )
    event = created.events.get()
    assert event.data["parameters"]["Tags"] == created.tags


def test_hostile_text_in_the_justification_is_stored_as_typed_and_shown_escaped(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)
    hostile = "<script>alert(1)</script>"

    response = client.post(reverse("request_create"), form_data(target, justification=hostile))

    created = ImportRequest.objects.get()
    assert response.status_code == 302
    created.refresh_from_db()
    assert created.justification == hostile
    detail = client.get(reverse("request_detail", args=[created.pk]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile not in html


def test_an_end_of_life_process_is_accepted_with_its_warning_shown(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)

    response = client.post(reverse("request_create"), form_data(target, ingestion_process="BYOL_GRAPHICS"), follow=True)

    created = ImportRequest.objects.get()
    assert response.redirect_chain == [(reverse("request_detail", args=[created.pk]), 302)]
    assert created.ingestion_process == "BYOL_GRAPHICS"
    assert escape(rules.MSG_END_OF_LIFE.format(process="BYOL_GRAPHICS")) in response.content.decode()


# --- the delivery plan: what happens after the import -------------------------------------------

# The target (conftest) is account 123456789012 in us-east-1.
PLAN_INPUTS = {
    "bundle": "on",
    "bundle_name": "byol-finance",
    "bundle_description": "Finance desktops (Win 10)",
    "bundle_compute_type": "STANDARD",
    "bundle_root_gb": "175",
    "bundle_user_gb": "100",
    "copy_regions": "eu-central-1, ap-southeast-2",
    "copy_bundles": "on",
    # One per line, or comma separated; the console's 1234-5678-9012 form is taken too.
    "share_accounts": "210987654321\r\n5555-6666-7777",
    "share_copies": "on",
}
FULL_PLAN = {
    "bundle": {
        "name": "byol-finance",
        "description": "Finance desktops (Win 10)",
        "compute_type": "STANDARD",
        "root_gb": 175,
        "user_gb": 100,
    },
    "copies": [{"region": "eu-central-1", "bundle": True}, {"region": "ap-southeast-2", "bundle": True}],
    "shares": [
        {"account_id": "210987654321", "region": "us-east-1"},
        {"account_id": "555566667777", "region": "us-east-1"},
        {"account_id": "210987654321", "region": "eu-central-1"},
        {"account_id": "555566667777", "region": "eu-central-1"},
        {"account_id": "210987654321", "region": "ap-southeast-2"},
        {"account_id": "555566667777", "region": "ap-southeast-2"},
    ],
}


def test_the_plans_inputs_become_the_delivery_plan_in_the_order_given(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, **PLAN_INPUTS))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["delivery_plan"] == FULL_PLAN
    fields = form.request_fields()
    assert fields["delivery_plan"] == FULL_PLAN
    # The workflow gets the request's fields and the plan, never the plan's inputs.
    assert set(fields) == {*ImportRequestForm.Meta.fields, "delivery_plan"}


def test_without_sharing_the_copies_each_account_gets_the_targets_image_only(target: AwsTarget) -> None:
    form = ImportRequestForm(form_data(target, copy_regions="eu-central-1", share_accounts="210987654321,555566667777"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["delivery_plan"] == {
        "copies": [{"region": "eu-central-1", "bundle": False}],
        "shares": [
            {"account_id": "210987654321", "region": "us-east-1"},
            {"account_id": "555566667777", "region": "us-east-1"},
        ],
    }


def test_the_bundle_settings_count_only_with_the_bundle_box_ticked(target: AwsTarget) -> None:
    form = ImportRequestForm(
        form_data(target, bundle_name="not a name", bundle_compute_type="GRAPHICS_G4DN", bundle_root_gb="lots")
    )

    assert form.is_valid(), form.errors
    assert form.cleaned_data["delivery_plan"] == {}


def test_a_bundle_needs_each_of_its_settings(target: AwsTarget) -> None:
    form = ImportRequestForm(
        form_data(
            target,
            bundle="on",
            bundle_name="",
            bundle_description="",
            bundle_compute_type="",
            bundle_root_gb="",
            bundle_user_gb="",
        )
    )

    assert form.errors == {name: [MSG_REQUIRED_FOR_BUNDLE] for name in BUNDLE_FIELDS}


def bundle_inputs(**changes: str) -> dict[str, str]:
    bundle = {name: value for name, value in PLAN_INPUTS.items() if name == "bundle" or name in BUNDLE_FIELDS}
    return bundle | changes


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        (bundle_inputs(bundle_name="byol finance"), "bundle_name", plan.MSG_BUNDLE_NAME),
        (bundle_inputs(bundle_name="b" * 65), "bundle_name", plan.MSG_BUNDLE_NAME),
        (bundle_inputs(bundle_description="Finance, HR"), "bundle_description", plan.MSG_BUNDLE_DESCRIPTION),
        (
            bundle_inputs(bundle_compute_type="GRAPHICS_G4DN"),
            "bundle_compute_type",
            plan.MSG_BUNDLE_COMPUTE_FOR_IMAGE.format(
                compute="Graphics.g4dn",
                what="ingestion process",
                image="BYOL_REGULAR_WSP",
                allowed="Value, Standard, Performance, Power, PowerPro, General purpose 4xlarge or "
                "General purpose 8xlarge",
            ),
        ),
        (bundle_inputs(bundle_root_gb="100"), "bundle_root_gb", plan.MSG_ROOT_SIZE),
        (
            bundle_inputs(bundle_root_gb="lots"),
            "bundle_root_gb",
            django_forms.IntegerField.default_error_messages["invalid"],
        ),
        (bundle_inputs(bundle_root_gb="80", bundle_user_gb="20"), "bundle_user_gb", plan.MSG_USER_SIZE_SMALL_ROOT),
        (bundle_inputs(bundle_user_gb="50"), "bundle_user_gb", plan.MSG_USER_SIZE_LARGE_ROOT),
        ({"copy_regions": "us-east-1"}, "copy_regions", plan.MSG_COPY_TARGET_REGION.format(region="us-east-1")),
        ({"copy_regions": "Frankfurt"}, "copy_regions", plan.MSG_COPY_REGION_FORMAT.format(region="Frankfurt")),
        (
            {"copy_regions": "cn-northwest-1"},
            "copy_regions",
            plan.MSG_COPY_OTHER_PARTITION.format(region="cn-northwest-1", partition="aws-cn", target_partition="aws"),
        ),
        (
            {"copy_regions": "eu-central-1 eu-central-1"},
            "copy_regions",
            plan.MSG_COPY_DUPLICATE.format(region="eu-central-1"),
        ),
        ({"copy_regions": "eu-central-1", "copy_bundles": "on"}, "copy_bundles", plan.MSG_COPY_BUNDLE_WITHOUT_BUNDLE),
        (
            {"share_accounts": "123456789012"},
            "share_accounts",
            plan.MSG_SHARE_OWN_ACCOUNT.format(account="123456789012"),
        ),
        (
            {"share_accounts": "2109876543"},
            "share_accounts",
            plan.MSG_SHARE_ACCOUNT_FORMAT.format(account="2109876543"),
        ),
        (
            {"share_accounts": "210987654321\n210987654321"},
            "share_accounts",
            plan.MSG_SHARE_DUPLICATE.format(account="210987654321"),
        ),
    ],
)
def test_a_bad_plan_input_is_refused_with_its_message_on_its_field(
    target: AwsTarget, inputs: dict[str, str], field: str, message: str
) -> None:
    form = ImportRequestForm(form_data(target, **inputs))

    assert form.errors == {field: [message]}


def test_a_repeated_copy_region_is_told_once_even_when_the_copies_are_shared(target: AwsTarget) -> None:
    form = ImportRequestForm(
        form_data(
            target,
            copy_regions="eu-central-1, eu-central-1, us-east-1",
            share_accounts="210987654321",
            share_copies="on",
        )
    )

    assert form.errors == {
        "copy_regions": [
            plan.MSG_COPY_DUPLICATE.format(region="eu-central-1"),
            plan.MSG_COPY_TARGET_REGION.format(region="us-east-1"),
        ]
    }


def test_copies_from_a_govcloud_target_are_refused_with_aws_rule(db: None) -> None:
    govcloud = AwsTarget.objects.create(name="GovCloud", account_id="123456789012", region="us-gov-west-1")

    form = ImportRequestForm(form_data(govcloud, copy_regions="us-gov-east-1", share_accounts="210987654321"))

    assert form.errors == {"copy_regions": [plan.MSG_COPY_GOVCLOUD], "share_accounts": [plan.MSG_SHARE_GOVCLOUD]}


@pytest.mark.parametrize(("compute_type", "accepted"), [("GRAPHICS_G7_4XLARGE", True), ("STANDARD", False)])
def test_an_image_builder_images_bundle_follows_its_compute_type(
    target: AwsTarget, compute_type: str, accepted: bool
) -> None:
    data = image_builder_form(target, compute_type="GRAPHICS_G7", **bundle_inputs(bundle_compute_type=compute_type))

    form = ImportRequestForm(data)

    assert form.is_valid() is accepted
    if not accepted:
        assert list(form.errors) == ["bundle_compute_type"]
        assert "(compute type GRAPHICS_G7)" in form.errors["bundle_compute_type"][0]


def test_the_page_gives_the_script_the_bundle_types_of_each_image(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)

    html = client.get(reverse("request_create")).content.decode()

    page = Page(html)
    assert page.attrs["bundle-compute-types"]["type"] == "application/json"
    assert json.loads(page.text["bundle-compute-types"]) == {
        "classic": {k: list(v) for k, v in plan.BUNDLE_COMPUTE_BY_PROCESS.items()},
        "image_builder": {k: list(v) for k, v in plan.BUNDLE_COMPUTE_BY_IMAGE_COMPUTE.items()},
    }
    assert page.attrs["id_bundle"]["aria-controls"] == "plan-bundle"
    # The bundle's settings sit in the block the script shows and hides with the box.
    assert page.words("plan-bundle").startswith("Bundle name")
    assert page.attrs["id_bundle_root_gb"]["value"] == "80"
    assert page.attrs["id_bundle_user_gb"]["value"] == "50"
    assert page.attrs["id_share_accounts"]["aria-describedby"] == "id_share_accounts_helptext"


def test_a_post_with_a_bad_plan_shows_the_messages_next_to_the_fields_and_saves_nothing(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)
    data = form_data(
        target, **PLAN_INPUTS | {"bundle_name": "byol finance", "copy_regions": "us-east-1", "share_accounts": "12345"}
    )

    response = client.post(reverse("request_create"), data)

    assert response.status_code == 400
    page = Page(response.content.decode())
    assert page.words("id_bundle_name_error") == plan.MSG_BUNDLE_NAME
    assert page.attrs["id_bundle_name"]["aria-invalid"] == "true"
    assert page.words("id_copy_regions_error") == plan.MSG_COPY_TARGET_REGION.format(region="us-east-1")
    assert page.words("id_share_accounts_error") == plan.MSG_SHARE_ACCOUNT_FORMAT.format(account="12345")
    # What was typed stays.
    assert page.attrs["id_bundle_name"]["value"] == "byol finance"
    assert page.attrs["id_copy_regions"]["value"] == "us-east-1"
    assert page.text["id_share_accounts"].strip() == "12345"
    assert "checked" in page.attrs["id_bundle"]
    assert page.selected["id_bundle_compute_type"] == "STANDARD"
    assert ImportRequest.objects.count() == 0
    assert RequestEvent.objects.count() == 0


def test_a_post_with_a_plan_stores_it_and_the_submit_event_carries_it(
    client: Any, requester: Any, target: AwsTarget
) -> None:
    client.force_login(requester)

    response = client.post(reverse("request_create"), form_data(target, **PLAN_INPUTS))

    created = ImportRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("request_detail", args=[created.pk])
    created.refresh_from_db()
    assert created.delivery_plan == FULL_PLAN
    assert created.events.get().data["plan"] == FULL_PLAN


def test_the_edit_page_starts_from_the_requests_plan(client: Any, requester: Any, make_request: Any) -> None:
    own = make_request(delivery_plan=FULL_PLAN)
    client.force_login(requester)

    page = Page(client.get(reverse("request_edit", args=[own.pk])).content.decode())

    assert "checked" in page.attrs["id_bundle"]
    assert page.attrs["id_bundle_name"]["value"] == "byol-finance"
    assert page.attrs["id_bundle_description"]["value"] == "Finance desktops (Win 10)"
    assert page.selected["id_bundle_compute_type"] == "STANDARD"
    assert (page.attrs["id_bundle_root_gb"]["value"], page.attrs["id_bundle_user_gb"]["value"]) == ("175", "100")
    assert page.attrs["id_copy_regions"]["value"] == "eu-central-1, ap-southeast-2"
    assert "checked" in page.attrs["id_copy_bundles"]
    assert page.text["id_share_accounts"].split() == ["210987654321", "555566667777"]
    assert "checked" in page.attrs["id_share_copies"]


def test_the_edit_page_of_a_request_without_a_plan_offers_the_defaults(
    client: Any, requester: Any, make_request: Any
) -> None:
    own = make_request()
    client.force_login(requester)

    page = Page(client.get(reverse("request_edit", args=[own.pk])).content.decode())

    assert "checked" not in page.attrs["id_bundle"]
    assert (page.attrs["id_bundle_root_gb"]["value"], page.attrs["id_bundle_user_gb"]["value"]) == ("80", "50")
    assert page.attrs["id_copy_regions"].get("value") in (None, "")
    assert page.text["id_share_accounts"].strip() == ""


def test_saving_the_edit_page_as_it_came_keeps_the_plan_and_a_change_replaces_it(
    client: Any, requester: Any, make_request: Any, target: AwsTarget
) -> None:
    own = make_request(delivery_plan=FULL_PLAN)
    client.force_login(requester)
    edit = reverse("request_edit", args=[own.pk])
    data = form_data(target, image_name=own.image_name, version="1", **PLAN_INPUTS)

    assert client.post(edit, data).status_code == 302
    own.refresh_from_db()
    assert (own.version, own.delivery_plan) == (2, FULL_PLAN)

    unticked = {name: value for name, value in data.items() if name not in ("bundle", "copy_bundles", "share_copies")}
    response = client.post(edit, unticked | {"version": "2", "copy_regions": "", "share_accounts": "210987654321"})

    assert response.status_code == 302
    own.refresh_from_db()
    assert (own.version, own.delivery_plan) == (3, {"shares": [{"account_id": "210987654321", "region": "us-east-1"}]})
    event = own.events.order_by("-seq").first()
    assert event.data["before"]["plan"] == FULL_PLAN
    assert event.data["after"]["plan"] == own.delivery_plan
