"""A rep at work on their leads, in real Chromium against the live test server."""

import pytest
from playwright.sync_api import Page, expect

from routing.dispatch import leads_route
from routing.models import Lead, Queue, Rule
from sla.models import LeadSla, SlaPolicy
from tests.e2e.conftest import screenshot
from tests.factories import PASSWORD, QueueFactory, QueueMembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def routed_to(rep, *, company: str, email: str) -> Lead:
    """A lead posted and routed for real: a rule sends it to a queue where ``rep`` is the only member."""
    # A transactional test starts from an empty database, without the catch-all the migrations create.
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    SlaPolicy.objects.get_or_create(name="Inbound demo requests", defaults={"first_touch_minutes": 30})
    queue, created = Queue.objects.get_or_create(name="EMEA inbound")
    if created:
        QueueMembershipFactory(queue=queue, rep=rep)
        Rule.objects.create(name="All to EMEA inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    lead = Lead.objects.create(
        raw_payload={
            "email": email,
            "first_name": "Dana",
            "last_name": "Buyer",
            "company": company,
            "country": "DE",
            "form_answers": {"What do you need?": "Routing for 40 sellers"},
        }
    )
    leads_route(lead_ids=[lead.pk])
    lead.refresh_from_db()
    assert lead.owner == rep, lead.receipt
    return lead


def log_in_to_my_leads(page: Page, live_server_url: str, username: str) -> None:
    page.goto(f"{live_server_url}/leads/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server_url}/leads/")


def test_rep_opens_a_routed_lead_and_logs_a_call(page: Page, live_server, rep):
    rep.time_zone = "UTC"
    rep.save()
    lead = routed_to(rep, company="Acme Robotics AG", email="dana@acme-robotics.example")

    log_in_to_my_leads(page, live_server.url, "rep")

    row = page.locator(f"#lead-{lead.pk}")
    expect(row).to_contain_text("Acme Robotics AG")
    expect(row).to_contain_text("On track")
    expect(row.locator("[data-due]")).to_contain_text("due in")
    screenshot(page, "rep-my-leads")

    row.get_by_role("link", name="Dana Buyer").click()
    expect(page).to_have_url(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.locator("#why")).to_contain_text("Why this lead is yours")
    expect(page.locator("#sla-clock")).to_contain_text("due in")

    page.get_by_role("button", name="Log call").click()

    expect(page.locator(".messages")).to_contain_text("Call logged.")
    expect(page.locator("#sla-clock")).to_contain_text("Met")
    expect(page.locator("#touches")).to_contain_text("Call")
    screenshot(page, "rep-lead-page")
    assert LeadSla.objects.get(lead=lead).state == LeadSla.State.MET


def test_my_leads_and_the_lead_page_fit_a_phone_without_horizontal_scrolling(page: Page, live_server, rep):
    rep.time_zone = "UTC"
    rep.save()
    long_name = "Müller Präzisionsmaschinenbau Gesellschaft mit beschränkter Haftung"
    lead = routed_to(rep, company=long_name, email="dana@mueller-praezision.example")
    routed_to(rep, company="Acme Robotics AG", email="dana@acme-robotics.example")
    shared = QueueFactory(name="Overflow")
    QueueMembershipFactory(queue=shared, rep=rep)
    page.set_viewport_size({"width": 390, "height": 844})

    log_in_to_my_leads(page, live_server.url, "rep")

    expect(page.locator("tr.lead")).to_have_count(2)
    screenshot(page, "rep-my-leads-phone")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    expect(page.locator("h1")).to_contain_text("Dana Buyer")
    screenshot(page, "rep-lead-page-phone")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
