"""RevOps' daily admin work in real Chromium: the rule editor, the reports and the lead actions."""

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from routing.models import Lead, Queue, Rule
from sla.models import LeadSla
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD, LeadFactory, QueueFactory, RepFactory, UserFactory, dach_coverage

pytestmark = pytest.mark.django_db(transaction=True)


def test_revops_build_a_nested_rule_condition_without_typing_json(page: Page, live_server, revops):
    QueueFactory(name="DACH Enterprise")
    admin_login(page, live_server.url, "revops", PASSWORD)

    page.goto(f"{live_server.url}/admin/routing/rule/add/")
    page.fill("#id_name", "Enterprise DACH")
    page.fill("#id_position", "10")
    # The top group: every condition must hold. Its first row: country is one of DE, AT, CH.
    editor = page.locator("#condition-editor")
    editor.locator("select[name='condition__g-mode']").select_option("all")
    editor.locator("select[name='condition__g-0-field']").select_option("country")
    editor.locator("select[name='condition__g-0-op']").select_option("in")
    editor.locator("input[name='condition__g-0-value']").fill("DE, AT, CH")
    # A nested group in which any one condition is enough: big companies, or tier-1 accounts.
    editor.get_by_text("Add a nested group").click()
    nested = editor.locator("fieldset[data-group='condition__g-2']")
    nested.locator("select[name='condition__g-2-mode']").select_option("any")
    nested.locator("select[name='condition__g-2-0-field']").select_option("employees")
    nested.locator("select[name='condition__g-2-0-op']").select_option("gte")
    nested.locator("input[name='condition__g-2-0-value']").fill("1000")
    nested.locator("select[name='condition__g-2-1-field']").select_option("account.tier")
    nested.locator("select[name='condition__g-2-1-op']").select_option("equals")
    nested.locator("input[name='condition__g-2-1-value']").fill("tier_1")
    page.select_option("#id_action", "queue")
    page.click(".field-queue .select2-selection")
    page.fill(".select2-search__field", "DACH")
    page.click(".select2-results__option:has-text('DACH Enterprise')")
    screenshot(page, "admin-rule-editor")
    page.click("input[name='_continue']")

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert Rule.objects.get().condition == {
        "all": [
            {"field": "country", "op": "in", "value": ["DE", "AT", "CH"]},
            {
                "any": [
                    {"field": "employees", "op": "gte", "value": 1000},
                    {"field": "account.tier", "op": "equals", "value": "tier_1"},
                ]
            },
        ]
    }
    # The saved rule opens with its nested group as rows, and the list says it in words.
    expect(page.locator("input[name='condition__g-1-0-value']")).to_have_value("1000")
    page.goto(f"{live_server.url}/admin/routing/rule/")
    expect(page.locator("#result_list")).to_contain_text(
        "country in 'DE', 'AT', 'CH' and (employees ≥ 1000 or account.tier = 'tier_1')"
    )


def test_revops_read_the_reports_on_readable_scales_and_download_a_table(page: Page, live_server, revops):
    rep = RepFactory(user=UserFactory(username="ada"))
    rule = Rule.objects.create(name="Everything else by territory and product line", action=Rule.Action.NURTURE)
    # Touches within minutes and one after two days: a linear axis would flatten the fast ones to nothing.
    for wall in (120, 300, 2 * 86400):
        lead = LeadFactory(owner=rep, status=Lead.Status.ACCEPTED, rule=rule, routed_at=timezone.now())
        LeadSla.objects.create(
            lead=lead,
            state=LeadSla.State.MET,
            started_at=lead.routed_at,
            due_at=lead.routed_at + dt.timedelta(hours=1),
            touched_at=lead.routed_at + dt.timedelta(seconds=wall),
            speed_wall_seconds=wall,
            speed_business_seconds=wall,
        )
    admin_login(page, live_server.url, "revops", PASSWORD)

    page.goto(f"{live_server.url}/reports/")
    speed = page.locator("svg[aria-label^='Speed-to-lead per day, wall clock']")
    for tick in ("1 min", "5 min", "1 h", "1 d"):
        expect(speed.locator("text", has_text=tick).first).to_be_attached()
    adherence = page.locator("svg[aria-label^='First-touch SLA met per day']")
    expect(adherence.locator("text", has_text="100")).to_be_attached()
    conversion = page.locator("svg[aria-label^='Routed leads reaching a rep per rule']")
    expect(conversion).to_contain_text("Everything else by territory")
    expect(conversion).to_contain_text("and product line")
    expect(page.locator("#sla-reps ~ table").first).to_contain_text("ada")
    screenshot(page, "reports-readable")

    with page.expect_download() as download_info:
        page.locator("#conversion").get_by_text("Download CSV").click()
    rows = list(csv.reader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert rows[0][:2] == ["rule", "routed"]
    assert rows[1][:2] == ["Everything else by territory and product line", "3"]

    # The rule's row opens its leads in the admin.
    page.locator("#conversion table").get_by_role("link", name="Everything else by territory and product line").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)


def test_revops_route_again_reassign_and_export_leads_from_the_admin_list(page: Page, live_server, revops):
    # A flushed database (transactional tests) has lost the catch-all the migrations made.
    catch_all, _ = Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    stranded = LeadFactory(email="stranded@prospect.example", status=Lead.Status.QUEUED, queue=catch_all, country="DE")
    dach = dach_coverage()
    ben = dach.memberships.get(rep__user__username="ben").rep
    anna = dach.memberships.get(rep__user__username="anna").rep
    busy = LeadFactory(email="busy@prospect.example", status=Lead.Status.ASSIGNED, queue=dach, owner=anna)
    admin_login(page, live_server.url, "revops", PASSWORD)

    def run(action: str, *emails: str) -> None:
        page.goto(f"{live_server.url}/admin/routing/lead/")
        for email in emails:
            page.locator("#result_list tr", has_text=email).locator("input.action-select").check()
        page.select_option("select[name=action]", action)
        page.click("button[name=index]")

    # The lead stranded in the catch-all goes through today's rules to a DACH rep.
    run("reroute", "stranded@prospect.example")
    expect(page.locator(".messagelist")).to_contain_text("Routed again 1 lead(s)")
    stranded.refresh_from_db()
    assert stranded.queue == dach and stranded.owner is not None

    # Anna's lead goes to Ben, with a note.
    run("reassign", "busy@prospect.example")
    page.select_option("#id_rep", label=str(ben))
    page.fill("#id_note", "Anna is at the Munich event")
    screenshot(page, "admin-lead-reassign")
    page.click("#reassign-form input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Reassigned to ben 1 lead(s)")
    busy.refresh_from_db()
    assert busy.owner == ben

    page.goto(f"{live_server.url}/admin/routing/lead/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "export_csv")
    with page.expect_download() as download_info:
        page.click("button[name=index]")
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert {row["email"] for row in rows} == {"stranded@prospect.example", "busy@prospect.example"}
    screenshot(page, "admin-lead-actions")
