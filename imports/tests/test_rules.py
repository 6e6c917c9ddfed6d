"""The rules of PRODUCT.md section 4 as pure functions, without the database.

Every rule has a case that passes and a case that fails with its exact message constant. The
constants copied from botocore's service model are checked against it, so a botocore upgrade
that changes a limit or a pattern fails here.
"""

import botocore.session
import pytest

from imports import rules
from imports.rules import Protocol, Violation

WORKSPACES = botocore.session.get_session().get_service_model("workspaces")
IMPORT_INPUT = WORKSPACES.operation_model("ImportWorkspaceImage").input_shape.members
BOTOCORE_PROCESSES: list[str] = WORKSPACES.shape_for("WorkspaceImageIngestionProcess").enum

PCOIP_PROCESSES = ["BYOL_REGULAR", "BYOL_GRAPHICS", "BYOL_GRAPHICSPRO", "BYOL_GRAPHICS_G4DN"]
WSP_PROCESSES = ["BYOL_REGULAR_WSP", "BYOL_GRAPHICS_G4DN_WSP"]
BYOP_PROCESSES = ["BYOL_REGULAR_BYOP", "BYOL_GRAPHICS_G4DN_BYOP"]
G4DN_PROCESSES = ["BYOL_GRAPHICS_G4DN", "BYOL_GRAPHICS_G4DN_WSP", "BYOL_GRAPHICS_G4DN_BYOP"]
END_OF_LIFE_PROCESSES = ["BYOL_GRAPHICS", "BYOL_GRAPHICSPRO"]
OFFICES = ["", rules.OFFICE_2016, rules.OFFICE_2019]


def combination(
    *, windows: str = "10", process: str = "BYOL_REGULAR_WSP", office: str = "", byop_allowed: bool = False
) -> list[Violation]:
    return rules.combination_violations(
        windows_version=windows, ingestion_process=process, office=office, byop_allowed=byop_allowed
    )


def same_regex_text(pattern: str) -> str:
    r"""A pattern with its hyphen escapes removed: botocore writes a literal hyphen as `\-`, or in
    ImageName as `\\-` (escaped twice, as in the API reference), the portal as `\-` or `-`."""
    return pattern.replace("\\\\-", "-").replace("\\-", "-")


def tags(*keys: str) -> list[dict[str, str]]:
    return [{"Key": key, "Value": "v"} for key in keys]


# --- constants copied from botocore's service model -----------------------------------------


def test_the_ingestion_processes_are_exactly_botocores_enum_in_its_order() -> None:
    assert len(BOTOCORE_PROCESSES) == 8
    assert list(rules.INGESTION_PROCESSES) == BOTOCORE_PROCESSES


@pytest.mark.parametrize("value", BOTOCORE_PROCESSES)
def test_each_ingestion_process_takes_its_protocol_from_its_suffix(value: str) -> None:
    expected = Protocol.WSP if value.endswith("_WSP") else Protocol.BYOP if value.endswith("_BYOP") else Protocol.PCOIP

    process = rules.INGESTION_PROCESSES[value]

    assert process.value == value
    assert process.protocol is expected
    assert process.byop is (expected is Protocol.BYOP)
    assert process.g4dn is (value in G4DN_PROCESSES)
    assert process.gpu is ("GRAPHICS" in value)
    assert process.end_of_life is (value in END_OF_LIFE_PROCESSES)
    assert str(expected) in process.label


def test_the_office_values_are_botocores_application_enum() -> None:
    assert [value for value, _ in rules.OFFICE_CHOICES] == ["", rules.OFFICE_2016, rules.OFFICE_2019]
    assert {rules.OFFICE_2016, rules.OFFICE_2019} == set(IMPORT_INPUT["Applications"].member.enum)


@pytest.mark.parametrize(
    ("parameter", "portal_pattern"),
    [
        ("Ec2ImageId", rules.EC2_IMAGE_ID_RE.pattern),
        ("ImageName", rules.IMAGE_NAME_RE.pattern),
        ("ImageDescription", rules.IMAGE_DESCRIPTION_RE.pattern),
    ],
)
def test_the_portal_patterns_are_botocores_patterns(parameter: str, portal_pattern: str) -> None:
    botocore_pattern = IMPORT_INPUT[parameter].metadata["pattern"]

    assert same_regex_text(portal_pattern) == same_regex_text(botocore_pattern)


