"""RevOps in real Chromium: upload a draft that moves a region to another queue, replay it over the last 30 days,
see who gains and who loses leads, publish it, and roll it back."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from leadrouter.coverage import dump_yaml
from territories.models import CoverageDraft, CoverageRevision, ReplayRun, Territory
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD
from tests.test_replay import austria_draft, dach_and_alps, route_history

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def austria_history():
    """DACH Inbound (anna alone) takes Germany and Austria; Alps Inbound (carla) is idle. Six leads were routed
    over the last days, three of them Austrian."""
    dach, alps = dach_and_alps()
    dach.memberships.filter(rep__user__username="ben").update(active=False)
    route_history(["DE", "AT", "DE", "AT", "DE", "AT"], start=timezone.now() - dt.timedelta(days=3))
    return dach, alps


def test_revops_replay_a_draft_publish_it_and_roll_it_back(page: Page, live_server, revops, austria_history, tmp_path):
    draft_file = tmp_path / "austria-apart.yaml"
    draft_file.write_text(dump_yaml(austria_draft()), encoding="utf-8")
    admin_login(page, live_server.url, "revops", PASSWORD)

    # 1. Upload the draft.
    page.goto(f"{live_server.url}/admin/territories/coveragedraft/add/")
    page.fill("#id_name", "Austria apart")
    page.set_input_files("#id_upload", str(draft_file))
    page.click("input[name='_continue']")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    draft = CoverageDraft.objects.get(name="Austria apart")
    before = CoverageRevision.objects.order_by("-number").first()
    assert before is not None

    # 2. From the publish page, replay it over the last 30 days.
    page.goto(f"{live_server.url}/admin/territories/coveragedraft/{draft.pk}/publish/")
    expect(page.locator("#draft-replay")).to_contain_text("has not been replayed yet")
    page.fill("#draft-replay-days", "30")
    page.click("#draft-replay-run")

    # 3. Who gains and who loses.
    expect(page.locator("h1")).to_contain_text("Replay of draft Austria apart")
    expect(page.locator("[data-figure='changed']")).to_have_text("3")
    expect(page.locator("body")).not_to_contain_text("explained by")
    expect(page.locator("#gains-losses tr[data-rep='carla'] [data-change]")).to_have_text("+3")
    expect(page.locator("#gains-losses tr[data-rep='anna'] [data-change]")).to_have_text("-3")
    screenshot(page, "replay-result")
    assert ReplayRun.objects.get().draft == draft

    # 4. Publish it, with the replay beside the button.
    page.goto(f"{live_server.url}/admin/territories/coveragedraft/{draft.pk}/publish/")
    expect(page.locator("[data-figure='replay-changed']")).to_have_text("3")
    expect(page.locator("#draft-replay tr[data-rep='carla']")).to_contain_text("+3")
    screenshot(page, "replay-publish")
    page.click("input[value='Publish now']")
    expect(page.locator(".messagelist")).to_contain_text("Published draft")
    assert Territory.objects.values_list("queue__name", flat=True).get(name="Austria") == "Alps Inbound"

    # 5. Roll back to the version before it: Austria is DACH's again.
    page.goto(f"{live_server.url}/admin/territories/coveragerevision/{before.number}/rollback/")
    page.click(f"input[value='Roll back to version {before.number}']")
    expect(page.locator(".messagelist")).to_contain_text(str(before.number))
    assert not Territory.objects.filter(name="Austria").exists()
    assert set(Territory.objects.get(name="DACH").criteria.values_list("value", flat=True)) == {"DE", "AT"}
