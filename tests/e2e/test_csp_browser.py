"""The pages work under the Content-Security-Policy: nothing refused, scripts run, styles load.

Chromium reports every blocked script, style or image on the console; each test fails on any such report.
"""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import admin_login
from tests.e2e.test_rep_browser import log_in_to_my_leads, routed_to
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refusals(page: Page) -> Iterator[list[str]]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    yield seen


def test_the_reps_live_clock_ticks_under_the_policy(page: Page, live_server, rep, refusals):
    rep.time_zone = "UTC"
    rep.save()
    lead = routed_to(rep, company="Acme Robotics AG", email="dana@acme-robotics.example")

    log_in_to_my_leads(page, live_server.url, "rep")
    clock = page.locator(f"#lead-{lead.pk} [data-due]")
    first = clock.inner_text()

    # The clock's script is a static file now; it runs and moves the countdown.
    expect(clock).not_to_have_text(first, timeout=5_000)
    # The style sheet applied: the page is laid out by site.css, not the browser's defaults.
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"
    assert refusals == []


def test_admin_pages_and_the_export_page_work_under_the_policy(page: Page, live_server, revops, refusals):
    admin_login(page, live_server.url, "revops", PASSWORD)
    expect(page.locator("#site-name")).to_contain_text("Lead Router")

    page.goto(f"{live_server.url}/admin/territories/rep/")
    expect(page.locator("#changelist")).to_be_visible()

    # django-import-export's "Select all" toggle is an inline handler, allowed by its hash.
    page.goto(f"{live_server.url}/admin/territories/rep/export/")
    toggle = page.locator("input.select-toggle")
    expect(toggle).to_be_checked()
    toggle.uncheck()
    expect(page.locator(".selectable-field-export-row input[type=checkbox]").first).not_to_be_checked()
    assert refusals == []


def test_the_api_docs_render_under_the_policy(page: Page, live_server, refusals):
    page.goto(f"{live_server.url}/api/docs/")

    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/leads/")
    assert refusals == []
