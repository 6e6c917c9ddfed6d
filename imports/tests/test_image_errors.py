"""The plain-English explanations of BYOL import errors, checked against botocore's enum and AWS's pages.

No database: these are pure functions. A botocore upgrade that adds or drops an error detail code
fails here until ``imports.image_errors.CHECKS`` is brought in line.
"""

import json
from urllib.parse import urlparse

import botocore.session
import pytest

from imports.image_errors import (
    BYOL_CHECKER_URL,
    CHECKS,
    EXPLANATIONS,
    FALLBACK,
    NO_AWS_DESCRIPTION,
    SOURCES,
    explain,
    explain_image_error,
)

BOTOCORE_CODES: list[str] = (
    botocore.session.get_session().get_service_model("workspaces").shape_for("WorkspaceImageErrorDetailCode").enum
)
DOCUMENTED = sorted(code for code, source in SOURCES.items() if source)
UNDOCUMENTED = sorted(code for code, source in SOURCES.items() if not source)

OFFICE = {"ErrorCode": "OfficeInstalled", "ErrorMessage": "Office is installed."}
DISK = {"ErrorCode": "DiskSizeExceeded", "ErrorMessage": "The disk is larger than 80 GB."}
BYOL_USER = {"ErrorCode": "WorkspacesBYOLAccountDisabled", "ErrorMessage": "WorkSpaces_BYOL is disabled."}
PROTOCOL = {"ErrorCode": "ProtocolOSIncompatibility", "ErrorMessage": "PCoIP does not support Windows 11."}
EVERY_KIND_OF_ERROR = [[], [OFFICE], [OFFICE, DISK], [BYOL_USER], [PROTOCOL], [OFFICE, PROTOCOL]]
KINDS = ["no-details", "one-detail", "two-details", "byol-user", "protocol-only", "vm-and-protocol"]


def test_every_botocore_error_detail_code_has_an_explanation() -> None:
    assert sorted(set(BOTOCORE_CODES) - set(EXPLANATIONS)) == []


def test_no_explanation_is_for_a_code_outside_the_botocore_enum() -> None:
    assert sorted(set(EXPLANATIONS) - set(BOTOCORE_CODES)) == []


def test_every_code_with_an_explanation_has_a_source_entry() -> None:
    assert set(SOURCES) == set(EXPLANATIONS) == set(CHECKS)


@pytest.mark.parametrize("code", BOTOCORE_CODES)
def test_each_explanation_is_at_least_forty_characters_and_ends_with_a_full_stop(code: str) -> None:
    text = EXPLANATIONS[code]
    assert len(text) >= 40
    assert text.endswith(".")
    assert text == text.strip()
    assert "  " not in text


def test_no_two_codes_share_an_explanation() -> None:
    assert len(set(EXPLANATIONS.values())) == len(EXPLANATIONS)


@pytest.mark.parametrize("code", DOCUMENTED)
def test_every_documented_code_has_an_https_source_on_an_aws_domain(code: str) -> None:
    url = urlparse(SOURCES[code])
    assert url.scheme == "https"
    assert url.hostname == "docs.aws.amazon.com"
    assert url.path.startswith("/workspaces/latest/adminguide/")
    assert NO_AWS_DESCRIPTION not in EXPLANATIONS[code]


@pytest.mark.parametrize("code", UNDOCUMENTED)
def test_every_undocumented_code_says_aws_publishes_no_description_and_has_no_source(code: str) -> None:
    assert SOURCES[code] == ""
    assert EXPLANATIONS[code].startswith(NO_AWS_DESCRIPTION)
    assert "not AWS's words" in EXPLANATIONS[code]


def test_the_codes_aws_is_silent_on_are_marked_undocumented() -> None:
    assert {"InvalidIp", "UnsupportedSecurityProtocol", "StagedAppxPackage", "UnknownError"} <= set(UNDOCUMENTED)
    assert 15 <= len(UNDOCUMENTED) <= 18


def test_the_checks_on_aws_common_errors_page_link_to_their_own_section() -> None:
    for code in ("OfficeInstalled", "FirewallEnabled", "DiskSizeExceeded", "UEFINotSupported"):
        assert SOURCES[code].endswith(f"windows-images-common-errors.html#{code}")