@pytest.mark.parametrize(
    ("parameter", "portal_max"),
    [("ImageName", rules.IMAGE_NAME_MAX), ("ImageDescription", rules.IMAGE_DESCRIPTION_MAX)],
)
def test_the_image_name_and_description_lengths_are_botocores(parameter: str, portal_max: int) -> None:
    assert IMPORT_INPUT[parameter].metadata["min"] == 1
    assert IMPORT_INPUT[parameter].metadata["max"] == portal_max


def test_the_tag_key_and_value_lengths_are_botocores() -> None:
    tag = IMPORT_INPUT["Tags"].member.members

    assert (tag["Key"].metadata["min"], tag["Key"].metadata["max"]) == (1, rules.TAG_KEY_MAX)
    assert tag["Value"].metadata["max"] == rules.TAG_VALUE_MAX


def test_the_portal_keeps_three_of_the_fifty_tags_for_its_own() -> None:
    assert rules.MAX_TAGS == 50
    assert rules.MAX_USER_TAGS == 47 == rules.MAX_TAGS - len(rules.PORTAL_TAG_KEYS)
    assert all(key.startswith(rules.PORTAL_TAG_PREFIX) for key in rules.PORTAL_TAG_KEYS)


@pytest.mark.parametrize("key", rules.PORTAL_TAG_KEYS)
def test_the_portals_own_tag_keys_are_valid_aws_tag_keys_but_refused_from_users(key: str) -> None:
    assert rules.TAG_TEXT_RE.match(key)
    assert len(key) <= rules.TAG_KEY_MAX
    assert rules.tag_text_violation(key, is_key=True) == rules.MSG_TAG_PORTAL_PREFIX


# --- the regexes ----------------------------------------------------------------------------


@pytest.mark.parametrize("ami", ["ami-0123abcd", "ami-0123456789abcdef0", "ami-00000000", "ami-ffffffffffffffff1"])
def test_an_ami_id_with_8_or_17_lowercase_hex_digits_matches(ami: str) -> None:
    assert rules.EC2_IMAGE_ID_RE.match(ami)


@pytest.mark.parametrize(
    "ami",
    [
        "ami-0123ABCD",  # uppercase hex
        "ami-0123456789ABCDEF0",
        "ami-0123abcd9",  # 9 digits
        "ami-0123abc",  # 7 digits
        "ami-0123456789abcdef",  # 16 digits
        "ami-0123456789abcdef01",  # 18 digits
        "ami-0123abcg",  # not hex
        "AMI-0123abcd",
        "ami_0123abcd",
        "0123abcd",
        " ami-0123abcd",
        "ami-0123abcd ",
        "",
    ],
)
def test_an_ami_id_in_any_other_form_does_not_match(ami: str) -> None:
    assert not rules.EC2_IMAGE_ID_RE.match(ami)


@pytest.mark.parametrize("name", ["win10-finance-2026", "a", "Image_v1.2/(test)", "x" * 64])
def test_an_image_name_of_letters_digits_and_the_allowed_punctuation_matches(name: str) -> None:
    assert rules.IMAGE_NAME_RE.match(name)


@pytest.mark.parametrize("name", ["", "with space", "name#1", "Größe", "a\\b", "name:1", "a,b", "<b>", "tab\there"])
def test_an_image_name_with_any_other_character_does_not_match(name: str) -> None:
    assert not rules.IMAGE_NAME_RE.match(name)


@pytest.mark.parametrize("description", ["Windows 10 22H2 for the finance team", "a", "(v1.2) a/b_c - d"])
def test_a_description_of_letters_digits_spaces_and_the_allowed_punctuation_matches(description: str) -> None:
    assert rules.IMAGE_DESCRIPTION_RE.match(description)


@pytest.mark.parametrize("description", ["", "comma, no", "tab\there", "Größe", "semi;colon", "a\\b", "<script>"])
def test_a_description_with_any_other_character_does_not_match(description: str) -> None:
    assert not rules.IMAGE_DESCRIPTION_RE.match(description)


