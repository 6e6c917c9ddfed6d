"""The delivery plan's rules (imports.plan): the constants are the service model's, good plans
pass, and each broken rule gives its one message on the form field to change."""

import re
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from imports import plan, rules

TARGET = {"target_region": "eu-west-1", "target_account_id": "123456789012"}
CLASSIC_WSP = {"import_path": "classic", "ingestion_process": "BYOL_REGULAR_WSP", "compute_type": ""}
BUNDLE = {
    "name": "byol-std",
    "description": "Standard desktops (Win 11)",
    "compute_type": "STANDARD",
    "root_gb": 80,
    "user_gb": 50,
}
FULL_PLAN = {
    "bundle": BUNDLE,
    "copies": [{"region": "eu-central-1", "bundle": True}, {"region": "us-east-1", "bundle": False}],
    "shares": [
        {"account_id": "210987654321", "region": "eu-west-1"},
        {"account_id": "210987654321", "region": "eu-central-1"},
        {"account_id": "555566667777", "region": "us-east-1"},
    ],
}
REGULAR = plan.REGULAR_COMPUTE
# Twelve Arabic-Indic digits: Python's \d takes them, AWS's account ids do not.
OTHER_DIGITS = "\u0662" * 12


def violations(delivery_plan: Any, *, image: dict[str, str] = CLASSIC_WSP, **target: str) -> dict[str, list[str]]:
    return plan.plan_violations(delivery_plan, **(TARGET | target), **image)


def with_bundle(**changes: Any) -> dict[str, Any]:
    return {"bundle": BUNDLE | changes}


def copies(*regions: str, bundle: bool = False) -> list[dict[str, Any]]:
    return [{"region": region, "bundle": bundle} for region in regions]


def shares(*accounts: str, region: str = "eu-west-1") -> list[dict[str, str]]:
    return [{"account_id": account, "region": region} for account in accounts]


# --- the constants are the service model's ---------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Any:
    return botocore.session.get_session().get_service_model("workspaces")


def test_the_bundle_name_and_description_rules_are_the_service_models(model: Any) -> None:
    name, description = model.shape_for("WorkspaceBundleName"), model.shape_for("WorkspaceBundleDescription")

    # The model writes the name's hyphen escaped for Java ("\\-"): the same character class.
    assert name.metadata["pattern"].replace("\\\\", "\\") == plan.BUNDLE_NAME_RE.pattern
    assert (name.metadata["min"], name.metadata["max"]) == (1, plan.BUNDLE_NAME_MAX)
    assert description.metadata["pattern"] == plan.BUNDLE_DESCRIPTION_RE.pattern
    assert (description.metadata["min"], description.metadata["max"]) == (1, plan.BUNDLE_DESCRIPTION_MAX)


def test_the_compute_types_are_the_models_compute_enum_in_order(model: Any) -> None:
    create = model.operation_model("CreateWorkspaceBundle").input_shape

    assert tuple(create.members["ComputeType"].members["Name"].enum) == plan.COMPUTE_TYPES


def test_the_region_and_account_patterns_are_the_models(model: Any) -> None:
    region = model.shape_for("Region")
    account = model.operation_model("UpdateWorkspaceImagePermission").input_shape.members["SharedAccountId"]

    assert region.metadata["pattern"] == plan.REGION_RE.pattern
    assert region.metadata["max"] == 31
    assert account.metadata["pattern"] == r"^\d{12}$"
    # \d would also take other scripts' digits: the portal's pattern is the ASCII one.
    assert plan.ACCOUNT_ID_RE.pattern == r"^[0-9]{12}$"


def test_the_partitions_are_botocores() -> None:
    partitions = botocore.loaders.Loader().load_data("partitions")["partitions"]

    assert {p["id"]: p["regionRegex"] for p in partitions} == {
        name: pattern.pattern for name, pattern in plan.PARTITIONS.items()
    } | {"aws-eusc": r"^eusc\-(de)\-\w+\-\d+$"}


