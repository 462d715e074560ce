"""Coverage versions, diffs, rollbacks, drafts and scheduled publishing (leadrouter/coverage/versions.py)."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from leadrouter.celery import app
from leadrouter.coverage import CoverageError, dump_yaml, export_coverage, versions
from leadrouter.tasks import publish_due_drafts
from routing.models import Queue, Rule
from territories.models import CoverageDraft, CoverageRevision, Rep, Territory
from territories.services import reps_deactivate
from tests.factories import QueueFactory, RepFactory, TeamFactory, TerritoryFactory, UserFactory
from tests.helpers import import_csv, run_together

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("coverage", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def model(team):
    """A small live model: a queue with a rep, a territory on it and a rule, and the catch-all (made by a
    migration, but gone after a transactional test's flush)."""
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    anna = RepFactory(user=UserFactory(username="anna"), team=team)
    queue = QueueFactory(name="DACH Inbound")
    queue.memberships.create(rep=anna)
    TerritoryFactory(name="DACH", queue=queue)
    Rule.objects.create(name="Enterprise", position=10, action=Rule.Action.QUEUE, queue=queue)
    return {"rep": anna, "queue": queue}


def latest() -> CoverageRevision:
    version = versions.version_latest()
    assert version is not None
    return version


# --- A version for every kind of change --------------------------------------------------------------------------


def test_an_admin_save_records_one_version_with_its_author_and_message(client, revops, model):
    before = versions.version_current()
    rule = Rule.objects.get(name="Enterprise")
    url = reverse("admin:routing_rule_change", args=[rule.pk])
    client.force_login(revops)
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(name="Enterprise", position=20, action="queue", queue=model["queue"].pk, condition="")

    response = client.post(url, data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    version = latest()
    assert version.number == before.number + 1
    assert version.kind == CoverageRevision.Kind.ADMIN
    assert version.author == revops
    assert 'Changed rule "Enterprise"' in version.message
    assert next(entry for entry in version.document["rules"] if entry["name"] == "Enterprise")["position"] == 20


def test_an_admin_delete_and_a_new_team_each_record_a_version(client, revops, model):
    versions.version_current()
    client.force_login(revops)
    territory = Territory.objects.get(name="DACH")

    client.post(reverse("admin:territories_territory_delete", args=[territory.pk]), {"post": "yes"})
    deleted = latest()
    client.post(reverse("admin:territories_team_add"), {"name": "Nordics", "description": ""})
    added = latest()

    assert deleted.kind == added.kind == CoverageRevision.Kind.ADMIN
    assert added.number == deleted.number + 1
    assert "territories" not in deleted.document
    assert {team["name"] for team in added.document["teams"]} >= {"Nordics"}


def test_an_admin_page_that_changes_nothing_records_no_version(client, revops, model):
    versions.version_current()
    count = CoverageRevision.objects.count()
    client.force_login(revops)

    # A form with an error saves nothing.
    client.post(reverse("admin:territories_team_add"), {"name": ""})

    assert CoverageRevision.objects.count() == count


def test_a_reps_availability_toggle_is_no_version_but_shows_in_the_next_one(model):
    first = versions.version_current()

    reps_deactivate(reps=[model["rep"]])

    assert latest() == first
    versions.version_create(kind=CoverageRevision.Kind.ADMIN, message="later")
    assert '~ rep "anna": active true → false' in versions.versions_diff(first.number, latest().number).render()


def test_an_import_records_a_version_and_a_dry_run_none(tmp_path, revops, model):
    document = export_coverage()
    document["rules"][0]["position"] = 30
    path = tmp_path / "coverage.yaml"
    path.write_text(dump_yaml(document))

    run("import", str(path), "--dry-run")
    assert not CoverageRevision.objects.filter(kind=CoverageRevision.Kind.IMPORT).exists()
    stdout, _ = run("import", str(path), "--user", "revops", "--message", "Enterprise later")

    version = latest()
    assert stdout.splitlines()[-1] == f"Applied as version {version.number}."
    assert (version.kind, version.author, version.message) == (CoverageRevision.Kind.IMPORT, revops, "Enterprise later")
    assert version.document == export_coverage()


def test_publish_and_rollback_record_versions(revops, model):
    first = versions.version_current()
    draft = versions.draft_create("later rule", user=revops)
    draft.text = draft.text.replace("position: 10", "position: 40")
    draft.save()

    _plan, published = versions.draft_publish(draft, user=revops)
    _plan, rolled_back = versions.version_rollback(first.number, user=revops)

    assert (published.kind, published.author, published.message) == ("publish", revops, 'Published draft "later rule"')
    assert (rolled_back.kind, rolled_back.message) == ("rollback", f"Rollback to version {first.number}")
    assert rolled_back.number == published.number + 1
    assert Rule.objects.get(name="Enterprise").position == 10


# --- Diff ---------------------------------------------------------------------------------------------------------


def test_the_diff_of_two_versions_lists_entries_added_removed_and_changed_field_by_field(model):
    first = versions.version_current()
    Rule.objects.filter(name="Enterprise").update(position=15)
    Rule.objects.create(name="Partners", action=Rule.Action.QUEUE, queue=model["queue"])
    Territory.objects.get(name="DACH").delete()
    second = versions.version_create(kind=CoverageRevision.Kind.ADMIN)
    assert second is not None

    diff = versions.versions_diff(first.number, second.number)

    assert [(c.action, c.kind, c.key) for c in diff.changes] == [
        ("removed", "territory", "DACH"),
        ("changed", "rule", "Enterprise"),
        ("added", "rule", "Partners"),
    ]
    assert [(f.field, f.old, f.new) for f in diff.changes[1].fields] == [("position", 10, 15)]
    stdout, _ = run("diff", str(first.number), str(second.number))
    assert stdout.splitlines() == [
        '- territory "DACH"',
        '~ rule "Enterprise": position 10 → 15',
        '+ rule "Partners"',
        "3 differences: 1 added, 1 changed, 1 removed.",
    ]
    assert versions.versions_diff(second.number, second.number).is_empty


def test_versions_command_lists_the_newest_first(revops, model):
    versions.version_current()
    versions.coverage_import(export_coverage() | {"teams": [{"name": "Nordics"}]}, user=revops, message="Nordics")

    stdout, _ = run("versions")

    lines = stdout.splitlines()
    assert "import" in lines[0] and "revops" in lines[0] and lines[0].endswith("Nordics")
    assert "baseline" in lines[1]


# --- Rollback -----------------------------------------------------------------------------------------------------


def test_rollback_round_trip_gives_back_the_first_export(tmp_path, revops, model):
    first_export = dump_yaml(export_coverage())
    first = versions.version_current()
    # Change it every way: a field, a new entry, a deleted entry, a new queue member.
    Rule.objects.filter(name="Enterprise").update(position=99)
    nordics = QueueFactory(name="Nordics Inbound")
    TerritoryFactory(name="Nordics", queue=nordics)
    Territory.objects.get(name="DACH").delete()
    RepFactory(user=UserFactory(username="ben"), team=TeamFactory(name="Nordics"))
    versions.version_create(kind=CoverageRevision.Kind.ADMIN)

    dry, _ = run("rollback", str(first.number), "--dry-run")
    assert dry.splitlines()[-1] == "Dry run: nothing was written."
    assert '+ territory "DACH"' in dry and '- territory "Nordics"' in dry
    assert Rule.objects.get(name="Enterprise").position == 99
    stdout, _ = run("rollback", str(first.number), "--user", "revops")

    assert stdout.splitlines()[-1] == f"Rolled back to version {first.number} as version {latest().number}."
    # ben was not in the first version: a rollback deactivates reps rather than deleting them.
    assert not Rep.objects.get(user__username="ben").active
    Rep.objects.filter(user__username="ben").delete()
    TeamFactory._meta.model.objects.filter(name="Nordics").delete()
    assert dump_yaml(export_coverage()) == first_export
    assert latest().kind == CoverageRevision.Kind.ROLLBACK


def test_rolling_back_to_a_missing_version_says_so(model):
    with pytest.raises(CommandError):
        run("rollback", "999")


# --- Drafts and scheduled publishing ------------------------------------------------------------------------------

BAD = """\
version: 1
reps:
  - {username: anna, time_zone: Mars/Olympus}
territories:
  - {name: DACH, queue: Nowhere}
"""


def test_draft_validation_gives_the_same_messages_as_an_import(tmp_path, client, revops, model):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(CommandError):
        call_command("coverage", "import", str(path), "--prune", stdout=StringIO(), stderr=(imported := StringIO()))
    with pytest.raises(CommandError):
        call_command(
            "coverage", "import", str(path), "--draft", "bad", stdout=StringIO(), stderr=(drafted := StringIO())
        )
    client.force_login(revops)
    response = client.post(reverse("admin:territories_coveragedraft_add"), {"name": "bad", "text": BAD})

    lines = imported.getvalue().splitlines()
    assert len(lines) >= 2
    assert drafted.getvalue().splitlines() == lines
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["text"] == lines
    assert not CoverageDraft.objects.exists()


def test_a_draft_is_not_used_until_published(tmp_path, revops, model):
    document = export_coverage()
    document["rules"][0]["position"] = 50
    path = tmp_path / "draft.yaml"
    path.write_text(dump_yaml(document))

    stdout, _ = run("import", str(path), "--draft", "later", "--user", "revops")

    assert '~ rule "Enterprise": position 10 → 50' in stdout
    assert Rule.objects.get(name="Enterprise").position == 10
    stdout, _ = run("publish", "later", "--user", "revops")
    assert Rule.objects.get(name="Enterprise").position == 50
    assert CoverageDraft.objects.get(name="later").published == latest()


def test_a_scheduled_draft_is_published_by_beats_task_at_its_time(revops, model):
    start = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    at = start + dt.timedelta(hours=2)
    with time_machine.travel(start, tick=False):
        draft = versions.draft_create("Monday", user=revops)
        draft.text = draft.text.replace("position: 10", "position: 60")
        draft.save()
        versions.draft_schedule(draft, at, user=revops)
    with time_machine.travel(at - dt.timedelta(minutes=1), tick=False):
        assert publish_due_drafts() == 0
        assert Rule.objects.get(name="Enterprise").position == 10
    with time_machine.travel(at + dt.timedelta(seconds=30), tick=False):
        assert publish_due_drafts() == 1

    version = latest()
    assert Rule.objects.get(name="Enterprise").position == 60
    assert (version.kind, version.author, version.scheduled_by) == ("publish", None, revops)
    assert version.created_at == at + dt.timedelta(seconds=30)
    assert publish_due_drafts() == 0


def test_beat_runs_the_publish_task_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["coverage-draft-publish"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks

    ModelEntry.from_entry("coverage-draft-publish", app=app, **entry)

    stored = PeriodicTask.objects.get(name="coverage-draft-publish")
    assert (stored.task, stored.enabled, stored.interval.every, stored.interval.period) == (
        "leadrouter.tasks.publish_due_drafts",
        True,
        60,
        "seconds",
    )


def test_a_scheduled_draft_that_no_longer_validates_is_held_with_its_reason(revops, model):
    draft = versions.draft_create("gone queue", user=revops)
    at = timezone.now() + dt.timedelta(hours=1)
    versions.draft_schedule(draft, at, user=revops)
    CoverageDraft.objects.filter(pk=draft.pk).update(text=BAD)

    with time_machine.travel(at + dt.timedelta(minutes=1)):
        assert publish_due_drafts() == 0

    draft.refresh_from_db()
    assert draft.publish_at is None and not draft.is_published
    assert "reps[0].time_zone" in draft.publish_error


def test_a_draft_is_published_once(revops, model):
    draft = versions.draft_create("once", user=revops)
    versions.draft_publish(draft, user=revops)

    with pytest.raises(CoverageError, match="already published"):
        versions.draft_publish(draft, user=revops)


def test_a_draft_made_from_an_older_version_says_what_changed_underneath(client, revops, model):
    draft = versions.draft_create("old", user=revops)
    Rule.objects.filter(name="Enterprise").update(position=70)
    versions.version_create(kind=CoverageRevision.Kind.ADMIN, author=revops)

    behind = versions.draft_behind(draft)

    assert behind is not None and behind.render().splitlines()[0] == '~ rule "Enterprise": position 10 → 70'
    client.force_login(revops)
    page = client.get(reverse("admin:territories_coveragedraft_publish", args=[draft.pk])).content.decode()
    assert f"made from version {draft.base.number}" in page
    assert "position" in page and "70" in page


# --- Admin pages --------------------------------------------------------------------------------------------------


def test_revops_compare_and_roll_back_in_admin(client, revops, model):
    first = versions.version_current()
    Queue.objects.filter(name="DACH Inbound").update(description="Germany, Austria, Switzerland")
    second = versions.version_create(kind=CoverageRevision.Kind.ADMIN, author=revops)
    assert second is not None
    client.force_login(revops)

    listing = client.get(reverse("admin:territories_coveragerevision_changelist"))
    compare = client.get(reverse("admin:territories_coveragerevision_compare"), {"a": first.number, "b": second.number})
    shown = client.get(reverse("admin:territories_coveragerevision_change", args=[second.pk]))
    plan = client.get(reverse("admin:territories_coveragerevision_rollback", args=[first.number]))
    done = client.post(reverse("admin:territories_coveragerevision_rollback", args=[first.number]))

    assert listing.status_code == shown.status_code == 200
    assert "Germany, Austria, Switzerland" in compare.content.decode()
    assert compare.context["counts"] == {"added": 0, "changed": 1, "removed": 0}
    assert "description" in plan.content.decode()
    assert done.status_code == 302
    assert Queue.objects.get(name="DACH Inbound").description == ""
    assert latest().kind == CoverageRevision.Kind.ROLLBACK


def test_compare_with_odd_numbers_is_no_error(client, revops, model):
    versions.version_current()
    client.force_login(revops)
    url = reverse("admin:territories_coveragerevision_compare")

    for query in ({"a": "1", "b": "999"}, {"a": "x", "b": "\x00"}, {"a": "9" * 40, "b": "1"}):
        assert client.get(url, query).status_code == 200


def test_revops_create_upload_and_publish_a_draft_in_admin(client, revops, model):
    client.force_login(revops)
    add = client.get(reverse("admin:territories_coveragedraft_add"))
    live = add.context["adminform"].form.initial["text"]
    assert "Enterprise" in live
    upload = StringIO(live.replace("position: 10", "position: 80"))
    upload.name = "coverage.yaml"

    response = client.post(
        reverse("admin:territories_coveragedraft_add"), {"name": "uploaded", "text": "", "upload": upload}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    draft = CoverageDraft.objects.get(name="uploaded")
    assert draft.created_by == revops and draft.base == latest()
    page = client.get(reverse("admin:territories_coveragedraft_publish", args=[draft.pk]))
    assert "80" in page.content.decode()
    client.post(reverse("admin:territories_coveragedraft_publish", args=[draft.pk]))

    assert Rule.objects.get(name="Enterprise").position == 80
    assert latest().author == revops


def test_scheduling_in_admin_records_who_scheduled(client, revops, model):
    draft = versions.draft_create("Monday", user=revops)
    client.force_login(revops)
    response = client.post(
        reverse("admin:territories_coveragedraft_change", args=[draft.pk]),
        {"name": "Monday", "text": draft.text, "publish_at_0": "2030-01-07", "publish_at_1": "06:00:00"},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    draft.refresh_from_db()
    assert draft.scheduled_by == revops and draft.publish_at is not None


def test_a_large_or_nul_upload_is_refused_with_a_message(client, revops, model):
    client.force_login(revops)
    response = client.post(reverse("admin:territories_coveragedraft_add"), {"name": "nul", "text": "version: 1\x00"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["text"]


def test_draft_export_is_the_live_document(revops, model):
    draft = versions.draft_create("copy", user=revops)

    assert versions.draft_document(draft) == export_coverage()


# --- One publish at a time ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_publishes_at_the_same_time_run_one_after_the_other_and_a_draft_publishes_once(team, model):
    versions.version_current()
    first = versions.draft_create("first")
    second = versions.draft_create("second", text=first.text.replace("position: 10", "position: 90"))

    errors = run_together(
        lambda: versions.draft_publish(first),
        lambda: versions.draft_publish(first),
        lambda: versions.draft_publish(second),
    )

    assert len(errors) == 1 and isinstance(errors[0], CoverageError), errors
    assert "already published" in str(errors[0])
    published = list(CoverageRevision.objects.filter(kind="publish").order_by("number"))
    assert [version.number for version in published] == [2, 3]
    # The last publish is the live model, and its version holds exactly that.
    assert published[-1].document == export_coverage()
    assert CoverageDraft.objects.filter(published__isnull=False).count() == 2


def test_a_draft_made_in_admin_from_an_older_version_starts_from_it_and_says_it_is_behind(client, revops, model):
    old = versions.version_current()
    Rule.objects.filter(name="Enterprise").update(position=25)
    versions.version_create(kind=CoverageRevision.Kind.ADMIN, author=revops)
    client.force_login(revops)

    version_page = client.get(reverse("admin:territories_coveragerevision_change", args=[old.pk])).content.decode()
    add_url = f"{reverse('admin:territories_coveragedraft_add')}?from_version={old.number}"
    assert add_url.replace("&", "&amp;") in version_page or add_url in version_page
    form = client.get(add_url).context["adminform"].form
    response = client.post(
        add_url, {"name": "from old", "text": form.initial["text"], "from_version": form.initial["from_version"]}
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    draft = CoverageDraft.objects.get(name="from old")
    assert draft.base == old
    assert "position: 10" in draft.text
    page = client.get(reverse("admin:territories_coveragedraft_change", args=[draft.pk])).content.decode()
    assert f"This draft was made from version {old.number}" in page
    # Publishing it would undo the change made since: the plan says so.
    assert "25" in page and "10" in page


def test_the_admin_home_links_versions_and_drafts_for_revops(client, revops):
    client.force_login(revops)

    html = client.get(reverse("admin:index")).content.decode()

    assert reverse("admin:territories_coveragerevision_changelist") in html
    assert reverse("admin:territories_coveragedraft_changelist") in html


def test_a_csv_import_in_admin_records_one_version_and_its_preview_none(client, revops, model):
    first = versions.version_current()
    client.force_login(revops)
    header = "name,parent,queue,rep,countries,subdivisions,postal_prefixes,industries,size_bands,product_lines\n"

    _preview, done = import_csv(
        client, Territory, header + "Nordics,,DACH Inbound,,SE;NO,,,,,\n" + "Benelux,,DACH Inbound,,NL;BE,,,,,\n"
    )

    assert done is not None and done.status_code in (200, 302)
    made = list(CoverageRevision.objects.filter(number__gt=first.number))
    assert [(version.kind, version.author) for version in made] == [("admin", revops)]
    diff = versions.versions_diff(first.number, made[0].number)
    assert [(change.action, change.key) for change in diff.changes] == [("added", "Benelux"), ("added", "Nordics")]


def test_the_diff_names_queue_members_by_rep(model):
    first = versions.version_current()
    model["queue"].memberships.update(weight=3)
    model["queue"].memberships.create(rep=RepFactory(user=UserFactory(username="ben")))
    second = versions.version_create(kind=CoverageRevision.Kind.ADMIN)
    assert second is not None

    lines = versions.versions_diff(first.number, second.number).render().splitlines()

    assert '~ queue "DACH Inbound": members["anna"].weight 1 → 3' in lines
    assert '~ queue "DACH Inbound": members["ben"] added: {"rep": "ben"}' in lines


def test_a_draft_also_says_when_the_model_changed_outside_versions_since(revops, model):
    draft = versions.draft_create("old", user=revops)
    reps_deactivate(reps=[model["rep"]])

    behind = versions.draft_behind(draft)

    assert behind is not None and behind.render().splitlines()[0] == '~ rep "anna": active true → false'


def test_scheduling_a_draft_in_the_past_is_refused_with_a_message(client, revops, model):
    draft = versions.draft_create("late", user=revops)
    client.force_login(revops)

    response = client.post(
        reverse("admin:territories_coveragedraft_change", args=[draft.pk]),
        {"name": "late", "text": draft.text, "publish_at_0": "2020-01-06", "publish_at_1": "06:00:00"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["publish_at"] == [
        "Choose a time in the future, or use Publish… to publish now."
    ]
    draft.refresh_from_db()
    assert draft.publish_at is None


def test_drafts_and_publish_at_from_the_command_line(revops, model):
    versions.draft_create("Monday", user=revops)

    scheduled, _ = run("publish", "Monday", "--at", "2030-01-07T06:00+01:00", "--user", "revops")
    listed, _ = run("drafts")

    assert scheduled.strip() == "Draft 'Monday' publishes at 2030-01-07 05:00 UTC."
    assert listed.startswith("Monday  publishes at 2030-01-07 05:00 UTC  from version 1")
    assert CoverageDraft.objects.get(name="Monday").scheduled_by == revops
    for bad in ("tomorrow", "2030-01-07T06:00", "2020-01-07T06:00+00:00"):
        with pytest.raises(CommandError):
            run("publish", "Monday", "--at", bad)
    with pytest.raises(CommandError, match="There is no draft 'Sunday'"):
        run("publish", "Sunday")