# --- one tag's key or value -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "CostCenter",
        "a",
        "k" * rules.TAG_KEY_MAX,
        "Größe",
        "team:finance",
        "a+b-c=d.e_f:g/h@i",
        "two words",
        "awsome",  # starts with "aws" but not "aws:"
        "my-aws:key",
        "byol-portal",  # the prefix is "byol-portal:" with the colon
    ],
)
def test_a_tag_key_of_allowed_characters_is_fine(key: str) -> None:
    assert rules.tag_text_violation(key, is_key=True) is None


@pytest.mark.parametrize("value", ["", "4711", "v" * rules.TAG_VALUE_MAX, "Größe", "a+b-c=d.e_f:g/h@i", "two words"])
def test_a_tag_value_of_allowed_characters_is_fine_even_empty(value: str) -> None:
    assert rules.tag_text_violation(value, is_key=False) is None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", rules.MSG_TAG_KEY_REQUIRED),
        ("k" * (rules.TAG_KEY_MAX + 1), rules.MSG_TAG_KEY_LENGTH),
        ("cost#center", rules.MSG_TAG_CHARACTERS),
        ("<b>", rules.MSG_TAG_CHARACTERS),
        ("a\tb", rules.MSG_TAG_CHARACTERS),
        ("a,b", rules.MSG_TAG_CHARACTERS),
        ("non\u00a0breaking", rules.MSG_TAG_CHARACTERS),
        (" leading", rules.MSG_TAG_SPACES),
        ("trailing ", rules.MSG_TAG_SPACES),
        ("aws:owner", rules.MSG_TAG_AWS_PREFIX),
        ("AWS:owner", rules.MSG_TAG_AWS_PREFIX),
        ("Aws:Owner", rules.MSG_TAG_AWS_PREFIX),
        ("byol-portal:request", rules.MSG_TAG_PORTAL_PREFIX),
        ("BYOL-Portal:mine", rules.MSG_TAG_PORTAL_PREFIX),
    ],
)
def test_a_bad_tag_key_gets_the_message_that_says_what_to_change(key: str, message: str) -> None:
    assert rules.tag_text_violation(key, is_key=True) == message


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
def test_a_bad_tag_value_gets_the_message_that_says_what_to_change(value: str, message: str) -> None:
    assert rules.tag_text_violation(value, is_key=False) == message


@pytest.mark.parametrize("is_key", [True, False])
@pytest.mark.parametrize("text", ["CostCenter\n", "4711\r\n", "\n"])
def test_a_tag_text_ending_in_a_newline_is_refused_although_dollar_would_match_before_it(
    is_key: bool, text: str
) -> None:
    assert rules.tag_text_violation(text, is_key=is_key) == rules.MSG_TAG_CHARACTERS


# --- the set of tags ------------------------------------------------------------------------


def test_no_tags_at_all_is_fine() -> None:
    assert rules.tag_violations([]) == []


def test_distinct_keys_are_fine_and_keys_differing_only_in_case_are_distinct() -> None:
    assert rules.tag_violations(tags("Team", "team", "CostCenter")) == []


def test_a_duplicate_key_is_named_in_the_message() -> None:
    assert rules.tag_violations(tags("Team", "CostCenter", "Team")) == [
        Violation("tags", rules.MSG_TAG_DUPLICATE.format(key="Team"))
    ]


def test_as_many_tags_as_the_portal_leaves_to_the_user_are_fine() -> None:
    assert rules.tag_violations(tags(*(f"key{i}" for i in range(rules.MAX_USER_TAGS)))) == []


def test_one_tag_more_than_the_portal_leaves_to_the_user_is_refused() -> None:
    many = (tag for tag in tags(*(f"key{i}" for i in range(rules.MAX_USER_TAGS + 1))))

    assert rules.tag_violations(many) == [Violation("tags", rules.MSG_TOO_MANY_TAGS)]


# --- cross-field rules ----------------------------------------------------------------------


@pytest.mark.parametrize("windows", ["10", "11"])
@pytest.mark.parametrize("process", BYOP_PROCESSES)
def test_a_byop_process_is_refused_where_the_target_is_not_allow_listed(windows: str, process: str) -> None:
    assert combination(windows=windows, process=process, byop_allowed=False) == [
        Violation("ingestion_process", rules.MSG_BYOP_NOT_ALLOWED)
    ]


