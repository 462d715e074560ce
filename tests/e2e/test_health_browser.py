"""RevOps reads routing health in real Chromium: a catch-all lead is a matrix gap only when no rule matched."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from routing.models import Lead, Queue
from tests.e2e.conftest import screenshot
from tests.e2e.test_escalations_browser import log_in
from tests.factories import LeadFactory, QueueFactory
from tests.routing.test_reports import RuleFactory

pytestmark = pytest.mark.django_db(transaction=True)


def three_causes():
    catch_all, _ = Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    emea = QueueFactory(name="EMEA inbound")
    rule = RuleFactory(name="DACH inbound")
    LeadFactory(queue=catch_all, status=Lead.Status.QUEUED, company="Kapstadt Gap Ltd", country="ZA", source="Webinar")
    overflowed = {"queue_path": [{"queue": "EMEA inbound"}, {"queue": "EMEA overflow"}, {"queue": "Catch-all"}]}
    for company in ("Elbwerk Maschinenbau GmbH", "Isar Robotics AG"):
        LeadFactory(queue=catch_all, status=Lead.Status.QUEUED, rule=rule, company=company, receipt=overflowed)
    opens = (timezone.now() + dt.timedelta(hours=3)).replace(microsecond=0)
    held = {"held_until": opens.isoformat(), "held_for": "anna.schmidt", "queue_path": []}
    LeadFactory(queue=emea, status=Lead.Status.QUEUED, rule=rule, company="Wartet KG", receipt=held)


def section(page: Page, title: str):
    return page.get_by_role("region", name=title)


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_routing_health_separates_no_rule_overflow_and_held(page: Page, live_server, revops, width, height):
    three_causes()
    page.set_viewport_size({"width": width, "height": height})

    log_in(page, live_server.url, revops.username)
    page.goto(f"{live_server.url}/health/")

    gap = section(page, "No rule matched")
    expect(gap.locator(".figure")).to_have_text("1")
    expect(gap).to_contain_text("a gap in the routing matrix")
    expect(gap).to_contain_text("Kapstadt Gap Ltd")
    expect(gap).not_to_contain_text("Elbwerk")

    overflow = section(page, "Overflowed: nobody eligible")
    expect(overflow.locator(".figure")).to_have_text("2")
    expect(overflow).to_contain_text("a staffing or working-hours gap")
    expect(overflow).to_contain_text("Rule “DACH inbound”: EMEA inbound → EMEA overflow → Catch-all")
    expect(overflow).to_contain_text("Elbwerk Maschinenbau GmbH")

    waiting = section(page, "Held for a rep")
    expect(waiting.locator(".figure")).to_have_text("1")
    expect(waiting).to_contain_text("In EMEA inbound until anna.schmidt starts work")
    expect(waiting).not_to_contain_text("Kapstadt")
    screenshot(page, f"health-three-causes-{width}")

    # Nothing inside the page is wider than the window (the top bar is the shell's, measured elsewhere).
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('main *')].map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= width, widest
