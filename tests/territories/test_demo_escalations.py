"""What the demo manager finds on the escalations page right after ``make run`` on a fresh database:
``load_demo`` into an empty database, then one escalation sweep as beat runs it. A handful of open
escalations, each about a lead that still needs the manager, not a backlog of every step every ladder missed.

The load is pinned to a Wednesday afternoon so the demo's month of history is the same on every run.
"""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from routing.models import Lead
from sla.models import Escalation, EscalationStep
from sla.selectors import escalations_for_user
from sla.sweep import escalations_sweep
from tests.helpers import FAST_HASHERS

# Wednesday 2 December 2026, 13:00 UTC: EMEA and AMER both at work.
STARTED = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
Action = EscalationStep.Action


@pytest.fixture(scope="module")
def started(django_db_setup, django_db_blocker):
    """``make run`` on an empty database: the demo loads, then beat's first sweep runs. Shared by the module's
    tests, in a transaction rolled back at the end."""
    # The tests' fast hasher for the demo's logins (tests/helpers.py).
    with override_settings(PASSWORD_HASHERS=FAST_HASHERS), django_db_blocker.unblock(), transaction.atomic():
        with time_machine.travel(STARTED, tick=False):
            call_command("load_demo", "--if-empty", stdout=StringIO())
        with time_machine.travel(STARTED + timedelta(seconds=30), tick=False):
            yield escalations_sweep(now=timezone.now())
        transaction.set_rollback(True)


@pytest.fixture
def started_demo(started, db):
    return started


def test_the_demo_manager_starts_with_a_handful_of_open_escalations_each_about_a_lead_that_needs_them(started_demo):
    manager = get_user_model().objects.get(username="manager")
    open_escalations = list(escalations_for_user(user=manager).filter(status=Escalation.Status.OPEN))

    assert 3 <= len(open_escalations) <= 8
    # One escalation per lead: the step that says where the lead stands now.
    assert len({escalation.lead_id for escalation in open_escalations}) == len(open_escalations)
    for escalation in open_escalations:
        lead = escalation.lead
        # The lead is still open and nobody has touched it.
        assert lead.status in Lead.OPEN_STATUSES
        assert lead.sla.touched_at is None and not lead.touches.exists()
        # The rep the escalation names still holds it (or the one the ladder gave it to).
        holder = escalation.to_rep if escalation.action == Action.REASSIGN else escalation.rep
        assert lead.owner == holder
        # It is news: fired within the last day.
        assert STARTED - escalation.fired_at <= timedelta(days=1)


def test_the_first_sweep_after_the_demo_loads_fires_no_backlog(started_demo):
    # The history swept as it went; what beat finds at once is at most a step or two that just fell due.
    assert started_demo.total_fired <= 3 and started_demo.skipped == 0


def test_older_escalations_of_the_demo_were_worked_by_their_managers(started_demo):
    handled = Escalation.objects.exclude(status=Escalation.Status.OPEN)
    assert handled.filter(status=Escalation.Status.RESOLVED).exists()
    assert handled.filter(status=Escalation.Status.ACKNOWLEDGED).exists()
    assert not handled.filter(handled_by__isnull=True).exists()
    # The EMEA manager handled the EMEA team's.
    emea = handled.filter(rep__team__name="EMEA")
    assert set(emea.values_list("handled_by__username", flat=True)) == {"manager"}