@pytest.mark.parametrize("windows", ["10", "11"])
@pytest.mark.parametrize("process", BYOP_PROCESSES)
def test_a_byop_process_is_accepted_where_the_target_is_allow_listed(windows: str, process: str) -> None:
    assert combination(windows=windows, process=process, byop_allowed=True) == []


@pytest.mark.parametrize("process", PCOIP_PROCESSES + WSP_PROCESSES)
def test_a_target_without_byop_accepts_every_other_process_on_windows_10(process: str) -> None:
    assert combination(windows="10", process=process, byop_allowed=False) == []


@pytest.mark.parametrize("process", PCOIP_PROCESSES)
def test_windows_11_refuses_every_pcoip_process(process: str) -> None:
    assert combination(windows="11", process=process, byop_allowed=True) == [
        Violation("ingestion_process", rules.MSG_WIN11_NO_PCOIP)
    ]


@pytest.mark.parametrize("process", WSP_PROCESSES + BYOP_PROCESSES)
def test_windows_11_accepts_every_wsp_and_byop_process(process: str) -> None:
    assert combination(windows="11", process=process, byop_allowed=True) == []


@pytest.mark.parametrize(
    ("office", "expected"),
    [
        ("", []),
        (rules.OFFICE_2019, []),
        (rules.OFFICE_2016, [Violation("office", rules.MSG_WIN11_WSP_REGULAR_OFFICE)]),
    ],
)
def test_windows_11_with_the_regular_wsp_process_takes_office_2019_or_none(office: str, expected: list) -> None:
    assert combination(windows="11", process="BYOL_REGULAR_WSP", office=office) == expected


@pytest.mark.parametrize(
    ("office", "expected"),
    [
        ("", []),
        (rules.OFFICE_2019, [Violation("office", rules.MSG_WIN11_WSP_GPU_OFFICE)]),
        (rules.OFFICE_2016, [Violation("office", rules.MSG_WIN11_WSP_GPU_OFFICE)]),
    ],
)
def test_windows_11_with_the_gpu_wsp_process_takes_no_office(office: str, expected: list) -> None:
    assert combination(windows="11", process="BYOL_GRAPHICS_G4DN_WSP", office=office) == expected


@pytest.mark.parametrize(
    ("windows", "process"),
    [("10", process) for process in G4DN_PROCESSES] + [("11", "BYOL_GRAPHICS_G4DN_BYOP")],
)
@pytest.mark.parametrize("office", ["", rules.OFFICE_2019, rules.OFFICE_2016])
def test_a_g4dn_process_takes_any_office_as_no_aws_source_forbids_office_2016(
    windows: str, process: str, office: str
) -> None:
    assert combination(windows=windows, process=process, office=office, byop_allowed=True) == []


@pytest.mark.parametrize("process", G4DN_PROCESSES)
def test_a_g4dn_process_with_office_2016_gets_a_warning_to_try_office_2019_if_the_import_fails(process: str) -> None:
    warnings = rules.warnings_for(ingestion_process=process, office=rules.OFFICE_2016)

    assert rules.MSG_G4DN_OFFICE_2016 in warnings
    assert "Office 2019" in rules.MSG_G4DN_OFFICE_2016
    assert rules.MSG_G4DN_OFFICE_2016 not in rules.warnings_for(ingestion_process=process, office=rules.OFFICE_2019)
    assert rules.MSG_G4DN_OFFICE_2016 not in rules.warnings_for(ingestion_process=process)


@pytest.mark.parametrize("process", ["BYOL_REGULAR", "BYOL_GRAPHICS", "BYOL_GRAPHICSPRO", "BYOL_REGULAR_WSP"])
@pytest.mark.parametrize("office", [rules.OFFICE_2016, rules.OFFICE_2019])
def test_windows_10_without_g4dn_takes_either_office(process: str, office: str) -> None:
    assert combination(windows="10", process=process, office=office) == []


