"""Routing again from the admin while the router hands out held leads: one current owner per lead, exact loads."""

import pytest
from django.db.models import Count
from django.utils import timezone

from routing.dispatch import queued_leads_distribute
from routing.models import Assignment, Lead, Queue
from routing.ownership import loads_recount
from routing.reassign import leads_reroute
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
    dach_coverage,
)
from tests.helpers import five_times, run_together


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_routing_again_racing_the_queue_sweep_never_leaves_two_current_assignments():
    # German leads held in the catch-all, which the sweep releases to its own member, while RevOps route them
    # all again to the DACH queue that now covers them.
    catch_all, _ = Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    QueueMembershipFactory(queue=catch_all, rep=RepFactory(user=UserFactory(username="cara"), max_open_leads=100))
    dach_coverage()
    revops = UserFactory(username="revops", is_staff=True)
    leads = []
    for _ in range(20):
        lead = LeadFactory(status=Lead.Status.QUEUED, queue=catch_all, country="DE", routed_at=timezone.now())
        AssignmentFactory(lead=lead, rep=None, queue=catch_all)
        leads.append(lead)
    errors = run_together(
        five_times(lambda: queued_leads_distribute(limit=4)), five_times(lambda: leads_reroute(leads=leads, by=revops))
    )

    assert errors == []
    doubled = Assignment.objects.filter(ended_at__isnull=True).values("lead").annotate(n=Count("id")).filter(n__gt=1)
    assert not doubled.exists()
    for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads]):
        current = Assignment.objects.get(lead=lead, ended_at__isnull=True)
        assert (current.rep_id, current.queue_id) == (lead.owner_id, lead.queue_id)
    assert loads_recount(now=timezone.now()) == []
    # The rules won wherever they ran last: the DACH queue holds leads.
    assert Lead.objects.filter(queue__name="DACH Inbound").exists()
