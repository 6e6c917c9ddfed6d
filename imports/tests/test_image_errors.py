"""The plain-English explanations of BYOL import errors, checked against botocore's enum.

No database: these are pure functions. A botocore upgrade that adds or drops an error detail code
fails here until ``imports.image_errors.EXPLANATIONS`` is brought in line.
"""

import json

import botocore.session
import pytest

from imports import image_errors
from imports.image_errors import EXPLANATIONS, FALLBACK, explain, explain_image_error

BOTOCORE_CODES: list[str] = (
    botocore.session.get_session().get_service_model("workspaces").shape_for("WorkspaceImageErrorDetailCode").enum
)

OFFICE = {"ErrorCode": "OfficeInstalled", "ErrorMessage": "Office is installed."}
DISK = {"ErrorCode": "DiskSizeExceeded", "ErrorMessage": "The disk is larger than 70 GB."}


def test_every_botocore_error_detail_code_has_an_explanation() -> None:
    assert sorted(set(BOTOCORE_CODES) - set(EXPLANATIONS)) == []


def test_no_explanation_is_for_a_code_outside_the_botocore_enum() -> None:
    assert sorted(set(EXPLANATIONS) - set(BOTOCORE_CODES)) == []


def test_account_codes_are_botocore_codes() -> None:
    assert image_errors.ACCOUNT_CODES.issubset(BOTOCORE_CODES)


@pytest.mark.parametrize("code", BOTOCORE_CODES)
def test_each_explanation_is_at_least_forty_characters_and_ends_with_a_full_stop(code: str) -> None:
    text = EXPLANATIONS[code]
    assert len(text) >= 40
    assert text.endswith(".")
    assert text == text.strip()
    assert "  " not in text


def test_no_two_codes_share_an_explanation() -> None:
    assert len(set(EXPLANATIONS.values())) == len(EXPLANATIONS)


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
    message = result["message"]
    assert message.startswith("AWS could not import the image: Import failed.")
    assert "AWS message" in message
    assert "new AMI" in message
    assert "retry" in message


def test_an_error_without_details_or_message_falls_back_to_the_code() -> None:
    result = explain_image_error(error_code="InternalFailure", error_message="", details=[])
    assert result["message"].startswith("AWS could not import the image: InternalFailure.")


def test_an_error_with_one_detail_explains_that_detail() -> None:
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
            }
        ],
    }
    assert result["message"].startswith("AWS could not import the image: it failed 1 check (OfficeInstalled).")
    assert "new AMI" in result["message"]


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
    assert set(result) == {"message", "error_code", "aws_message", "details"}


def test_an_unknown_detail_code_is_explained_with_the_fallback() -> None:
    result = explain_image_error(
        error_code="ValidationFailed",
        error_message="Validation failed.",
        details=[{"ErrorCode": "BrandNewCheck", "ErrorMessage": "Something new."}],
    )
    assert result["details"][0]["explanation"] == FALLBACK.format(code="BrandNewCheck")


def test_an_account_only_failure_tells_the_requester_the_image_is_not_at_fault() -> None:
    detail = {"ErrorCode": "WorkspacesBYOLAccountDisabled", "ErrorMessage": "BYOL is not enabled."}
    result = explain_image_error(error_code="ValidationFailed", error_message="", details=[detail])
    assert "not your image" in result["message"]
    assert "portal admins" in result["message"]


@pytest.mark.parametrize("details", [[], [OFFICE], [OFFICE, DISK]], ids=["no-details", "one-detail", "two-details"])
def test_the_result_survives_a_json_round_trip(details: list[dict[str, str]]) -> None:
    result = explain_image_error(error_code="ValidationFailed", error_message="Validation failed.", details=details)
    assert json.loads(json.dumps(result)) == result