def test_the_model_still_says_what_the_partition_rules_rest_on(model: Any) -> None:
    copy = model.operation_model("CopyWorkspaceImage").documentation
    share = model.operation_model("UpdateWorkspaceImagePermission").documentation

    assert "In the China (Ningxia) Region, you can copy images only within the same Region" in copy
    assert "to copy images to and from other Regions, contact" in copy
    assert "Sharing Bring Your Own License (BYOL) images across Amazon Web Services accounts isn't supported" in share


# --- the compute types a bundle of the image may have -----------------------------------------


def test_every_ingestion_process_and_image_builder_compute_type_names_its_bundle_types() -> None:
    assert set(plan.BUNDLE_COMPUTE_BY_PROCESS) == set(rules.INGESTION_PROCESSES)
    assert set(plan.BUNDLE_COMPUTE_BY_IMAGE_COMPUTE) == {value for value, _ in rules.COMPUTE_TYPE_CHOICES}
    tables = [*plan.BUNDLE_COMPUTE_BY_PROCESS.values(), *plan.BUNDLE_COMPUTE_BY_IMAGE_COMPUTE.values()]
    assert all(set(allowed) <= set(plan.COMPUTE_TYPES) for allowed in tables)


@pytest.mark.parametrize(
    ("import_path", "ingestion_process", "compute_type", "allowed"),
    [
        ("classic", "BYOL_REGULAR", "", REGULAR),
        ("classic", "BYOL_REGULAR_WSP", "", REGULAR),
        ("classic", "BYOL_REGULAR_BYOP", "", REGULAR),
        ("classic", "BYOL_GRAPHICS", "", ("GRAPHICS",)),
        ("classic", "BYOL_GRAPHICSPRO", "", ("GRAPHICSPRO",)),
        ("classic", "BYOL_GRAPHICS_G4DN", "", ("GRAPHICS_G4DN", "GRAPHICSPRO_G4DN")),
        ("classic", "BYOL_GRAPHICS_G4DN_WSP", "", ("GRAPHICS_G4DN", "GRAPHICSPRO_G4DN")),
        ("classic", "BYOL_GRAPHICS_G4DN_BYOP", "", ("GRAPHICS_G4DN", "GRAPHICSPRO_G4DN")),
        # The classic path goes by the process alone, the Image Builder path by its compute type.
        ("classic", "BYOL_REGULAR", "GRAPHICS_G7", REGULAR),
        ("image_builder", "BYOL_REGULAR", "GRAPHICS_G4DN", ("GRAPHICS_G4DN", "GRAPHICSPRO_G4DN")),
        ("image_builder", "", "BASE", REGULAR),
        (
            "image_builder",
            "",
            "GRAPHICS_G6",
            (
                "GRAPHICS_G6_XLARGE",
                "GRAPHICS_G6_2XLARGE",
                "GRAPHICS_G6_4XLARGE",
                "GRAPHICS_G6_8XLARGE",
                "GRAPHICS_G6_16XLARGE",
                "GRAPHICS_GR6_4XLARGE",
                "GRAPHICS_GR6_8XLARGE",
                "GRAPHICS_G6F_LARGE",
                "GRAPHICS_G6F_XLARGE",
                "GRAPHICS_G6F_2XLARGE",
                "GRAPHICS_G6F_4XLARGE",
                "GRAPHICS_GR6F_4XLARGE",
            ),
        ),
        (
            "image_builder",
            "",
            "GRAPHICS_G7",
            ("GRAPHICS_G7_2XLARGE", "GRAPHICS_G7_4XLARGE", "GRAPHICS_G7_8XLARGE", "GRAPHICS_G7_12XLARGE"),
        ),
        # Not chosen yet: nothing to narrow to.
        ("classic", "", "", ()),
        ("image_builder", "", "", ()),
    ],
)
def test_the_bundle_types_follow_the_images_process_or_compute_type(
    import_path: str, ingestion_process: str, compute_type: str, allowed: tuple[str, ...]
) -> None:
    assert plan.allowed_bundle_compute_types(import_path, ingestion_process, compute_type) == allowed


