"""Routing for real: received leads are claimed, decided, written with a receipt, and the rep is notified."""

import datetime as dt
import gc

import pytest
import time_machine
from django.utils import timezone

from routing import dispatch, pipeline
from routing.dispatch import leads_route, leads_route_stale, queued_leads_distribute
from routing.models import Assignment, Lead, Notification, Queue, RepTask, ScoringRule
from routing.ownership import leads_close
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    OutOfOfficeFactory,
    RepFactory,
    UserFactory,
    dach_coverage,
)

pytestmark = pytest.mark.django_db

# A Monday morning; the reps below work in UTC with no working hours set, so they are always on.
MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def dach():
    queue = dach_coverage()
    return queue


def received(**payload):
    """A lead as intake stores it: only the raw payload, status received."""
    payload = {"email": f"lead{Lead.objects.count()}@prospect.de", "country": "Deutschland", **payload}
    return Lead.objects.create(raw_payload=payload, source=payload.get("source", ""))


def owners(leads):
    return [Lead.objects.select_related("owner__user").get(pk=lead.pk).owner.user.username for lead in leads]


def test_a_received_lead_is_assigned_with_its_receipt_history_task_and_notification(
    dach, django_capture_on_commit_callbacks
):
    lead = received(
        email=" Max.Muster@Prospect.DE ",
        company="Prospect GmbH",
        phone="030 1234567",
        form_answers={"What do you need?": "Routing for 3 regions"},
        page_history=["/pricing", {"url": "/demo", "at": "2026-11-23T09:58:00Z"}],
    )

    with time_machine.travel(MONDAY, tick=False), django_capture_on_commit_callbacks() as callbacks:
        report = leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert report.by_status == {"assigned": 1}
    assert lead.status == Lead.Status.ASSIGNED
    assert lead.owner.user.username == "anna"
    assert (lead.queue, lead.territory.name, lead.rule.name) == (dach, "DACH", "By territory")
    assert lead.routed_at == MONDAY
    # The standardized values are stored next to the raw payload, which is kept as received.
    assert (lead.email, lead.country, lead.phone, lead.company_key) == (
        "Max.Muster@prospect.de",
        "DE",
        "+49301234567",
        "prospect",
    )
    assert lead.raw_payload["email"] == " Max.Muster@Prospect.DE "
    # What the rep needs for the first call travels with the lead.
    assert lead.form_answers == {"What do you need?": "Routing for 3 regions"}
    assert lead.page_history == ["/pricing", {"url": "/demo", "at": "2026-11-23T09:58:00Z"}]
    assert lead.receipt["routing"]["summary"] == "Assigned to anna in DACH Inbound by rule 'By territory'."
    assert lead.receipt["elapsed_ms"] > 0
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.rep, assignment.queue, assignment.reason) == (lead.owner, dach, "routed")
    assert RepTask.objects.get(lead=lead).due_at > MONDAY
    assert Notification.objects.filter(lead=lead, kind="email", status="pending").count() == 1
    # Notifications are enqueued only once the assignment is committed.
    assert len(callbacks) == 1


def test_round_robin_alternates_within_a_batch_and_carries_on_in_the_next(dach):
    first = [received() for _ in range(3)]
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk for lead in first])
        second = [received() for _ in range(3)]
        leads_route(lead_ids=[lead.pk for lead in second])

    assert owners(first) + owners(second) == ["anna", "ben", "anna", "ben", "anna", "ben"]
    # The pointer rests just past the last winner (ben, the second member).
    assert Queue.objects.get(pk=dach.pk).rr_pointer == 2


def test_a_rep_at_capacity_is_skipped_and_the_lead_waits_when_everyone_is_full(dach):
    for rep in dach.members.all():
        rep.max_open_leads = 1
        rep.save()
    leads = [received() for _ in range(3)]

    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk for lead in leads])

    statuses = [Lead.objects.get(pk=lead.pk).status for lead in leads]
    assert statuses == ["assigned", "assigned", "queued"]
    waiting = Lead.objects.get(pk=leads[2].pk)
    assert waiting.owner is None
    assert waiting.queue == dach
    reasons = {line["username"]: line["reason"] for line in waiting.receipt["routing"]["queue_path"][0]["candidates"]}
    assert reasons == {"anna": "at capacity", "ben": "at capacity"}


