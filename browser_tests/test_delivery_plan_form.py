"""The form's "After the import" part, as people see it: the bundle's settings show with their
box, its hardware narrows to what the image can run, and a plan is submitted with the request."""

from playwright.sync_api import expect

from browser_tests.conftest import LogIn
from browser_tests.steps import assert_accessible, fill_request_form, submit_form, unique_name


def test_the_bundle_settings_show_with_their_box_and_offer_only_what_the_image_runs(log_in: LogIn) -> None:
    page = log_in("requester")
    page.goto("/requests/new/")
    bundle = page.get_by_label("Make a bundle from the image")
    hardware = page.get_by_label("Bundle hardware")
    copy_bundles = page.get_by_label("Make the bundle in each copy's region too")

    expect(page.get_by_label("Bundle name")).to_be_hidden()
    expect(copy_bundles).to_be_disabled()
    bundle.check()
    expect(page.get_by_label("Bundle name")).to_be_visible()
    expect(page.get_by_label("Root volume (GB)")).to_have_value("80")
    expect(copy_bundles).to_be_enabled()

    page.get_by_label("Ingestion process").select_option(value="BYOL_GRAPHICS_G4DN_WSP")
    expect(hardware.locator("option[value=GRAPHICSPRO_G4DN]")).to_be_enabled()
    expect(hardware.locator("option[value=STANDARD]")).to_be_disabled()
    hardware.select_option("GRAPHICSPRO_G4DN")
    # A choice the next image cannot run is taken back.
    page.get_by_label("Ingestion process").select_option(value="BYOL_REGULAR_WSP")
    expect(hardware).to_have_value("")
    expect(hardware.locator("option[value=STANDARD]")).to_be_enabled()
    expect(hardware.locator("option[value=GRAPHICS_G4DN]")).to_be_disabled()

    page.get_by_label("Through EC2 Image Builder").check()
    page.get_by_label("Compute type").select_option(value="GRAPHICS_G7")
    expect(hardware.locator("option[value=GRAPHICS_G7_2XLARGE]")).to_be_enabled()
    expect(hardware.locator("option[value=GRAPHICS_G6_XLARGE]")).to_be_disabled()
    assert_accessible(page)

    bundle.uncheck()
    expect(page.get_by_label("Bundle name")).to_be_hidden()
    expect(copy_bundles).to_be_disabled()


def test_a_request_with_a_bundle_a_copy_and_a_share_is_submitted(log_in: LogIn) -> None:
    page = log_in("requester")
    page.goto("/requests/new/")
    fill_request_form(page, image_name=unique_name("plan"))
    page.get_by_label("Make a bundle from the image").check()
    page.get_by_label("Bundle name").fill(unique_name("bundle"))
    page.get_by_label("Bundle description").fill("Finance desktops")
    page.get_by_label("Bundle hardware").select_option("STANDARD")
    page.get_by_label("Copy to regions").fill("eu-central-1")
    page.get_by_label("Make the bundle in each copy's region too").check()
    page.get_by_label("Share with AWS accounts").fill("210987654321")
    page.get_by_label("Share the copies too, from their regions").check()

    submitted = submit_form(page)

    expect(page.get_by_text(f"{submitted.reference} was submitted")).to_be_visible()