@pytest.mark.parametrize(
    ("compute_type", "label"),
    [
        ("STANDARD", "Standard"),
        ("POWERPRO", "PowerPro"),
        ("GENERALPURPOSE_4XLARGE", "General purpose 4xlarge"),
        ("GRAPHICSPRO_G4DN", "GraphicsPro.g4dn"),
        ("GRAPHICS_GR6F_4XLARGE", "Graphics.gr6f.4xlarge"),
    ],
)
def test_compute_types_have_the_consoles_names(compute_type: str, label: str) -> None:
    assert plan.compute_label(compute_type) == label


# --- good plans pass --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delivery_plan", "image"),
    [
        ({}, CLASSIC_WSP),
        (with_bundle(), CLASSIC_WSP),
        (FULL_PLAN, CLASSIC_WSP),
        ({"copies": copies("eu-central-1", "ap-southeast-2")}, CLASSIC_WSP),
        ({"shares": shares("210987654321")}, CLASSIC_WSP),
        (with_bundle(name="a" * 64, description="d" * 255), CLASSIC_WSP),
        (with_bundle(name="Team_A/v1.2(final)-x"), CLASSIC_WSP),
        (with_bundle(compute_type="GRAPHICSPRO_G4DN"), {**CLASSIC_WSP, "ingestion_process": "BYOL_GRAPHICS_G4DN_BYOP"}),
        (
            with_bundle(compute_type="GRAPHICS_GR6_8XLARGE"),
            {"import_path": "image_builder", "ingestion_process": "", "compute_type": "GRAPHICS_G6"},
        ),
        # The image's kind not chosen yet (its own field says so): any compute type of the model.
        (
            with_bundle(compute_type="GRAPHICS_G7_2XLARGE"),
            {"import_path": "classic", "ingestion_process": "", "compute_type": ""},
        ),
    ],
)
def test_a_good_plan_breaks_no_rule(delivery_plan: dict[str, Any], image: dict[str, str]) -> None:
    assert violations(delivery_plan, image=image) == {}


@pytest.mark.parametrize(
    ("root", "user"), [(80, 10), (80, 50), (80, 100), (175, 100), (175, 2000), (2000, 100), (2000, 2000), (500, 300)]
)
def test_each_of_aws_volume_pairs_is_accepted(root: int, user: int) -> None:
    assert violations(with_bundle(root_gb=root, user_gb=user)) == {}


# --- each broken rule: its message on its field -------------------------------------------------

COPY_BAD = plan.MSG_COPY_REGION_FORMAT.format
SHARE_BAD = plan.MSG_SHARE_ACCOUNT_FORMAT.format