def test_a_held_lead_is_released_when_a_rep_has_room_again(dach):
    for rep in dach.members.all():
        rep.max_open_leads = 1
        rep.save()
    leads = [received() for _ in range(3)]
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk for lead in leads])
        # Anna closes her lead: she has room for the one waiting.
        leads_close([Lead.objects.get(pk=leads[0].pk)], to=Lead.Status.CLOSED, now=timezone.now())
        report = queued_leads_distribute()

    released = Lead.objects.get(pk=leads[2].pk)
    assert report.by_status == {"assigned": 1}
    assert (released.status, released.owner.user.username) == ("assigned", "anna")
    history = list(Assignment.objects.filter(lead=released).order_by("pk"))
    assert [(row.rep_id is None, row.ended_at is not None) for row in history] == [(True, True), (False, False)]
    assert released.receipt["routing"]["released"]["summary"].startswith("Assigned to anna in DACH Inbound once")


def test_routing_twice_is_harmless(dach):
    lead = received()
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk])
        again = leads_route(lead_ids=[lead.pk])

    assert again.leads == 0
    assert Assignment.objects.filter(lead=lead).count() == 1
    assert Lead.objects.get(pk=lead.pk).routing_attempts == 1


def test_without_ids_every_received_lead_is_routed_in_batches(dach):
    leads = [received() for _ in range(7)]
    with time_machine.travel(MONDAY, tick=False):
        report = leads_route(batch_size=3)

    assert report.leads == 7
    assert not Lead.objects.filter(status=Lead.Status.RECEIVED).exists()
    assert sorted(owners(leads)) == ["anna"] * 4 + ["ben"] * 3


def test_a_repeat_of_an_open_lead_is_attached_to_it_not_routed_again(dach):
    first = received(email="max@prospect.de")
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[first.pk])
        again = received(email="MAX@prospect.de")
        # Two more in one batch: the second attaches to the first of the batch.
        new_one, its_repeat = received(email="eva@prospect.de"), received(email="eva@prospect.de")
        leads_route(lead_ids=[again.pk, new_one.pk, its_repeat.pk])

    again.refresh_from_db()
    its_repeat.refresh_from_db()
    assert (again.status, again.duplicate_of_id, again.owner) == ("duplicate", first.pk, None)
    assert (its_repeat.status, its_repeat.duplicate_of_id) == ("duplicate", new_one.pk)
    assert not Assignment.objects.filter(lead__in=[again, its_repeat]).exists()
    assert "Attached to open lead" in again.receipt["routing"]["summary"]


def test_attaching_duplicates_can_be_switched_off(dach, settings):
    settings.LEADROUTER_ATTACH_DUPLICATES = False
    first, second = received(email="max@prospect.de"), received(email="max@prospect.de")
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[first.pk, second.pk])

    assert owners([first, second]) == ["anna", "ben"]


def test_nurture_and_disqualified_leads_take_no_rep_capacity(dach):
    ScoringRule.objects.create(
        name="Demo request",
        kind="intent",
        points=50,
        condition={"all": [{"field": "source", "op": "equals", "value": "demo request"}]},
    )
    cold, hot = received(source="webinar"), received(source="Demo request")
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[cold.pk, hot.pk])

    cold.refresh_from_db()
    hot.refresh_from_db()
    assert (cold.status, cold.owner, cold.score) == ("disqualified", None, 0)
    assert (hot.status, hot.owner.user.username, hot.intent_score) == ("assigned", "anna", 50)
    assert not Assignment.objects.filter(lead=cold).exists()


def test_an_account_lead_goes_to_the_owner_and_records_the_match(dach):
    owner = RepFactory(user=UserFactory(username="olga"), time_zone="UTC")
    account = AccountFactory(name="Nordwind Logistik GmbH", owner=owner)
    AccountDomainFactory(account=account, domain="nordwind-logistik.de")
    lead = received(email="kai@nordwind-logistik.de")

    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert (lead.owner, lead.account, lead.account_match_method) == (owner, account, "email_domain")
    assert (lead.account_match_confidence, lead.account_match_weak) == (100.0, False)


