"""A manager hands a queue to a deputy: the deputy acts on that queue's leads, and only on those."""

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.models import Lead
from sla.models import Escalation
from tests.factories import (
    AssignmentFactory,
    LeadFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    UserFactory,
)
from tests.helpers import messages_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbound(rep):
    queue = QueueFactory(name="DACH Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    return queue


@pytest.fixture
def deputy(team, manager):
    """A senior rep of the team, who stands in while the manager is away."""
    return RepFactory(user=UserFactory(username="senior"), team=team, manager=manager)


def lead_of(rep, queue, company):
    lead = LeadFactory(status=Lead.Status.ASSIGNED, owner=rep, queue=queue, company=company)
    AssignmentFactory(lead=lead, rep=rep, queue=queue)
    return lead


def delegate(client, manager, queue, deputy):
    client.force_login(manager)
    return client.post(reverse("queue-deputy-add", args=[queue.pk]), {"deputy": deputy.user.pk}, follow=True)


def test_a_deputy_sees_and_reassigns_the_delegated_queues_leads_only(client, manager, rep, deputy, inbound, outsider):
    delegated = lead_of(rep, inbound, "Delegated GmbH")
    elsewhere = lead_of(outsider, QueueFactory(name="Field"), "Elsewhere Inc")
    Escalation.objects.create(lead=delegated, action="alert_manager", reason="Breached", fired_at=timezone.now())

    response = delegate(client, manager, inbound, deputy)
    assert "now acts for DACH Inbound" in messages_text(response)

    client.force_login(deputy.user)
    board = client.get(reverse("team-board"), {"aging": "all"}).content.decode()
    assert "Delegated GmbH" in board
    assert "Elsewhere Inc" not in board
    assert "Delegated GmbH" in client.get(reverse("escalations")).content.decode()

    # The deputy hands the lead to another member of the queue.
    colleague = RepFactory(user=UserFactory(username="colleague"), team=deputy.team)
    QueueMembershipFactory(queue=inbound, rep=colleague)
    client.post(reverse("team-reassign"), {"leads": [delegated.pk], "to_rep": colleague.pk, "note": "Covering"})
    assert Lead.objects.get(pk=delegated.pk).owner == colleague
    # …but cannot touch a lead outside the queue.
    refused = client.post(reverse("team-reassign"), {"leads": [elsewhere.pk], "to_rep": colleague.pk})
    assert refused.status_code == 404
    assert Lead.objects.get(pk=elsewhere.pk).owner == outsider


def test_a_deputy_cannot_delegate_further_and_an_outsider_cannot_delegate(client, manager, deputy, inbound, outsider):
    delegate(client, manager, inbound, deputy)

    client.force_login(deputy.user)
    assert client.post(reverse("queue-deputy-add", args=[inbound.pk]), {"deputy": deputy.user.pk}).status_code == 404
    client.force_login(outsider.user)
    assert client.post(reverse("queue-deputy-add", args=[inbound.pk]), {"deputy": outsider.user.pk}).status_code == 404


def test_taking_the_queue_back_ends_the_deputys_access(client, manager, rep, deputy, inbound):
    lead_of(rep, inbound, "Delegated GmbH")
    delegate(client, manager, inbound, deputy)
    client.post(reverse("queue-deputy-remove", args=[inbound.pk, deputy.user.pk]))

    client.force_login(deputy.user)
    board = client.get(reverse("team-board"), {"aging": "all"})

    assert board.status_code == 404 or "Delegated GmbH" not in board.content.decode()


def test_a_manager_cannot_make_someone_outside_their_team_a_deputy(client, manager, inbound, outsider):
    client.force_login(manager)

    response = client.post(reverse("queue-deputy-add", args=[inbound.pk]), {"deputy": outsider.user.pk})

    assert response.status_code == 404