@pytest.mark.parametrize(
    ("delivery_plan", "expected"),
    [
        (with_bundle(name=""), {"bundle_name": [plan.MSG_BUNDLE_NAME]}),
        (with_bundle(name="a" * 65), {"bundle_name": [plan.MSG_BUNDLE_NAME]}),
        (with_bundle(name="byol std"), {"bundle_name": [plan.MSG_BUNDLE_NAME]}),
        (with_bundle(name="back\\slash"), {"bundle_name": [plan.MSG_BUNDLE_NAME]}),
        (with_bundle(name="byol-std\n"), {"bundle_name": [plan.MSG_BUNDLE_NAME]}),
        (with_bundle(description=""), {"bundle_description": [plan.MSG_BUNDLE_DESCRIPTION]}),
        (with_bundle(description="d" * 256), {"bundle_description": [plan.MSG_BUNDLE_DESCRIPTION]}),
        (with_bundle(description="comma, no"), {"bundle_description": [plan.MSG_BUNDLE_DESCRIPTION]}),
        (with_bundle(description="Größe"), {"bundle_description": [plan.MSG_BUNDLE_DESCRIPTION]}),
        (with_bundle(compute_type=""), {"bundle_compute_type": [plan.MSG_BUNDLE_COMPUTE_UNKNOWN]}),
        (with_bundle(compute_type="GRAPHICS_G5"), {"bundle_compute_type": [plan.MSG_BUNDLE_COMPUTE_UNKNOWN]}),
        (with_bundle(root_gb=100), {"bundle_root_gb": [plan.MSG_ROOT_SIZE]}),
        (with_bundle(root_gb=174, user_gb=100), {"bundle_root_gb": [plan.MSG_ROOT_SIZE]}),
        (with_bundle(root_gb=2001, user_gb=100), {"bundle_root_gb": [plan.MSG_ROOT_SIZE]}),
        (with_bundle(root_gb=0), {"bundle_root_gb": [plan.MSG_ROOT_SIZE]}),
        (with_bundle(root_gb="80"), {"bundle_root_gb": [plan.MSG_SIZE_NUMBER]}),
        (
            with_bundle(root_gb=None, user_gb=None),
            {"bundle_root_gb": [plan.MSG_SIZE_NUMBER], "bundle_user_gb": [plan.MSG_SIZE_NUMBER]},
        ),
        (with_bundle(root_gb=True), {"bundle_root_gb": [plan.MSG_SIZE_NUMBER]}),
        (with_bundle(user_gb=20), {"bundle_user_gb": [plan.MSG_USER_SIZE_SMALL_ROOT]}),
        (with_bundle(user_gb=175), {"bundle_user_gb": [plan.MSG_USER_SIZE_SMALL_ROOT]}),
        (with_bundle(root_gb=175, user_gb=50), {"bundle_user_gb": [plan.MSG_USER_SIZE_LARGE_ROOT]}),
        (with_bundle(root_gb=175, user_gb=2001), {"bundle_user_gb": [plan.MSG_USER_SIZE_LARGE_ROOT]}),
        ({"copies": copies("eu-west-1")}, {"copy_regions": [plan.MSG_COPY_TARGET_REGION.format(region="eu-west-1")]}),
        ({"copies": copies("Frankfurt")}, {"copy_regions": [COPY_BAD(region="Frankfurt")]}),
        ({"copies": copies("EU-CENTRAL-1")}, {"copy_regions": [COPY_BAD(region="EU-CENTRAL-1")]}),
        ({"copies": copies("eu-central")}, {"copy_regions": [COPY_BAD(region="eu-central")]}),
        ({"copies": copies("eu-central-1\n")}, {"copy_regions": [COPY_BAD(region="eu-central-1\n")]}),
        ({"copies": copies("eu-" + "x" * 28 + "-1")}, {"copy_regions": [COPY_BAD(region="eu-" + "x" * 28 + "-1")]}),
        (
            {"copies": copies("xx-east-1")},
            {"copy_regions": [plan.MSG_COPY_UNKNOWN_PARTITION.format(region="xx-east-1")]},
        ),
        (
            {"copies": copies("eu-central-1", "eu-central-1")},
            {"copy_regions": [plan.MSG_COPY_DUPLICATE.format(region="eu-central-1")]},
        ),
        ({"copies": copies("eu-central-1", bundle=True)}, {"copy_bundles": [plan.MSG_COPY_BUNDLE_WITHOUT_BUNDLE]}),
        ({"shares": shares("12345678901")}, {"share_accounts": [SHARE_BAD(account="12345678901")]}),
        ({"shares": shares("1234-5678-9012")}, {"share_accounts": [SHARE_BAD(account="1234-5678-9012")]}),
        (
            {"shares": shares(OTHER_DIGITS)},
            {"share_accounts": [SHARE_BAD(account=OTHER_DIGITS)]},
        ),
        ({"shares": shares("210987654321\n")}, {"share_accounts": [SHARE_BAD(account="210987654321\n")]}),
        (
            {"shares": shares("123456789012")},
            {"share_accounts": [plan.MSG_SHARE_OWN_ACCOUNT.format(account="123456789012")]},
        ),
        (
            {"shares": shares("210987654321", "210987654321")},
            {"share_accounts": [plan.MSG_SHARE_DUPLICATE.format(account="210987654321")]},
        ),
        (
            {"shares": shares("210987654321", region="eu-central-1")},
            {"share_accounts": [plan.MSG_SHARE_REGION.format(account="210987654321", region="eu-central-1")]},
        ),
    ],
)
def test_a_broken_rule_puts_its_message_on_the_field_to_change(
    delivery_plan: dict[str, Any], expected: dict[str, list[str]]
) -> None:
    assert violations(delivery_plan) == expected