def test_an_out_of_office_rep_is_skipped_with_the_reason_in_the_receipt(dach):
    anna = dach.members.get(user__username="anna")
    OutOfOfficeFactory(
        rep=anna, starts_at=MONDAY - dt.timedelta(days=1), ends_at=MONDAY + dt.timedelta(days=1), reason="Vacation"
    )
    lead = received()
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert lead.owner.user.username == "ben"
    candidates = lead.receipt["routing"]["queue_path"][0]["candidates"]
    assert any(line["username"] == "anna" and "out of office" in line["reason"] for line in candidates)


def test_a_lead_that_breaks_preparation_waits_in_the_catch_all_and_the_batch_goes_on(dach, monkeypatch):
    good, bad = received(), received(company="poison")
    standardize = pipeline.standardize

    def failing_on_poison(raw):
        if raw.get("company") == "poison":
            raise RuntimeError("enrichment provider exploded")
        return standardize(raw)

    Lead.objects.filter(pk=bad.pk).update(first_name="Kept", flags={"phone": "kept"}, country="DE")
    monkeypatch.setattr(pipeline, "standardize", failing_on_poison)
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[good.pk, bad.pk])

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == "assigned"
    assert (bad.status, bad.queue) == ("queued", Queue.objects.catch_all())
    assert bad.routing_error == "RuntimeError: enrichment provider exploded"
    # The columns routing would have replaced keep what the row held (the claim did not read them).
    assert (bad.first_name, bad.flags, bad.country) == ("Kept", {"phone": "kept"}, "DE")


def test_a_lead_whose_scoring_breaks_in_a_later_part_waits_in_the_catch_all_and_the_batch_goes_on(dach, monkeypatch):
    # Scoring runs part by part under the routing lock (on PostgreSQL inside the batch's pipeline, after the
    # parts before it were sent): a failure there is the lead's own, as one before the lock is.
    first, bad, last = received(), received(company="poison"), received()
    Lead.objects.filter(pk=bad.pk).update(first_name="Kept", country="DE")
    match_and_score = pipeline._match_and_score

    def failing_on_poison(standardized, *args, **kwargs):
        if standardized.company == "poison":
            raise RuntimeError("scoring exploded")
        return match_and_score(standardized, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_match_and_score", failing_on_poison)
    monkeypatch.setattr(dispatch, "WRITE_PART", 1)
    with time_machine.travel(MONDAY, tick=False):
        report = leads_route(lead_ids=[first.pk, bad.pk, last.pk])

    assert report.leads == 3
    rows = {lead.pk: lead for lead in Lead.objects.filter(pk__in=[first.pk, bad.pk, last.pk])}
    assert rows[first.pk].status == rows[last.pk].status == "assigned"
    assert (rows[bad.pk].status, rows[bad.pk].queue) == ("queued", Queue.objects.catch_all())
    assert rows[bad.pk].routing_error == "RuntimeError: scoring exploded"
    assert (rows[bad.pk].first_name, rows[bad.pk].country) == ("Kept", "DE")


def test_the_sweep_routes_leads_left_received_and_leaves_fresh_ones_to_their_task(dach):
    with time_machine.travel(MONDAY, tick=False):
        forgotten = received()
    with time_machine.travel(MONDAY + dt.timedelta(seconds=30), tick=False):
        fresh = received()
        report = leads_route_stale(older_than_seconds=10)

    assert report.leads == 1
    assert Lead.objects.get(pk=forgotten.pk).status == "assigned"
    assert Lead.objects.get(pk=fresh.pk).status == "received"


def test_a_lead_is_stored_before_routing_so_a_failed_batch_leaves_it_received(dach, monkeypatch):
    lead = received()

    def broken_write(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(dispatch, "_write", broken_write)
    with time_machine.travel(MONDAY, tick=False), pytest.raises(RuntimeError):
        leads_route(lead_ids=[lead.pk])

    # Nothing half-written: the lead is still received, with its payload, for the sweep.
    lead.refresh_from_db()
    assert (lead.status, lead.owner, lead.routing_attempts) == ("received", None, 0)
    assert not Assignment.objects.exists()
    # And the cycle collector, held off while the batch ran, runs again.
    assert gc.isenabled()


def test_the_cycle_collector_waits_while_a_batch_routes_and_runs_again_after_it(dach, monkeypatch):
    seen = []
    decide = dispatch._decide

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return decide(*args, **kwargs)

    monkeypatch.setattr(dispatch, "_decide", watched)
    leads = [received() for _ in range(3)]
    assert gc.isenabled()
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk for lead in leads])

    assert seen == [False, False, False]
    assert gc.isenabled()
    assert owners(leads) == ["anna", "ben", "anna"]