@pytest.mark.parametrize("code", ["WorkspacesBYOLAccountNotFound", "WorkspacesBYOLAccountDisabled"])
def test_the_workspaces_byol_codes_are_about_the_local_windows_user_on_the_vm(code: str) -> None:
    text = EXPLANATIONS[code]
    assert "local Windows user" in text
    assert "WorkSpaces_BYOL" in text
    assert "not your AWS account" in text
    assert "new AMI" in text


def test_a_failure_of_the_workspaces_byol_user_asks_for_a_new_ami_not_a_retry_with_the_same_one() -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[BYOL_USER])
    assert "revise this request with the new AMI" in result["message"]
    assert "not your image" not in result["message"]
    assert "same AMI" not in result["message"]


def test_office_must_go_only_if_standalone_and_microsoft_365_apps_may_stay() -> None:
    text = EXPLANATIONS["OfficeInstalled"]
    assert "standalone" in text
    assert "volume-licensed" in text
    assert "Microsoft 365 Apps may stay" in text


def test_memory_integrity_is_about_the_uefi_lock_that_windows_security_cannot_remove() -> None:
    text = EXPLANATIONS["MemoryIntegrityIncompatibility"]
    assert "Credential Guard" in text
    assert "UEFI lock" in text
    assert "Windows Security alone" in text


def test_the_disk_may_be_at_most_80_gb() -> None:
    text = EXPLANATIONS["DiskSizeExceeded"]
    assert "larger than 80 GB" in text
    assert "below 80 GB" in text


def test_free_space_is_10_gb_without_office_and_20_gb_with_it() -> None:
    text = EXPLANATIONS["DiskFreeSpace"]
    assert "10 GB free without Office" in text
    assert "20 GB when the image is to get Office" in text


def test_the_firewall_check_is_about_the_public_profile() -> None:
    text = EXPLANATIONS["FirewallEnabled"]
    assert "public profile only" in text
    assert "domain" not in text


def test_additional_drives_count_removable_network_and_iso_drives() -> None:
    text = EXPLANATIONS["AdditionalDrivesAttached"]
    assert "C: only" in text
    for kind in ("removable", "network", "CD/DVD", "ISO"):
        assert kind in text


def test_windows_10_must_boot_with_legacy_bios() -> None:
    text = EXPLANATIONS["UEFINotSupported"]
    assert "Windows 10 BYOL image must boot with legacy BIOS" in text


def test_powershell_4_0_is_the_minimum() -> None:
    text = EXPLANATIONS["OutdatedPowershellVersion"]
    assert "older than version 4.0" in text
    assert "PowerShell 4.0 or later" in text
    assert "5.1" not in text


def test_the_checker_url_is_aws_byol_page_on_the_checker() -> None:
    url = urlparse(BYOL_CHECKER_URL)
    assert (url.scheme, url.hostname) == ("https", "docs.aws.amazon.com")
    assert url.path == "/workspaces/latest/adminguide/byol-windows-images.html"
    assert url.fragment == "windows_images_run_byol_checker_script"


@pytest.mark.parametrize("code", BOTOCORE_CODES)
def test_explain_returns_the_explanation_of_a_known_code(code: str) -> None:
    assert explain(code) == EXPLANATIONS[code]


def test_an_unknown_code_gets_the_fallback_naming_the_code() -> None:
    text = explain("BrandNewCheck")
    assert text == FALLBACK.format(code="BrandNewCheck")
    assert "BrandNewCheck" in text
    assert "AWS message" in text
    assert "portal admins" in text


def test_an_error_without_details_still_says_what_to_do_next() -> None:
    result = explain_image_error(error_code="InternalFailure", error_message="Import failed.", details=[])
    assert result["error_code"] == "InternalFailure"
    assert result["aws_message"] == "Import failed."
    assert result["details"] == []
    assert result["next_step"] == "revise"
    assert "checker" not in result
    message = result["message"]
    assert message.startswith("AWS could not import the image: Import failed.")
    assert "AWS message" in message
    assert "BYOL checker" in message
    assert "revise this request with the new AMI" in message


def test_an_error_without_details_or_message_falls_back_to_the_code() -> None:
    result = explain_image_error(error_code="InternalFailure", error_message="", details=[])
    assert result["message"].startswith("AWS could not import the image: InternalFailure.")