def test_the_same_account_in_two_regions_is_no_duplicate() -> None:
    delivery_plan = {
        "copies": copies("eu-central-1"),
        "shares": shares("210987654321") + shares("210987654321", region="eu-central-1"),
    }

    assert violations(delivery_plan) == {}


def test_every_problem_of_a_plan_is_told_at_once() -> None:
    delivery_plan = {
        "bundle": BUNDLE | {"name": "byol std", "root_gb": 100},
        "copies": copies("eu-west-1", "Frankfurt", "eu-central-1", bundle=True),
        "shares": shares("123456789012", "12345"),
    }

    assert violations(delivery_plan) == {
        "bundle_name": [plan.MSG_BUNDLE_NAME],
        "bundle_root_gb": [plan.MSG_ROOT_SIZE],
        "copy_regions": [plan.MSG_COPY_TARGET_REGION.format(region="eu-west-1"), COPY_BAD(region="Frankfurt")],
        "share_accounts": [plan.MSG_SHARE_OWN_ACCOUNT.format(account="123456789012"), SHARE_BAD(account="12345")],
    }


@pytest.mark.parametrize(
    ("image", "compute_type", "allowed"),
    [
        (
            CLASSIC_WSP,
            "GRAPHICS_G4DN",
            "Value, Standard, Performance, Power, PowerPro, General purpose 4xlarge or General purpose 8xlarge",
        ),
        (
            {**CLASSIC_WSP, "ingestion_process": "BYOL_GRAPHICS_G4DN_WSP"},
            "STANDARD",
            "Graphics.g4dn or GraphicsPro.g4dn",
        ),
        ({**CLASSIC_WSP, "ingestion_process": "BYOL_GRAPHICS"}, "GRAPHICSPRO", "Graphics"),
        (
            {"import_path": "image_builder", "ingestion_process": "", "compute_type": "GRAPHICS_G7"},
            "GRAPHICS_G6_XLARGE",
            "Graphics.g7.2xlarge, Graphics.g7.4xlarge, Graphics.g7.8xlarge or Graphics.g7.12xlarge",
        ),
    ],
)
def test_a_compute_type_the_image_cannot_run_names_the_ones_it_can(
    image: dict[str, str], compute_type: str, allowed: str
) -> None:
    what, value = (
        ("compute type", image["compute_type"])
        if image["import_path"] == "image_builder"
        else ("ingestion process", image["ingestion_process"])
    )
    message = plan.MSG_BUNDLE_COMPUTE_FOR_IMAGE.format(
        compute=plan.compute_label(compute_type), what=what, image=value, allowed=allowed
    )

    assert violations(with_bundle(compute_type=compute_type), image=image) == {"bundle_compute_type": [message]}


# --- partitions, China and GovCloud -------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("il-central-1", "aws"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("xx-east-1", ""),
    ],
)
def test_a_region_belongs_to_its_partition(region: str, partition: str) -> None:
    assert plan.partition_of(region) == partition


@pytest.mark.parametrize(
    ("target_region", "copy_region", "partition", "target_partition"),
    [
        ("eu-west-1", "cn-northwest-1", "aws-cn", "aws"),
        ("eu-west-1", "us-gov-west-1", "aws-us-gov", "aws"),
        ("us-iso-east-1", "us-east-1", "aws", "aws-iso"),
    ],
)
def test_a_copy_into_another_partition_is_refused(
    target_region: str, copy_region: str, partition: str, target_partition: str
) -> None:
    message = plan.MSG_COPY_OTHER_PARTITION.format(
        region=copy_region, partition=partition, target_partition=target_partition
    )

    assert violations({"copies": copies(copy_region)}, target_region=target_region) == {"copy_regions": [message]}


@pytest.mark.parametrize(("copy_region"), ["cn-north-1", "eu-west-1"])
def test_no_copy_is_made_from_china_ningxia(copy_region: str) -> None:
    assert violations({"copies": copies(copy_region)}, target_region="cn-northwest-1") == {
        "copy_regions": [plan.MSG_COPY_CHINA]
    }


