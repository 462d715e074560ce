"""The demo organisation that ``make run`` loads into an empty database."""

from io import StringIO

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.urls import reverse

from leadrouter.coverage import apply_import, load_yaml, plan_import
from leadrouter.demo import generate
from leadrouter.demo.loader import DEMO_FILE, DEMO_LOGINS, DEMO_PASSWORD, demo_load
from routing.models import Queue, Rule
from territories.models import Account, OutOfOffice, Rep, Team, Territory, TerritoryCriterion
from territories.roles import REVOPS_GROUP
from territories.time_zones import user_time_zone
from tests.helpers import FAST_HASHERS

DOCUMENT = yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker):
    """The demo organisation, loaded once for the module's tests inside a transaction rolled back at the end;
    each test runs in a savepoint of it (pytest-django's ``db`` nests), so what one test changes the next does
    not see. Loading it took ~5 s, once per test."""
    # The tests' fast hasher (tests/conftest.py sets it per test, after this fixture): the logins must be
    # checked with the hasher they were made with.
    with override_settings(PASSWORD_HASHERS=FAST_HASHERS), django_db_blocker.unblock(), transaction.atomic():
        demo_load()
        yield
        transaction.set_rollback(True)


@pytest.fixture
def demo(loaded, db):
    return None


# --- The file, without a database --------------------------------------------------------------------------------


def test_generator_is_deterministic_and_matches_the_committed_file(capsys):
    generate.main()
    first = capsys.readouterr().out
    generate.main()
    second = capsys.readouterr().out
    assert first == second
    # A change to generate.py must come with the regenerated file.
    assert first == DEMO_FILE.read_text(encoding="utf-8")


def test_demo_file_says_it_is_generated():
    assert DEMO_FILE.read_text(encoding="utf-8").startswith("# The demo organisation")
    assert "python leadrouter/demo/generate.py > leadrouter/demo/coverage.yaml" in DEMO_FILE.read_text()


def test_account_names_and_domains_are_unique():
    names = [account["name"].lower() for account in DOCUMENT["accounts"]]
    domains = [domain for account in DOCUMENT["accounts"] for domain in account["domains"]]
    assert len(names) == len(set(names))
    assert len(domains) == len(set(domains))


def test_every_account_country_fits_its_territory():
    territories = {node["name"]: node for node in DOCUMENT["territories"]}

    def nearest_countries(name: str) -> list[str]:
        # The countries criterion of the territory or, failing that, of its nearest ancestor.
        node = territories[name]
        while "countries" not in node.get("criteria", {}):
            node = territories[node["parent"]]
        return node["criteria"]["countries"]

    for account in DOCUMENT["accounts"]:
        assert account["country"] in nearest_countries(account["territory"]), account["name"]


def test_demo_logins_are_in_the_file_except_revops():
    managers = {username for team in DOCUMENT["teams"] for username in team["managers"]}
    reps = {rep["username"] for rep in DOCUMENT["reps"]}
    assert "manager" in managers
    assert "anna.schmidt" in reps
    assert "revops" not in reps | managers


# --- Loaded into a database ----------------------------------------------------------------------------------------


