"""A manager at work on the team board, in real Chromium against the live test server."""

import pytest
from playwright.sync_api import Page, expect

from routing.models import Assignment, Lead
from tests.e2e.conftest import screenshot
from tests.factories import PASSWORD, RepFactory, UserFactory
from tests.territories.test_manager_pages import open_lead

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def teammate(team, manager):
    return RepFactory(
        user=UserFactory(username="teammate", first_name="Tara", last_name="Teammate"), team=team, manager=manager
    )


def log_in(page: Page, live_server_url: str, username: str) -> None:
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_manager_reassigns_a_lead_to_a_teammate_with_a_note(page: Page, live_server, manager, rep, teammate):
    lead = open_lead(rep, company="Acme Robotics AG")
    open_lead(rep, company="Nordwind Logistik GmbH")

    log_in(page, live_server.url, "manager")

    # Managers land on their team's board: both reps, and the open leads of the team.
    expect(page).to_have_url(f"{live_server.url}/team/")
    expect(page.locator(f"#rep-{rep.pk}")).to_be_visible()
    expect(page.locator(f"#rep-{teammate.pk}")).to_be_visible()
    row = page.locator(f"#lead-{lead.pk}")
    expect(row).to_contain_text(str(rep))

    row.get_by_role("checkbox").check()
    page.get_by_label("To", exact=True).select_option(str(teammate.pk))
    page.get_by_label("Note for the history").fill("Rep is out sick; Tara takes it.")
    page.get_by_role("button", name="Reassign").click()

    expect(page.locator(".messages")).to_contain_text(f"1 lead reassigned to {teammate}.")
    row = page.locator(f"#lead-{lead.pk}")
    expect(row.locator("td[data-label=Owner]")).to_have_text(str(teammate))
    screenshot(page, "team-board-reassigned")

    lead.refresh_from_db()
    assert lead.owner == teammate
    current = Assignment.objects.get(lead=lead, ended_at__isnull=True)
    assert (current.rep, current.assigned_by, current.note) == (teammate, manager, "Rep is out sick; Tara takes it.")
    assert Lead.objects.filter(owner=rep, status__in=Lead.OPEN_STATUSES).count() == 1


def test_the_team_board_fits_a_phone_without_horizontal_scrolling(page: Page, live_server, manager, rep, teammate):
    open_lead(rep, company="Müller Präzisionsmaschinenbau Gesellschaft mit beschränkter Haftung")
    open_lead(teammate, company="Acme Robotics AG")
    page.set_viewport_size({"width": 390, "height": 844})

    log_in(page, live_server.url, "manager")

    expect(page).to_have_url(f"{live_server.url}/team/")
    expect(page.locator("tr[id^=lead-]")).to_have_count(2)
    screenshot(page, "team-board-phone")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_the_board_counts_what_needs_attention_and_colours_load_near_capacity(
    page: Page, live_server, manager, rep, teammate, width, height
):
    rep.max_open_leads = 2
    rep.save()
    teammate.max_open_leads = 6
    teammate.save()
    for company in ("Acme Robotics AG", "Nordwind Logistik GmbH"):
        open_lead(rep, company=company)
    for index in range(5):
        open_lead(teammate, hours_old=2, company=f"Teammate Lead {index} GmbH")
    page.set_viewport_size({"width": width, "height": height})

    log_in(page, live_server.url, "manager")

    counts = page.get_by_role("list", name="Open leads that need attention")
    expect(counts.locator("#count-untouched")).to_contain_text("7 untouched")
    expect(counts.locator("#count-aging")).to_contain_text("2 aging")
    expect(counts.locator("#count-breached")).to_contain_text("breached")
    expect(page.locator(f"#rep-{rep.pk}")).to_contain_text("At capacity")
    expect(page.locator(f"#rep-{teammate.pk}")).to_contain_text("Near capacity")
    # Red at capacity, amber near it: the meter's regions, as Chromium draws them.
    assert page.locator(f"#rep-{rep.pk} meter").evaluate("m => m.value >= m.high")
    assert page.locator(f"#rep-{teammate.pk} meter").evaluate("m => m.value > m.low && m.value < m.high")
    screenshot(page, f"team-board-counts-{width}")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
