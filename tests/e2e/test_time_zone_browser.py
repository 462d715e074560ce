"""Everyone sees their own time, in real Chromium against the live test server: a Berlin rep reads Berlin times,
labelled; their manager sets the rep's time off in Berlin time and reads it back in Berlin time."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from routing.models import Lead
from sla.models import LeadSla
from territories.models import OutOfOffice, Profile
from tests.e2e.conftest import screenshot
from tests.e2e.test_rep_browser import log_in_to_my_leads, routed_to
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

# A Monday in November, when Berlin is on CET (UTC+1).
RECEIVED = dt.datetime(2026, 11, 9, 8, 20, tzinfo=dt.UTC)
# The header names the zone with today's abbreviation: CET in winter, CEST in summer.
BERLIN_HEADER = re.compile(r"Times in Europe/Berlin \(CES?T\)")


def test_a_berlin_rep_sees_berlin_times_labelled(page: Page, live_server, rep):
    assert rep.time_zone == "Europe/Berlin"
    lead = routed_to(rep, company="Keller Maschinenbau GmbH", email="jana@keller-maschinenbau.example")
    # The lead came in at 08:20 UTC, 09:20 in Berlin.
    Lead.objects.filter(pk=lead.pk).update(received_at=RECEIVED, routed_at=RECEIVED + dt.timedelta(seconds=1))
    due = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(hours=2)
    LeadSla.objects.filter(lead=lead).update(due_at=due)

    log_in_to_my_leads(page, live_server.url, "rep")
    expect(page.locator("#time-zone")).to_have_text(BERLIN_HEADER)
    berlin_due = due.astimezone(ZoneInfo("Europe/Berlin"))
    countdown = page.locator(f"#lead-{lead.pk} [data-due]")
    expect(countdown).to_have_attribute("title", f"Due {berlin_due:%Y-%m-%d %H:%M %Z}")
    screenshot(page, "time-zone-rep-my-leads")

    page.get_by_role("link", name="Dana Buyer").click()
    expect(page.locator("#time-zone")).to_have_text(BERLIN_HEADER)
    received = page.locator("dl.facts dt", has_text="Received").locator("xpath=following-sibling::dd[1]")
    expect(received).to_have_text("2026-11-09 09:20 CET")
    expect(page.locator("label[for=touch-at]")).to_have_text("When (Europe/Berlin, empty for now)")
    # Nowhere in UTC: matched with its date, since the page also shows the decision's own instant (today's,
    # and in the raw receipt in UTC), which reads 08:20 once a day.
    expect(page.locator("main")).not_to_contain_text("2026-11-09 08:20")
    expect(page.locator("main")).not_to_contain_text("08:20 UTC")
    screenshot(page, "time-zone-rep-lead-page")


def test_a_manager_sets_a_berlin_reps_time_off_in_berlin_time(page: Page, live_server, manager, rep):
    # The manager reads in New York; the rep's time off is typed and shown in the rep's own zone.
    Profile.objects.create(user=manager, time_zone="America/New_York")
    page.goto(f"{live_server.url}/team/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/team/")
    expect(page.locator("#time-zone")).to_have_text(re.compile(r"Times in America/New_York \(E[DS]T\)"))

    row = page.locator(f"#rep-{rep.pk}")
    expect(row.locator(".local-time")).to_have_text(re.compile(r"^\w{3} \d\d:\d\d CES?T \(Europe/Berlin\)$"))
    row.get_by_text("Out of office…").click()
    row.locator(f"#ooo-start-{rep.pk}").fill("2030-01-14T09:00")
    row.locator(f"#ooo-end-{rep.pk}").fill("2030-01-18T18:00")
    row.locator(f"#ooo-reason-{rep.pk}").fill("Trade fair")
    row.get_by_role("button", name="Save").click()

    expect(page.locator(".messages")).to_contain_text("from 2030-01-14 09:00 until 2030-01-18 18:00 (Europe/Berlin)")
    row = page.locator(f"#rep-{rep.pk}")
    expect(row).to_contain_text("2030-01-14 09:00 CET → 2030-01-18 18:00 CET")
    expect(row).not_to_contain_text("UTC")
    screenshot(page, "time-zone-team-board")
    assert OutOfOffice.objects.get(rep=rep).starts_at == dt.datetime(2030, 1, 14, 8, 0, tzinfo=dt.UTC)
