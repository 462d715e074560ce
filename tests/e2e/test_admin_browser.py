"""RevOps at work in the admin, in real Chromium against the live test server."""

import pytest
from playwright.sync_api import Page, expect

from leadrouter.demo.loader import DEMO_PASSWORD, demo_load
from routing.models import Lead
from territories.models import Territory
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD, RepFactory, TerritoryFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_revops_logs_in_and_reads_the_demo_territory_tree(page: Page, live_server):
    demo_load()

    admin_login(page, live_server.url, "revops", DEMO_PASSWORD)
    expect(page.locator("#site-name")).to_contain_text("Lead Router")
    screenshot(page, "admin-index")

    page.goto(f"{live_server.url}/admin/territories/territory/tree/")
    tree = page.locator(".territory-tree")
    # The tree reads top-down: region, sub-region, country or state.
    expect(tree.locator("li", has_text="EMEA").first).to_be_visible()
    dach = tree.locator("li", has=page.locator("a.name", has_text="DACH Commercial"))
    expect(dach.locator("a.name", has_text="Germany")).to_be_visible()
    expect(tree.locator("a.name", has_text="California").first).to_be_visible()
    screenshot(page, "admin-territory-tree")

    page.goto(f"{live_server.url}/admin/territories/rep/")
    expect(page.locator("#result_list")).to_contain_text("anna.schmidt")
    screenshot(page, "admin-reps")


def test_a_rep_cannot_use_the_admin(page: Page, live_server):
    RepFactory(user=UserFactory(username="rep"))

    admin_login(page, live_server.url, "rep", PASSWORD)

    # Django keeps non-staff users on the login page with an explanation.
    expect(page.locator(".errornote")).to_contain_text("staff account")
    page.goto(f"{live_server.url}/admin/territories/territory/")
    expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/admin/territories/territory/")


def test_revops_fixes_a_territory_criterion_the_admin_refused(page: Page, live_server, revops):
    territory = TerritoryFactory(name="Nordics")
    admin_login(page, live_server.url, "revops", PASSWORD)

    page.goto(f"{live_server.url}/admin/territories/territory/{territory.pk}/change/")
    row = page.locator("#criteria-0")
    row.locator("select[name='criteria-0-kind']").select_option("country")
    row.locator("input[name='criteria-0-value']").fill("Sweden")
    page.click("input[name='_save']")

    # The message says what to write instead, and nothing was saved.
    expect(page.locator(".errorlist").first).to_contain_text("ISO 3166-1 alpha-2")
    screenshot(page, "admin-territory-validation")
    assert not territory.criteria.exists()

    page.locator("input[name='criteria-0-value']").fill("se")
    page.click("input[name='_save']")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert list(Territory.objects.get(pk=territory.pk).criteria.values_list("kind", "value")) == [("country", "SE")]

    # The change log names who did it.
    page.goto(f"{live_server.url}/admin/territories/territory/change-log/")
    expect(page.locator("#content")).to_contain_text("Nordics")
    expect(page.locator("#content")).to_contain_text("revops")


def test_revops_simulates_a_lead_against_the_demo_rules(page: Page, live_server):
    demo_load()
    admin_login(page, live_server.url, "revops", DEMO_PASSWORD)

    page.goto(f"{live_server.url}/admin/routing/rule/")
    page.click("text=Simulate a lead")
    page.fill("#id_email", "jo@gmail.com")
    page.fill("#id_employees", "5")
    page.click("input[value=Simulate]")

    # Small free-mail leads go to nurture by the demo's third rule, whatever the time of day.
    expect(page.locator("#verdict")).to_contain_text("Sent to nurture by rule 'Free-mail micro companies to nurture'")
    expect(page.locator("#receipt")).to_contain_text('"outcome": "nurture"')
    screenshot(page, "admin-simulate")
    assert not Lead.objects.exists()
