"""A German lead at Berlin night, held for the DACH team and assigned when its morning starts, in Chromium."""

import datetime as dt

import pytest
import time_machine
from playwright.sync_api import Page, expect

from routing.dispatch import leads_route, queued_leads_distribute
from routing.models import Lead
from sla.models import LeadSla
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD
from tests.routing.test_hold_off_hours import BERLIN_EIGHT, BERLIN_NIGHT, night_coverage_build

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dach_lead_at_berlin_night_waits_for_the_dach_morning(page: Page, live_server, revops):
    dach = night_coverage_build()
    lead = Lead.objects.create(
        raw_payload={
            "email": "max@nachtfalter.example",
            "first_name": "Max",
            "last_name": "Falter",
            "company": "Nachtfalter GmbH",
            "country": "Deutschland",
        }
    )
    # The server's clock and the browser's agree: the page's countdown is worked out in the browser.
    with time_machine.travel(BERLIN_NIGHT, tick=True):
        page.clock.install(time=BERLIN_NIGHT)
        leads_route(lead_ids=[lead.pk])
        admin_login(page, live_server.url, "revops", PASSWORD)
        page.goto(f"{live_server.url}/admin/routing/lead/{lead.pk}/change/")
        expect(page.locator("body")).to_contain_text("Held in DACH Inbound")
        expect(page.locator("body")).to_contain_text("starts work at Tue 08 Dec 08:00 CET (Europe/Berlin)")
        screenshot(page, "admin-lead-held-for-dach")

    released_at = BERLIN_EIGHT + dt.timedelta(seconds=20)
    with time_machine.travel(released_at, tick=True):
        page.clock.set_system_time(released_at)
        queued_leads_distribute()
        lead.refresh_from_db()
        assert lead.queue == dach and lead.owner is not None
        clock = LeadSla.objects.get(lead=lead)
        assert dt.timedelta(0) <= clock.started_at - released_at < dt.timedelta(minutes=1)

        owner = lead.owner.user.username
        page.context.clear_cookies()
        page.goto(f"{live_server.url}/leads/")
        page.fill("#id_username", owner)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{live_server.url}/leads/{lead.pk}/")
        expect(page.locator("#why")).to_contain_text(f"Assigned to {owner} in DACH Inbound once someone there")
        # An hour's first-touch clock that started at 08:00 Berlin, not at 01:30 when the lead came in.
        expect(page.locator("#sla-clock")).to_contain_text("due in")
        expect(page.locator("#sla-clock")).not_to_contain_text("Breached")
        screenshot(page, "rep-lead-released-at-eight")