def test_demo_org_has_the_expected_shape(demo):
    assert set(Team.objects.values_list("name", flat=True)) == {"AMER", "EMEA", "APAC"}
    assert Rep.objects.count() >= 12
    assert Rep.objects.values("time_zone").distinct().count() >= 6
    assert Rep.objects.filter(active=False).count() == 1
    assert OutOfOffice.objects.exists()
    assert Account.objects.count() >= 300
    assert Account.objects.filter(owner__isnull=False).exists()
    assert Account.objects.filter(is_customer=True).exists()

    # The tree goes down to US states and DACH countries, with an enterprise split in DACH.
    california = Territory.objects.get(name="California")
    assert california.parent.name == "US West"
    assert california.criteria.filter(kind=TerritoryCriterion.Kind.SUBDIVISION, value="US-CA").exists()
    for country, code in (("Germany", "DE"), ("Austria", "AT"), ("Switzerland", "CH")):
        assert Territory.objects.get(name=country).criteria.filter(kind="country", value=code).exists()
    enterprise = Territory.objects.get(name="DACH Enterprise")
    assert enterprise.parent.name == "DACH"
    assert set(enterprise.criteria.values_list("value", flat=True)) == {"1001-5000", "5001+"}
    assert Territory.objects.get(name="California Strategic").rep.username == "jake.morrison"

    # A routing matrix: rules in position order, closed by routing to the territory.
    rules = list(Rule.objects.order_by("position", "name"))
    assert 5 <= len(rules) <= 7
    assert rules[0].action == Rule.Action.ACCOUNT_OWNER
    assert rules[-1].action == Rule.Action.TERRITORY and rules[-1].condition is None
    assert Rule.objects.get(name="Japan to Japan Inbound").queue.name == "Japan Inbound"
    assert Rule.objects.get(name="DACH enterprise").queue.name == "DACH Enterprise"
    assert Rule.objects.filter(active=False).count() == 1


def test_every_territory_is_covered_as_the_file_says(demo):
    for node in DOCUMENT["territories"]:
        territory = Territory.objects.select_related("queue", "rep__user").get(name=node["name"])
        assert (territory.queue.name if territory.queue else None) == node.get("queue")
        assert (territory.rep.username if territory.rep else None) == node.get("rep")
    # Only the grouping node relies on its parent's coverage.
    uncovered = Territory.objects.filter(queue__isnull=True, rep__isnull=True)
    assert list(uncovered.values_list("name", flat=True)) == ["North America"]


def test_every_queue_ends_at_the_catch_all_or_holds(demo):
    catch_all = Queue.objects.get(is_catch_all=True)
    assert catch_all.name == "Catch-all"
    assert catch_all.memberships.count() >= 2
    for queue in Queue.objects.exclude(pk=catch_all.pk):
        node, seen = queue, set()
        # Holding off hours still overflows when the team is at work but full, so its chain must end too.
        while node.when_nobody_eligible in (Queue.WhenNobodyEligible.OVERFLOW, Queue.WhenNobodyEligible.HOLD_OFF_HOURS):
            assert node.pk not in seen, f"{queue} loops"
            seen.add(node.pk)
            node = node.fallback
        assert node == catch_all or node.when_nobody_eligible == Queue.WhenNobodyEligible.HOLD, queue.name
    assert Queue.objects.filter(when_nobody_eligible="hold", is_catch_all=False).exists()
    # German leads wait for the DACH team's morning rather than go to New York or Sydney at night.
    assert Queue.objects.get(name="DACH Commercial").when_nobody_eligible == "hold_off_hours"
    assert set(Queue.objects.values_list("method", flat=True)) == {"round_robin", "weighted", "load_balanced"}


def test_loading_again_plans_no_change(demo):
    plan = apply_import(load_yaml(DEMO_FILE.read_text(encoding="utf-8")))
    assert plan.is_empty, plan.render()
    assert plan_import(load_yaml(DEMO_FILE.read_text(encoding="utf-8"))).is_empty


