"""Stored leads always render: whatever JSON a lead holds (hundreds of levels deep, a million characters, NULs,
lone surrogates, keys that are not strings), its rep page, its admin page, its e-mail and its Slack post show a
bounded version with visible cuts, and the rep is told.

Leads here are stored directly, not posted: intake has its own limits, but rows imported earlier, by CSV or by
hand are not bound by them.
"""

import datetime as dt
import decimal
import json

import pytest
from django.core import mail
from django.urls import reverse

from routing import render
from routing.dispatch import leads_route
from routing.models import Lead, Notification, Rule
from routing.notify import notifications_send
from tests.factories import AssignmentFactory, LeadFactory, QueueFactory, QueueMembershipFactory
from tests.helpers import admin_url, slack_server

DEEP = 400
HUGE = 1_000_000


def nested(depth: int, leaf: object) -> object:
    """``leaf`` inside ``depth`` levels of alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = {"level": value} if level % 2 else [value]
    return value


def hostile_json(*, on_postgres: bool) -> tuple[dict, list]:
    """Form answers and page history as no form would send them. PostgreSQL's jsonb refuses NUL and lone
    surrogates, so only SQLite stores those."""
    answers = {
        "Budget": nested(DEEP, "deep answer"),
        "Notes": "n" * HUGE,
        "Choices": list(range(5000)),
    }
    pages = [nested(DEEP, "/deep"), {"url": "/pricing?" + "q" * HUGE, "title": "Pricing"}, "/demo"]
    if not on_postgres:
        answers["Odd"] = "nul \x00 and a lone \udfff surrogate"
        pages.append("/lone-\udfff")
    return answers, pages


# --- The formatter -------------------------------------------------------------------------------------------


def test_deep_json_is_cut_at_the_depth_limit_without_recursion():
    # Far deeper than Python's recursion limit: only an iterative walk survives this.
    value = nested(5000, "bottom")

    text = render.json_text(value)

    assert "…" in text
    assert "bottom" not in text
    assert text.count("[") + text.count("{") <= render.MAX_DEPTH + 1
    assert render.inline_text(value).startswith("{") or render.inline_text(value).startswith("[")
    assert render.form_answer_pairs({"q": value})[0][0] == "q"
    assert len(render.page_history_lines([value])) == 1


def test_shallow_json_is_shown_whole_with_sorted_keys():
    value = {"b": [1, 2.5, None, True], "a": {"c": "x"}}

    assert json.loads(render.json_text(value)) == value
    assert render.json_text(value).index('"a"') < render.json_text(value).index('"b"')
    assert render.json_text(value, indent=None) == '{"a": {"c": "x"}, "b": [1, 2.5, null, true]}'


def test_long_strings_and_lists_are_cut_with_a_count_of_what_is_left():
    text = render.json_text({"notes": "n" * HUGE, "items": list(range(1000))})

    assert f"… ({HUGE - render.MAX_STRING_CHARS:,} more characters)" in text
    assert f"… {1000 - render.MAX_ITEMS:,} more items" in text
    assert len(text) < 10_000


def test_a_block_stops_at_its_size_limit_and_says_so():
    wide = {f"key {index}": "v" * 1000 for index in range(100)}

    text = render.json_text(wide, max_chars=5000)

    assert text.endswith("… (cut at 5,000 characters)")
    assert len(text) < 5100


def test_nul_lone_surrogates_and_control_characters_become_replacement_characters():
    text = render.json_text({"a\x00": "x\x00y\udfff\x07z", "ok": "tab\tand\nnewline"})

    assert "\x00" not in text and "\udfff" not in text and "\x07" not in text
    text.encode("utf-8")  # Would raise on a lone surrogate.
    assert "\ufffd" in text
    assert render.safe_text("tab\tand\nnewline") == "tab\tand\nnewline"


def test_any_python_value_renders():
    value = {
        1: "int key",
        None: "null key",
        ("tuple", "key"): "tuple key",
        "float": float("nan"),
        "huge int": 10**5000,
        "decimal": decimal.Decimal("1.50"),
        "date": dt.date(2026, 3, 2),
        "tuple": (1, 2),
        "set": {1},
    }

    text = render.json_text(value)

    for expected in ('"1": "int key"', '"null": "null key"', "NaN", '"1.50"', '"2026-03-02"', "cannot be shown"):
        assert expected in text
    assert render.inline_text(value)


def test_form_answers_read_as_question_and_answer():
    pairs = render.form_answer_pairs(
        {"Team size": "50-200", "Products": ["Routing", "SLAs"], "Extra": {"b": 1, "a": None}, "Empty": None}
    )

    assert pairs == [
        ("Team size", "50-200"),
        ("Products", "Routing, SLAs"),
        ("Extra", '{"a": null, "b": 1}'),
        ("Empty", ""),
    ]
    assert render.form_answer_pairs([{"question": "Q", "answer": "A"}, "loose"]) == [("Q", "A"), ("", "loose")]
    assert render.form_answer_pairs("not answers") == []


def test_many_answers_and_pages_end_with_a_count_of_the_rest():
    pairs = render.form_answer_pairs({f"Q{index}": index for index in range(250)})
    lines = render.page_history_lines([f"/page/{index}" for index in range(250)])

    assert len(pairs) == render.MAX_ITEMS + 1
    assert pairs[-1] == ("…", "150 more answers not shown")
    assert len(lines) == render.MAX_ITEMS + 1
    assert lines[-1] == "… 150 more pages not shown"


# --- A stored lead on every surface ----------------------------------------------------------------------


@pytest.fixture
def slack():
    with slack_server() as server:
        yield server


@pytest.fixture
def hostile_lead(rep, on_postgres, slack):
    """A lead stored with hostile form answers and page history, routed to ``rep`` through the real router."""
    rep.user.email = "rep@seller.example"
    rep.user.save()
    rep.slack_webhook_url = slack.url("/hook")
    rep.save()
    queue = QueueFactory(name="Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    Rule.objects.create(name="All to Inbound", position=1, action=Rule.Action.QUEUE, queue=queue)
    answers, pages = hostile_json(on_postgres=on_postgres)
    lead = Lead.objects.create(
        raw_payload={
            "email": "deep@prospect.example",
            "first_name": "Dee",
            "last_name": "Nest",
            "company": "Deep Nest GmbH",
            "form_answers": answers,
            "page_history": pages,
        }
    )

    leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert (lead.status, lead.owner) == (Lead.Status.ASSIGNED, rep)
    # Routing kept the answers as stored: the cuts are made only where they are shown.
    assert lead.form_answers["Notes"] == "n" * HUGE
    return lead


def test_the_rep_is_told_by_email_and_slack(hostile_lead, slack):
    assert notifications_send(assignment_ids=[hostile_lead.assignments.get().pk]) == 2

    assert set(Notification.objects.filter(lead=hostile_lead).values_list("status", flat=True)) == {"sent"}
    [message] = mail.outbox
    [(html, _)] = message.alternatives
    for body in (message.body, html):
        assert "Budget" in body and "…" in body
        assert "more characters" in body
        assert len(body) < 200_000
        assert "\x00" not in body and "\udfff" not in body
    message.message().as_bytes()  # The whole message encodes.
    [post] = slack.posts
    assert "Dee Nest (Deep Nest GmbH)" in post["json"]["text"]


def test_the_rep_page_shows_the_lead_with_visible_cuts(client, rep, hostile_lead):
    client.force_login(rep.user)

    response = client.get(reverse("lead-page", args=[hostile_lead.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Budget" in page and "…" in page and "more characters" in page
    assert "/demo" in page
    assert len(page) < 500_000


def test_the_admin_page_shows_payload_answers_and_history_with_visible_cuts(client, revops, hostile_lead):
    client.force_login(revops)

    response = client.get(admin_url(hostile_lead, "change", hostile_lead.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Budget" in page and ("[…]" in page or "{…}" in page)
    assert "more characters" in page
    assert "deep@prospect.example" in page
    assert len(page) < 2_000_000


def test_a_hostile_receipt_renders_on_both_pages(client, rep, revops):
    # Receipts are written by the router, but a row is a row: the raw receipt block is bounded too.
    lead = LeadFactory(
        owner=rep, status=Lead.Status.ASSIGNED, receipt={"outcome": "assigned", "extra": nested(DEEP, "x" * HUGE)}
    )
    AssignmentFactory(lead=lead, rep=rep)

    for user, url in ((rep.user, reverse("lead-page", args=[lead.pk])), (revops, admin_url(lead, "change", lead.pk))):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200, url
        assert "…" in response.content.decode()
