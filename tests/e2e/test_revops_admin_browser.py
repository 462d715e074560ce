"""RevOps' daily admin work in real Chromium: the rule editor, the reports and the lead actions."""

import pytest
from playwright.sync_api import Page, expect

from routing.models import Rule
from tests.e2e.conftest import admin_login, screenshot
from tests.factories import PASSWORD, QueueFactory

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
