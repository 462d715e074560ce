"""A regional RevOps user in admin, in real Chromium against the live test server."""

import pytest
from guardian.shortcuts import assign_perm
from playwright.sync_api import Page, expect

from territories.models import Territory
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD, TerritoryFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def regions():
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    amer = TerritoryFactory(name="AMER", description="North and South America")
    return {"emea": emea, "dach": dach, "amer": amer}


@pytest.fixture
def regional(regions):
    """Staff, not in the RevOps group: granted change on EMEA, which covers DACH below it."""
    user = UserFactory(username="emea.revops", is_staff=True)
    assign_perm("territories.change_territory", user, regions["emea"])
    return user


def test_regional_revops_edit_a_territory_in_their_region_and_cannot_open_another(
    page: Page, live_server, regional, regions
):
    admin_login(page, live_server.url, "emea.revops", PASSWORD)
    expect(page.locator("#site-name")).to_be_visible()

    # The territory list holds their region only; DACH sits below EMEA.
    page.goto(f"{live_server.url}/admin/territories/territory/")
    results = page.locator("#result_list")
    expect(results).to_contain_text("DACH")
    expect(results).not_to_contain_text("AMER")
    results.get_by_role("link", name="DACH", exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/admin/territories/territory/{regions['dach'].pk}/change/")
    page.fill("#id_description", "Germany, Austria and Switzerland")
    page.click("input[name=_save]")

    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    screenshot(page, "regional-territory-saved")
    assert Territory.objects.get(pk=regions["dach"].pk).description == "Germany, Austria and Switzerland"

    # AMER is outside the grant: the admin answers as if it did not exist, showing none of its data.
    amer = regions["amer"]
    page.goto(f"{live_server.url}/admin/territories/territory/{amer.pk}/change/")

    expect(page).not_to_have_url(f"{live_server.url}/admin/territories/territory/{amer.pk}/change/")
    expect(page.locator("#territory_form")).to_have_count(0)
    expect(page.locator("#content")).not_to_contain_text("AMER")
    expect(page.locator("#content")).not_to_contain_text("North and South America")
    screenshot(page, "regional-territory-refused")