def test_demo_logins_can_log_in_and_revops_reaches_admin(demo, client):
    # Through the login page, as a person signs in (the lock-out guard needs the request).
    for login in DEMO_LOGINS:
        response = client.post(reverse("login"), {"username": login.username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, login.username
        client.logout()

    revops = get_user_model().objects.get(username="revops")
    assert revops.is_staff and not revops.is_superuser
    assert revops.groups.filter(name=REVOPS_GROUP).exists()
    client.force_login(revops)
    assert client.get("/admin/").status_code == 200

    assert Team.objects.get(name="EMEA").managers.filter(username="manager").exists()
    assert Rep.objects.get(user__username="anna.schmidt").time_zone == "Europe/Berlin"
    # The EMEA manager reads pages in Berlin time, from their profile.
    assert user_time_zone(user=get_user_model().objects.get(username="manager")) == "Europe/Berlin"


# --- The command ---------------------------------------------------------------------------------------------------


def test_load_demo_if_empty_on_an_earlier_demo_still_lists_the_logins(demo):
    # `make run` runs this on every start, and must print the logins each time.
    out = StringIO()
    call_command("load_demo", "--if-empty", stdout=out)
    assert "already has coverage data" in out.getvalue()
    assert "Demo logins:" in out.getvalue()


def test_load_demo_twice_is_harmless(demo):
    counts = (Rep.objects.count(), Queue.objects.count(), Territory.objects.count(), Account.objects.count())
    call_command("load_demo", "--no-history", stdout=StringIO())
    assert counts == (Rep.objects.count(), Queue.objects.count(), Territory.objects.count(), Account.objects.count())


def test_the_demo_intake_key_posts_a_lead_that_the_demo_routes(demo, client, django_capture_on_commit_callbacks):
    # The README's curl example, through the API and the routing service, as the worker would run it.
    from leadrouter.demo.loader import DEMO_API_KEY
    from routing.dispatch import leads_route
    from routing.models import Lead

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/api/v1/leads/",
            {"email": "jana.keller@keller-maschinenbau.de", "company": "Keller Maschinenbau", "country": "Deutschland"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {DEMO_API_KEY}",
        )
    assert response.status_code == 201
    leads_route(lead_ids=[response.json()["id"]])

    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.status in (Lead.Status.ASSIGNED, Lead.Status.QUEUED)
    assert lead.territory is not None and lead.queue is not None
    assert lead.receipt["routing"]["summary"]


def test_the_demo_holds_german_leads_for_the_dach_team_at_night(demo):
    """At Berlin night every DACH rep is off: a German lead waits for the team's morning instead of going to
    New York or Sydney, and so do the open leads of a DACH rep who leaves at night."""
    import datetime as dt

    import time_machine

    from routing.dispatch import leads_route
    from routing.models import Lead
    from routing.reassign import departure_plan

    german_speakers = set(Rep.objects.filter(skills__code="german").values_list("user__username", flat=True))
    tuesday_day = dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin
    night = dt.datetime(2026, 12, 8, 23, 30, tzinfo=dt.UTC)  # 00:30 on Wednesday in Berlin
    payload = {"country": "Deutschland", "employees": 300, "company": "Nachtfalter Logistik GmbH"}
    by_day = [Lead.objects.create(raw_payload={**payload, "email": f"day{n}@nachtfalter.example"}) for n in range(6)]
    with time_machine.travel(tuesday_day, tick=False):
        leads_route(lead_ids=[lead.pk for lead in by_day])
    owners = set(
        Lead.objects.filter(pk__in=[lead.pk for lead in by_day]).values_list("owner__user__username", flat=True)
    )
    assert owners <= german_speakers and owners

    at_night = Lead.objects.create(raw_payload={**payload, "email": "night@nachtfalter.example"})
    with time_machine.travel(night, tick=False):
        leads_route(lead_ids=[at_night.pk])
        leaving = Lead.objects.filter(pk__in=[lead.pk for lead in by_day]).first().owner
        plan = departure_plan(rep=leaving, now=night)

    at_night.refresh_from_db()
    assert (at_night.status, at_night.queue.name, at_night.owner) == (Lead.Status.QUEUED, "DACH Commercial", None)
    assert "anna.schmidt starts work at Wed 09 Dec 09:00 CET (Europe/Berlin)" in at_night.receipt["routing"]["summary"]
    assert plan.leads
    # Anna is the only DACH rep left (Jonas has left, Felix is on leave): with her gone nobody can take them
    # now, and they wait, still needing German, rather than go to a rep who cannot serve them.
    assert {move.to_rep_id for move in plan.leads} == {None}
    assert all(move.receipt["queue_path"][-1]["required_skills"] == ["german"] for move in plan.leads)
    assert {
        line["username"]
        for move in plan.leads
        for step in move.receipt["queue_path"][1:]
        for line in step["candidates"]
    }.isdisjoint(german_speakers)