def test_windows_11_with_pcoip_g4dn_and_office_2016_is_refused_only_for_pcoip() -> None:
    assert combination(windows="11", process="BYOL_GRAPHICS_G4DN", office=rules.OFFICE_2016) == [
        Violation("ingestion_process", rules.MSG_WIN11_NO_PCOIP),
    ]


def test_byop_not_allowed_with_g4dn_and_office_2016_is_refused_only_for_byop() -> None:
    assert combination(windows="10", process="BYOL_GRAPHICS_G4DN_BYOP", office=rules.OFFICE_2016) == [
        Violation("ingestion_process", rules.MSG_BYOP_NOT_ALLOWED),
    ]


@pytest.mark.parametrize("process", ["", "BYOL_SOMETHING_NEW"])
def test_an_unknown_process_gives_no_cross_field_violation_the_choice_field_reports_it(process: str) -> None:
    assert combination(windows="11", process=process, office=rules.OFFICE_2016) == []


@pytest.mark.parametrize("windows", ["10", "11"])
@pytest.mark.parametrize("process", BOTOCORE_PROCESSES)
@pytest.mark.parametrize("office", OFFICES)
@pytest.mark.parametrize("byop_allowed", [True, False])
def test_every_violation_of_every_combination_names_a_field_the_form_has_and_a_known_message(
    windows: str, process: str, office: str, byop_allowed: bool
) -> None:
    known = {
        ("ingestion_process", rules.MSG_BYOP_NOT_ALLOWED),
        ("ingestion_process", rules.MSG_WIN11_NO_PCOIP),
        ("office", rules.MSG_WIN11_WSP_REGULAR_OFFICE),
        ("office", rules.MSG_WIN11_WSP_GPU_OFFICE),
    }

    violations = combination(windows=windows, process=process, office=office, byop_allowed=byop_allowed)

    assert {(v.field, v.message) for v in violations} <= known
    assert len({v.field for v in violations}) == len(violations)  # at most one message per field


# --- warnings -------------------------------------------------------------------------------


@pytest.mark.parametrize("process", END_OF_LIFE_PROCESSES)
def test_an_end_of_life_process_gets_a_warning_that_names_it_but_no_violation(process: str) -> None:
    assert rules.warnings_for(ingestion_process=process) == [rules.MSG_END_OF_LIFE.format(process=process)]
    assert process in rules.warnings_for(ingestion_process=process)[0]
    assert combination(windows="10", process=process) == []


@pytest.mark.parametrize("process", [p for p in BOTOCORE_PROCESSES if p not in END_OF_LIFE_PROCESSES] + [""])
def test_every_other_process_without_office_gets_no_warning(process: str) -> None:
    assert rules.warnings_for(ingestion_process=process) == []
    assert rules.warnings_for(ingestion_process=process, office="") == []


@pytest.mark.parametrize(
    ("office", "named"), [(rules.OFFICE_2016, "Microsoft Office 2016"), (rules.OFFICE_2019, "Microsoft Office 2019")]
)
@pytest.mark.parametrize("process", ["BYOL_REGULAR", "BYOL_REGULAR_WSP", "BYOL_GRAPHICS_G4DN_WSP"])
def test_office_2016_and_2019_get_a_warning_that_microsoft_support_ended_and_what_to_choose_instead(
    process: str, office: str, named: str
) -> None:
    warnings = rules.warnings_for(ingestion_process=process, office=office)

    assert rules.MSG_OFFICE_END_OF_SUPPORT.format(office=named) in warnings
    assert "14 October 2025" in warnings[0]
    assert "No Office" in warnings[0]
    assert combination(windows="10", process=process, office=office) == []


def test_an_end_of_life_process_with_office_gets_both_warnings_process_first() -> None:
    assert rules.warnings_for(ingestion_process="BYOL_GRAPHICS", office=rules.OFFICE_2019) == [
        rules.MSG_END_OF_LIFE.format(process="BYOL_GRAPHICS"),
        rules.MSG_OFFICE_END_OF_SUPPORT.format(office="Microsoft Office 2019"),
    ]


def test_the_end_of_life_processes_say_so_in_their_label() -> None:
    labels = {value: p.label for value, p in rules.INGESTION_PROCESSES.items()}

    assert [value for value, label in labels.items() if "end-of-life" in label] == END_OF_LIFE_PROCESSES
