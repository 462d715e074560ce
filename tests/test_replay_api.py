"""Replay for RevOps: the API, the page with its CSV, and the command; bad input is a 400, never a 500."""

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from leadrouter.coverage import dump_yaml
from leadrouter.coverage.versions import draft_create, draft_save_text
from routing.models import ApiScope
from routing.services import apikey_create
from territories.models import ReplayRun, Territory
from tests.test_replay import austria_draft, coverage, route_history  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

URL = "/api/v1/routing/replay/"
RECENTLY = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)


@pytest.fixture
def history(coverage):  # noqa: F811 - the fixture imported above
    # Anna alone serves DACH, so moving Austria away changes exactly the Austrian leads.
    dach, _ = coverage
    dach.memberships.filter(rep__user__username="ben").update(active=False)
    return route_history(["DE", "AT", "DE", "AT", "DE", "AT"], start=RECENTLY)


@pytest.fixture
def austria(history):
    draft = draft_create("Austria apart")
    return draft_save_text(draft, dump_yaml(austria_draft()))


def post(client, body):
    return client.post(URL, json.dumps(body), content_type="application/json")


def test_revops_replay_a_draft_over_the_last_days_and_the_run_is_kept(client, revops, austria):
    client.force_login(revops)

    response = post(client, {"draft": "Austria apart", "days": 30})

    assert response.status_code == 200
    body = response.json()
    assert (body["leads"], body["changed_count"], body["replayed"]) == (6, 3, "draft Austria apart")
    assert {line["after"]["queue"] for line in body["changed"]} == {"Alps Inbound"}
    assert {"leads", "changed", "by_rep", "by_queue", "fairness"} <= set(body)
    run = ReplayRun.objects.get(pk=body["id"])
    assert (run.draft, run.created_by, run.report["changed_count"]) == (austria, revops, 3)
    # Nothing of the draft reached the live model.
    assert not Territory.objects.filter(name="Austria").exists()


def test_the_live_model_and_a_version_replay_too(client, revops, history):
    client.force_login(revops)
    draft = draft_create("Copy")

    live = post(client, {})
    version = post(client, {"version": draft.base.number})

    assert (live.status_code, live.json()["changed_count"], live.json()["replayed"]) == (200, 0, "live coverage")
    assert (version.status_code, version.json()["changed_count"]) == (200, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"draft": "No such draft"}, "draft"),
        ({"version": 999}, "version"),
        ({"version": "one"}, "version"),
        ({"days": 0}, "days"),
        ({"days": 100000}, "days"),
        ({"queue": "No such queue"}, "queue"),
        ({"draft": 7}, "draft"),  # A name is text, not a number.
        ({"source": 42}, "source"),
        ({"draft": "Austria apart", "version": 1}, "draft"),
        ({"document": "version: 1\nteams: [unclosed"}, "document"),
        ({"document": "version: 1\nterritories:\n  - name: X\n    queue: Nowhere\n"}, "document"),
        ({"document": "nul \u0000 byte"}, "detail"),  # refused by the parser, naming the field
        ({"source": "x" * 101}, "source"),
    ],
)
def test_bad_requests_are_400_with_the_field_named(client, revops, austria, body, field):
    client.force_login(revops)

    response = post(client, body)

    assert response.status_code == 400
    assert field in response.json()
    assert not ReplayRun.objects.exists()


@pytest.mark.parametrize("raw", ["[]", '"text"', "{", '{"days": {"deep": [1]}}'])
def test_odd_json_is_a_400(client, revops, raw):
    client.force_login(revops)

    response = client.post(URL, raw, content_type="application/json")

    assert response.status_code == 400


def test_reps_managers_and_api_keys_may_not_replay(client, rep, manager, history):
    for user in (rep.user, manager):
        client.force_login(user)
        assert post(client, {}).status_code == 403
    client.logout()
    # An integration's key, even with every scope, has no replay: it reads its own leads, not everyone's routing.
    _key, raw = apikey_create(name="Website", scopes=[scope.value for scope in ApiScope])
    response = client.post(URL, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code in (401, 403)
    assert post(client, {}).status_code in (401, 403)
    assert not ReplayRun.objects.exists()


def test_the_page_replays_an_uploaded_file_shows_who_gains_and_loses_and_downloads_csv(client, revops, history):
    client.force_login(revops)
    upload = SimpleUploadedFile("austria.yaml", dump_yaml(austria_draft()).encode(), content_type="text/yaml")

    response = client.post(reverse("replay"), {"replayed": "file", "document": upload, "days": 30})

    run = ReplayRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("replay-result", args=[run.pk])
    page = client.get(response["Location"]).content.decode()
    assert 'data-rep="carla"' in page and 'data-change="3"' in page
    assert "<svg" in page
    csv_response = client.get(reverse("replay-csv", args=[run.pk]))
    rows = csv_response.content.decode().splitlines()
    assert rows[0].startswith("lead,routed_at,outcome_then,rep_then")
    assert len(rows) == 4 and all(",carla,Alps Inbound," in row for row in rows[1:])


def test_the_page_says_why_a_file_cannot_be_replayed(client, revops, history):
    client.force_login(revops)
    upload = SimpleUploadedFile("broken.yaml", b"version: 1\nterritories:\n  - name: X\n    queue: Nowhere\n")

    response = client.post(reverse("replay"), {"replayed": "file", "document": upload, "days": 30})

    assert response.status_code == 400
    assert "Nowhere" in response.content.decode()
    assert not ReplayRun.objects.exists()


def test_the_command_prints_json_with_the_changed_leads(austria, capsys):
    call_command("coverage", "replay", "Austria apart", "--since", "30", "--json")

    report = json.loads(capsys.readouterr().out)
    assert (report["leads"], len(report["changed"])) == (6, 3)
    assert {"leads", "changed", "by_rep", "by_queue", "fairness"} <= set(report)


def test_the_command_prints_a_readable_summary_of_a_file(history, tmp_path, capsys):
    draft = tmp_path / "austria.yaml"
    draft.write_text(dump_yaml(austria_draft()), encoding="utf-8")

    call_command("coverage", "replay", str(draft), "--since", "30")

    out = capsys.readouterr().out
    assert "over 6 leads" in out and "3 would change" in out
    assert "carla" in out and "decided by rule 'By territory'" in out


def test_the_command_refuses_what_names_nothing(history):
    with pytest.raises(CommandError, match="cannot be replayed"):
        call_command("coverage", "replay", "no-such-draft-or-file")
    with pytest.raises(CommandError, match="--since"):
        call_command("coverage", "replay", "live", "--since", "0")


def test_the_publish_page_shows_the_drafts_latest_replay_beside_the_button(client, revops, austria):
    client.force_login(revops)
    publish = reverse("admin:territories_coveragedraft_publish", args=[austria.pk])
    assert "has not been replayed yet" in client.get(publish).content.decode()

    # The publish page's own form replays the draft over the last 30 days.
    response = client.post(reverse("replay"), {"replayed": f"draft:{austria.pk}", "days": 30})

    assert response.status_code == 302
    page = client.get(publish).content.decode()
    assert 'data-figure="replay-changed">3<' in page
    assert 'data-rep="carla"' in page and "+3" in page
    assert "changed after this replay" not in page
    # Editing the draft afterwards makes the evidence stale, and the page says so.
    draft_save_text(austria, austria.text + "\n# reviewed\n")
    assert "changed after this replay" in client.get(publish).content.decode()
