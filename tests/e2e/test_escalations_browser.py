"""A manager at work on the escalations page, in real Chromium against the live test server."""

import pytest
from playwright.sync_api import Page, expect

from sla.models import Escalation
from tests.e2e.conftest import screenshot
from tests.factories import PASSWORD
from tests.sla.test_escalations_page import escalated_lead

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page: Page, live_server_url: str, username: str) -> None:
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_manager_logs_in_and_acknowledges_an_escalation(page: Page, live_server, manager, rep):
    escalation = escalated_lead(rep, company="Acme Robotics AG")

    log_in(page, live_server.url, "manager")

    # Managers land on their team's board; the escalations are one link away.
    expect(page).to_have_url(f"{live_server.url}/team/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Escalations").click()
    expect(page).to_have_url(f"{live_server.url}/escalations/")
    row = page.locator(f"#escalation-{escalation.pk}")
    expect(row).to_contain_text("Acme Robotics AG")
    expect(row).to_contain_text("Alert the manager")
    expect(row).to_contain_text("breached")
    screenshot(page, "escalations-open")

    # Acknowledging takes one click; a comment is asked for only to resolve.
    row.get_by_role("button", name="Acknowledge").click()

    expect(page.locator(".messages")).to_contain_text("acknowledged")
    # The open list no longer holds it; the acknowledged filter shows who handled it and why.
    expect(page.locator(f"#escalation-{escalation.pk}")).to_have_count(0)
    page.select_option("#id_status", "acknowledged")
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f"#escalation-{escalation.pk}")
    expect(row).to_contain_text("Acknowledged")
    expect(row).to_contain_text(f"by {manager.get_full_name() or manager.username}")
    screenshot(page, "escalations-acknowledged")

    escalation.refresh_from_db()
    assert escalation.status == Escalation.Status.ACKNOWLEDGED
    assert escalation.handled_by == manager


def test_the_page_fits_a_phone_without_horizontal_scrolling(page: Page, live_server, manager, rep):
    for company in ("Acme Robotics AG", "Müller Präzisionsmaschinenbau Gesellschaft mit beschränkter Haftung"):
        escalated_lead(rep, company=company)
    page.set_viewport_size({"width": 390, "height": 844})

    log_in(page, live_server.url, "manager")
    page.goto(f"{live_server.url}/escalations/")

    expect(page.locator("tr.escalation")).to_have_count(2)
    screenshot(page, "escalations-phone")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_the_skip_link_and_focus_are_keyboard_usable(page: Page, live_server, manager, rep):
    escalated_lead(rep)
    log_in(page, live_server.url, "manager")
    page.goto(f"{live_server.url}/escalations/")
    expect(page.locator("tr.escalation")).to_have_count(1)

    # The first Tab on the page reaches the skip link, which shows itself and jumps past the top bar.
    page.keyboard.press("Tab")

    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()


def test_manager_ticks_escalations_and_resolves_them_at_once(page: Page, live_server, manager, rep):
    first = escalated_lead(rep, company="Acme Robotics AG")
    second = escalated_lead(rep, company="Borealis Logistics AB")
    kept = escalated_lead(rep, company="Cobalt Energy SE")
    page.set_viewport_size({"width": 1440, "height": 900})

    log_in(page, live_server.url, "manager")
    page.goto(f"{live_server.url}/escalations/")

    counts = page.get_by_role("navigation", name="Escalations by status")
    expect(counts).to_contain_text("3 open")
    expect(counts).to_contain_text("0 resolved")
    # Rows are compact: no comment box until "Resolve…" is opened.
    expect(page.locator(f"#escalation-{kept.pk} textarea")).to_be_hidden()
    # The status stays on one line.
    badge = page.locator(f"#escalation-{kept.pk} .status-badge-open")
    assert badge.evaluate("el => el.getClientRects().length") == 1
    screenshot(page, "escalations-bulk-before")

    page.locator(f"#pick-{first.pk}").check()
    page.locator(f"#pick-{second.pk}").check()
    page.get_by_label("Comment for the ticked ones").fill("Both called back this morning.")
    page.get_by_role("button", name="Resolve ticked").click()

    expect(page.locator(".messages")).to_contain_text("2 escalations resolved.")
    expect(page.locator("tr.escalation")).to_have_count(1)
    expect(page.locator(f"#escalation-{kept.pk}")).to_be_visible()
    expect(counts).to_contain_text("1 open")
    expect(counts).to_contain_text("2 resolved")
    screenshot(page, "escalations-bulk-after")

    counts.get_by_role("link", name="2 resolved").click()
    expect(page.locator("tr.escalation")).to_have_count(2)
    expect(page.locator(f"#escalation-{first.pk}")).to_contain_text("Both called back this morning.")
    first.refresh_from_db()
    assert (first.status, first.handled_by, first.comment) == (
        Escalation.Status.RESOLVED,
        manager,
        "Both called back this morning.",
    )

    # The lead's name opens the lead.
    page.get_by_role("link", name=first.lead.first_name, exact=False).first.click()
    expect(page).to_have_url(f"{live_server.url}/leads/{first.lead_id}/")


def test_manager_resolves_one_escalation_with_a_comment(page: Page, live_server, manager, rep):
    escalation = escalated_lead(rep, company="Acme Robotics AG")

    log_in(page, live_server.url, "manager")
    page.goto(f"{live_server.url}/escalations/")
    row = page.locator(f"#escalation-{escalation.pk}")
    row.get_by_text("Resolve…").click()
    row.get_by_label("How was it resolved?").fill("Rep called back.")
    row.get_by_role("button", name="Resolve", exact=True).click()

    expect(page.locator(".messages")).to_contain_text("resolved")
    escalation.refresh_from_db()
    assert (escalation.status, escalation.comment) == (Escalation.Status.RESOLVED, "Rep called back.")