@pytest.mark.parametrize(("copy_region"), ["us-gov-east-1", "us-east-1"])
def test_no_copy_is_made_from_govcloud(copy_region: str) -> None:
    assert violations({"copies": copies(copy_region)}, target_region="us-gov-west-1") == {
        "copy_regions": [plan.MSG_COPY_GOVCLOUD]
    }


def test_no_byol_image_is_shared_across_accounts_in_govcloud() -> None:
    delivery_plan = {"shares": shares("210987654321", region="us-gov-west-1")}

    assert violations(delivery_plan, target_region="us-gov-west-1") == {"share_accounts": [plan.MSG_SHARE_GOVCLOUD]}


def test_a_bundle_alone_is_fine_in_govcloud_and_china() -> None:
    assert violations(with_bundle(), target_region="us-gov-west-1") == {}
    assert violations(with_bundle(), target_region="cn-northwest-1") == {}


def test_sharing_within_china_ningxia_is_fine() -> None:
    assert violations({"shares": shares("210987654321", region="cn-northwest-1")}, target_region="cn-northwest-1") == {}


# --- the portal's limits ---------------------------------------------------------------------

MANY_REGIONS = [f"eu-test-{n}" for n in range(1, 12)]
MANY_ACCOUNTS = [f"{n:012d}" for n in range(1, 27)]


def test_ten_copies_are_accepted_and_eleven_refused() -> None:
    assert violations({"copies": copies(*MANY_REGIONS[:10])}) == {}
    assert violations({"copies": copies(*MANY_REGIONS[:11])}) == {"copy_regions": [plan.MSG_TOO_MANY_COPIES]}


def test_twenty_five_accounts_are_accepted_and_twenty_six_refused() -> None:
    assert violations({"shares": shares(*MANY_ACCOUNTS[:25])}) == {}
    assert violations({"shares": shares(*MANY_ACCOUNTS[:26])}) == {"share_accounts": [plan.MSG_TOO_MANY_SHARE_ACCOUNTS]}


def test_accounts_are_counted_once_whatever_their_regions() -> None:
    regions = MANY_REGIONS[:2]
    delivery_plan = {
        "copies": copies(*regions),
        "shares": [s for region in ["eu-west-1", *regions] for s in shares(*MANY_ACCOUNTS[:25], region=region)],
    }

    assert violations(delivery_plan) == {}


# --- a damaged plan -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delivery_plan",
    [
        None,
        [],
        {"bundles": {}},
        {"bundle": "byol-std"},
        {"bundle": {"name": "byol-std"}},
        {"bundle": BUNDLE | {"tags": []}},
        {"copies": "eu-central-1"},
        {"copies": [{"region": "eu-central-1"}]},
        {"copies": [{"region": "eu-central-1", "bundle": "yes"}]},
        {"copies": [{"region": 1, "bundle": False}]},
        {"shares": [{"account_id": 210987654321, "region": "eu-west-1"}]},
        {"shares": [["210987654321", "eu-west-1"]]},
    ],
)
def test_a_plan_of_another_shape_is_refused_as_damaged(delivery_plan: Any) -> None:
    assert violations(delivery_plan) == {"__all__": [plan.MSG_PLAN_DAMAGED]}


# --- warnings and words ------------------------------------------------------------------------


def test_a_plan_without_shares_has_no_warning() -> None:
    assert plan.plan_warnings({}) == []
    assert plan.plan_warnings(with_bundle() | {"copies": copies("eu-central-1")}) == []


def test_shares_warn_that_the_receiving_accounts_cannot_be_checked_naming_each_once() -> None:
    warnings = plan.plan_warnings(FULL_PLAN)

    assert warnings == [plan.MSG_SHARE_NEEDS_BYOL_ACCOUNTS.format(accounts="210987654321 and 555566667777")]
    assert "enabled for BYOL" in warnings[0]


def test_every_message_is_a_sentence_for_people() -> None:
    messages = [value for name, value in vars(plan).items() if name.startswith("MSG_")]

    assert len(messages) >= 20
    assert all(re.fullmatch(r"[A-Z'{].*[.]", message, re.DOTALL) for message in messages)
