"""RevOps change coverage safely in real Chromium: upload a draft, read its plan, publish it, roll it back."""

import pytest
from playwright.sync_api import Page, expect

from leadrouter.coverage import dump_yaml, export_coverage
from routing.models import Queue
from territories.models import CoverageRevision, Territory
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD, QueueFactory, QueueMembershipFactory, RepFactory, UserFactory, dach_coverage

pytestmark = pytest.mark.django_db(transaction=True)


def test_revops_upload_a_draft_that_moves_a_region_publish_it_and_roll_it_back(page: Page, live_server, revops):
    # The catch-all the migration made is gone after an earlier transactional test's flush; a model has one.
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    dach_coverage()
    central = QueueFactory(name="Central Europe")
    QueueMembershipFactory(queue=central, rep=RepFactory(user=UserFactory(username="cara")))
    document = export_coverage()
    next(entry for entry in document["territories"] if entry["name"] == "DACH")["queue"] = "Central Europe"
    admin_login(page, live_server.url, "revops", PASSWORD)

    # Upload the draft: it starts as the live model; the file replaces it.
    page.goto(f"{live_server.url}/admin/")
    page.click("text=Coverage drafts")
    page.click(".object-tools a.addlink")
    page.fill("#id_name", "DACH to Central Europe")
    page.set_input_files(
        "#id_upload", {"name": "coverage.yaml", "mimeType": "text/yaml", "buffer": dump_yaml(document).encode()}
    )
    page.click("input[name='_continue']")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    # Routing does not use it yet; its page says what publishing would change.
    assert Territory.objects.values_list("queue__name", flat=True).get(name="DACH") == "DACH Inbound"
    plan = page.locator(".coverage-changes")
    expect(plan).to_contain_text("DACH")
    expect(plan).to_contain_text("Central Europe")
    screenshot(page, "coverage-draft")

    page.click("text=Publish…")
    screenshot(page, "coverage-draft-publish")
    page.click("input[value='Publish now']")
    expect(page.locator(".messagelist")).to_contain_text("Published draft 'DACH to Central Europe' as version")
    assert Territory.objects.values_list("queue__name", flat=True).get(name="DACH") == "Central Europe"

    # Roll back to the version before the publish: the plan first, then the rollback.
    before = CoverageRevision.objects.filter(kind="baseline").get()
    page.goto(f"{live_server.url}/admin/territories/coveragerevision/")
    page.click(f"a[href$='/coveragerevision/{before.pk}/change/']")
    page.click("text=Roll back to this version")
    expect(page.locator(".coverage-changes")).to_contain_text("DACH Inbound")
    screenshot(page, "coverage-rollback-plan")
    page.click(f"input[value='Roll back to version {before.number}']")

    expect(page.locator(".messagelist")).to_contain_text(f"Rolled back to version {before.number}")
    assert Territory.objects.values_list("queue__name", flat=True).get(name="DACH") == "DACH Inbound"
    assert list(CoverageRevision.objects.order_by("number").values_list("kind", flat=True)) == [
        "baseline",
        "publish",
        "rollback",
    ]