def test_an_error_with_one_detail_explains_that_detail_with_its_source() -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="Validation failed.", details=[OFFICE])
    assert result == {
        "message": result["message"],
        "error_code": "ValidationFailed",
        "aws_message": "Validation failed.",
        "details": [
            {
                "code": "OfficeInstalled",
                "aws_message": "Office is installed.",
                "explanation": EXPLANATIONS["OfficeInstalled"],
                "source": SOURCES["OfficeInstalled"],
                "documented": True,
            }
        ],
        "next_step": "revise",
        "checker": BYOL_CHECKER_URL,
    }
    assert result["message"].startswith("AWS could not import the image: it failed 1 check (OfficeInstalled).")


def test_an_error_with_two_details_explains_both_in_the_order_aws_gave() -> None:
    result = explain_image_error(
        error_code="ValidationFailed", error_message="Validation failed.", details=[OFFICE, DISK]
    )
    assert [d["code"] for d in result["details"]] == ["OfficeInstalled", "DiskSizeExceeded"]
    assert [d["aws_message"] for d in result["details"]] == [OFFICE["ErrorMessage"], DISK["ErrorMessage"]]
    assert [d["explanation"] for d in result["details"]] == [
        EXPLANATIONS["OfficeInstalled"],
        EXPLANATIONS["DiskSizeExceeded"],
    ]
    assert "it failed 2 checks (OfficeInstalled, DiskSizeExceeded)" in result["message"]
    assert set(result) == {"message", "error_code", "aws_message", "details", "next_step", "checker"}


def test_a_validation_failure_says_fix_the_vm_run_the_checker_make_a_new_ami_and_revise() -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[OFFICE, DISK])
    message = result["message"]
    steps = ["source VM", "BYOL checker", "create a new AMI", "revise this request with the new AMI"]
    assert [message.index(step) for step in steps] == sorted(message.index(step) for step in steps)
    assert "goes back for approval" in message
    assert result["checker"] == BYOL_CHECKER_URL
    assert result["next_step"] == "revise"


def test_an_undocumented_detail_is_marked_and_carries_no_source() -> None:
    detail = {"ErrorCode": "InvalidIp", "ErrorMessage": "Invalid IP."}
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[detail])
    assert result["details"][0]["source"] == ""
    assert result["details"][0]["documented"] is False
    assert result["details"][0]["explanation"].startswith(NO_AWS_DESCRIPTION)


def test_an_unknown_detail_code_is_explained_with_the_fallback_and_no_source() -> None:
    result = explain_image_error(
        error_code="ValidationFailed",
        error_message="Validation failed.",
        details=[{"ErrorCode": "BrandNewCheck", "ErrorMessage": "Something new."}],
    )
    assert result["details"][0]["explanation"] == FALLBACK.format(code="BrandNewCheck")
    assert (result["details"][0]["source"], result["details"][0]["documented"]) == ("", False)


def test_a_protocol_only_failure_says_the_vm_is_fine_and_to_revise_the_ingestion_process() -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[PROTOCOL])
    message = result["message"]
    assert "Nothing on the VM needs to change" in message
    assert "ingestion process" in message
    assert "same AMI can be used" in message
    assert result["next_step"] == "revise"


def test_a_vm_failure_with_a_protocol_mismatch_asks_for_both_changes() -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[OFFICE, PROTOCOL])
    message = result["message"]
    assert "revise this request with the new AMI" in message
    assert "also choose an ingestion process" in message


@pytest.mark.parametrize("details", EVERY_KIND_OF_ERROR, ids=KINDS)
def test_no_summary_asks_for_a_retry(details: list[dict[str, str]]) -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="Validation failed.", details=details)
    assert "retry with the new AMI" not in result["message"]
    assert "retry" not in result["message"].lower()
    assert "revise this request" in result["message"]
    assert result["next_step"] == "revise"


@pytest.mark.parametrize("details", EVERY_KIND_OF_ERROR, ids=KINDS)
def test_the_result_survives_a_json_round_trip(details: list[dict[str, str]]) -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="Validation failed.", details=details)
    assert json.loads(json.dumps(result)) == result
