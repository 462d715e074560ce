"""A rep closes, finds and reopens leads, in real Chromium against the live test server: a disqualified lead
reads closed with its reason and no open escalation; the closed view lists it; search narrows the list;
reopening makes it the rep's open lead again."""

import datetime as dt
import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from routing.models import Lead
from sla.models import Escalation, LeadSla
from tests.e2e.conftest import screenshot
from tests.e2e.test_rep_browser import log_in_to_my_leads, routed_to
from tests.factories import QueueFactory, QueueMembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Page screenshots at a desktop and a phone size, also kept where reviewers look for them.
SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
REVIEW_SHOTS = Path(os.environ.get("LEADROUTER_SCREENSHOTS", "/tmp/shots-close"))


def both_sizes(page: Page, name: str) -> None:
    """Screenshots of the current page at both sizes; the page must never scroll sideways on a phone."""
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        path = screenshot(page, f"{name}-{size}")
        REVIEW_SHOTS.mkdir(parents=True, exist_ok=True)
        (REVIEW_SHOTS / path.name).write_bytes(path.read_bytes())
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, (name, size, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"))
    page.set_viewport_size(SIZES["desktop"])


def breached(lead: Lead) -> None:
    """The lead's first touch was due 16 days ago and the ladder alerted the manager."""
    now = timezone.now()
    LeadSla.objects.filter(lead=lead).update(
        started_at=now - dt.timedelta(days=16, hours=1), due_at=now - dt.timedelta(days=16)
    )
    Escalation.objects.create(
        lead=lead, action="alert_manager", rep=lead.owner, reason="No first touch", fired_at=now - dt.timedelta(days=15)
    )


def test_a_disqualified_lead_shows_closed_with_its_reason_and_no_open_escalation(page: Page, live_server, rep):
    rep.time_zone = "UTC"
    rep.save()
    lead = routed_to(rep, company="Acme Robotics AG", email="dana@acme-robotics.example")
    breached(lead)
    log_in_to_my_leads(page, live_server.url, "rep")
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.locator("#sla-clock")).to_contain_text("Breached")
    expect(page.locator(".escalation-history")).to_contain_text("Open")
    both_sizes(page, "close-lead-before")

    page.fill("#close-reason", "Student project, no budget")
    page.get_by_role("button", name="Disqualify").click()

    expect(page.locator(".messages")).to_contain_text("Disqualified.")
    closed = page.locator("#closed")
    expect(closed).to_contain_text("Disqualified")
    expect(closed).to_contain_text("Student project, no budget")
    expect(closed).to_contain_text(rep.user.get_full_name())
    expect(page.locator("#sla-clock")).to_contain_text("Stopped: lead closed")
    expect(page.locator("#sla-clock")).not_to_contain_text("overdue")
    history = page.locator(".escalation-history")
    expect(history).to_contain_text("Resolved")
    expect(history).to_contain_text("Lead disqualified: Student project, no budget")
    expect(history).not_to_contain_text("Open")
    expect(page.get_by_role("button", name="Log call")).to_have_count(0)  # Touches are for open leads.
    both_sizes(page, "close-lead-after")
    assert Escalation.objects.get(lead=lead).status == Escalation.Status.RESOLVED


def test_the_rep_searches_finds_a_lead_in_the_closed_view_and_reopens_it(page: Page, live_server, rep):
    rep.time_zone = "UTC"
    rep.save()
    keller = routed_to(rep, company="Keller Maschinenbau GmbH", email="jana@keller.example")
    acme = routed_to(rep, company="Acme Robotics AG", email="dana@acme-robotics.example")
    log_in_to_my_leads(page, live_server.url, "rep")
    expect(page.locator("tr.lead")).to_have_count(2)

    # Search the open leads by company.
    page.fill("#id_q", "keller")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr.lead")).to_have_count(1)
    expect(page.locator(f"#lead-{keller.pk}")).to_be_visible()
    both_sizes(page, "my-leads-search")

    # Close it from its page, then find it in the closed view.
    page.locator(f"#lead-{keller.pk}").get_by_role("link").click()
    page.fill("#close-reason", "Bought from a partner")
    page.get_by_role("button", name="Send to nurture").click()
    expect(page.locator("#closed")).to_contain_text("Bought from a partner")
    page.get_by_role("link", name="← My leads").click()
    expect(page.locator("tr.lead")).to_have_count(1)
    expect(page.locator(f"#lead-{acme.pk}")).to_be_visible()

    page.get_by_role("link", name="Closed").click()
    row = page.locator(f"#lead-{keller.pk}")
    expect(row).to_contain_text("Nurture")
    expect(row).to_contain_text("Bought from a partner")
    both_sizes(page, "my-leads-closed")

    row.get_by_role("button", name="Reopen").click()

    expect(page.locator(".messages")).to_contain_text("is open again")
    expect(page.locator(".lead-status")).to_contain_text("Accepted")
    expect(page.locator("#how-theirs")).to_contain_text("Reopened for")
    expect(page.locator("#assignments")).to_contain_text("Reopened after closing")
    expect(page.locator("#assignments")).to_contain_text("Bought from a partner")
    both_sizes(page, "lead-reopened")
    keller.refresh_from_db()
    assert (keller.status, keller.owner) == (Lead.Status.ACCEPTED, rep)


def test_after_take_next_the_lead_page_says_the_rep_took_it_from_the_queue(page: Page, live_server, rep):
    rep.time_zone = "UTC"
    rep.save()
    shared = QueueFactory(name="DACH Commercial")
    QueueMembershipFactory(queue=shared, rep=rep)
    Lead.objects.create(
        raw_payload={"email": "jana@keller.example", "first_name": "Jana", "last_name": "Keller"},
        first_name="Jana",
        last_name="Keller",
        company="Keller Maschinenbau GmbH",
        status=Lead.Status.QUEUED,
        queue=shared,
        receipt={"outcome": "queued", "routing": {"summary": "Waiting in DACH Commercial: nobody eligible."}},
    )
    log_in_to_my_leads(page, live_server.url, "rep")

    page.locator(f"#queue-{shared.pk}").get_by_role("button", name="Take next").click()

    expect(page.locator("h1")).to_contain_text("Jana Keller")
    why = page.locator("#why")
    expect(why.locator("#how-theirs")).to_have_text(
        f"{rep.user.get_full_name()} took it from the shared queue DACH Commercial."
    )
    expect(why).to_contain_text("When it arrived: Waiting in DACH Commercial: nobody eligible.")
    both_sizes(page, "lead-taken")