def test_the_cycle_collector_runs_again_only_when_the_last_of_two_overlapping_batches_ends():
    # Two routing threads of one process (``leads_route``): the first batch to end must not turn the collector
    # back on under the other.
    with dispatch.collector_paused():
        with dispatch.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_process_that_runs_without_the_cycle_collector_keeps_it_off(dach):
    gc.disable()
    try:
        with time_machine.travel(MONDAY, tick=False):
            leads_route(lead_ids=[received().pk])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_task_for_one_lead_also_routes_the_others_waiting_oldest_first(dach):
    # A burst of single posts: the first task to run takes the whole backlog in one batch.
    leads = [received() for _ in range(4)]
    with time_machine.travel(MONDAY, tick=False):
        report = leads_route(lead_ids=[leads[-1].pk])
        later = leads_route(lead_ids=[leads[0].pk])

    assert report.leads == 4
    assert later.leads == 0
    # Routed in arrival order, whichever lead the task was sent for.
    assert owners(leads) == ["anna", "ben", "anna", "ben"]


@pytest.mark.sqlite
def test_the_routing_benchmark_asks_for_postgresql_rather_than_measuring_sqlite():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="measures PostgreSQL"):
        call_command("bench_routing")


def test_a_lead_sent_back_never_returns_to_the_rep_who_sent_it(dach, django_capture_on_commit_callbacks):
    from routing.services import lead_not_mine

    first, second = received(), received()
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[first.pk, second.pk])
        # Anna had the first lead and says it is not hers; the rotation would give her the next one.
        first.refresh_from_db()
        anna = first.owner
        with django_capture_on_commit_callbacks(execute=False):
            lead_not_mine(lead=first, by=anna.user, reason="We sell to Austria only")
        leads_route(lead_ids=[first.pk])

    first.refresh_from_db()
    assert first.owner.user.username == "ben"
    candidates = {line["username"]: line["reason"] for line in first.receipt["routing"]["queue_path"][0]["candidates"]}
    assert candidates["anna"] == "sent this lead back"


def test_an_account_owner_who_sent_the_lead_back_is_passed_over_for_the_rules(dach, django_capture_on_commit_callbacks):
    from routing.services import lead_not_mine

    owner = RepFactory(user=UserFactory(username="olga"), time_zone="UTC")
    account = AccountFactory(name="Nordwind Logistik GmbH", owner=owner)
    AccountDomainFactory(account=account, domain="nordwind-logistik.de")
    lead = received(email="kai@nordwind-logistik.de")
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[lead.pk])
        lead.refresh_from_db()
        assert lead.owner == owner
        with django_capture_on_commit_callbacks(execute=False):
            lead_not_mine(lead=lead, by=owner.user, reason="Wrong division")
        leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert lead.owner.user.username in {"anna", "ben"}
    assert "sent this lead back" in str(lead.receipt["routing"]["account"])


def test_a_rep_deactivated_while_workers_cache_the_coverage_model_gets_nothing_more(dach, monkeypatch):
    monkeypatch.setattr(dispatch, "coverage", dispatch.CoverageCache())  # A fresh worker process.
    first, second = received(), received()
    with time_machine.travel(MONDAY, tick=False):
        leads_route(lead_ids=[first.pk])  # Anna; the cache now holds her as active.
        anna = Lead.objects.get(pk=first.pk).owner
        anna.active = False
        anna.save()
        # The rotation points at ben next; send two, so the second would be anna's turn again.
        third = received()
        leads_route(lead_ids=[second.pk, third.pk])

    assert owners([second, third]) == ["ben", "ben"]
