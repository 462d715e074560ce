"""Queue invariants: one catch-all that never goes away, fallbacks that end."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.deletion import ProtectedError

from routing.models import Queue
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


def test_catch_all_queue_cannot_be_deleted():
    catch_all = Queue.objects.catch_all()
    with pytest.raises(ProtectedError):
        catch_all.delete()
    # Nor through a bulk delete of a queryset that contains it.
    with pytest.raises(ProtectedError):
        Queue.objects.all().delete()
    assert Queue.objects.filter(is_catch_all=True).count() == 1


def test_ordinary_queues_can_be_deleted_in_bulk():
    QueueFactory(name="Old EMEA")
    Queue.objects.filter(is_catch_all=False).delete()
    assert list(Queue.objects.values_list("name", flat=True)) == ["Catch-all"]


def test_catch_all_queue_cannot_be_deactivated():
    catch_all = Queue.objects.catch_all()
    catch_all.active = False
    with pytest.raises(ValidationError) as error:
        catch_all.full_clean()
    assert "cannot be deactivated" in " ".join(error.value.message_dict["active"])
    with pytest.raises(IntegrityError), transaction.atomic():
        catch_all.save()


def test_there_is_only_one_catch_all_queue():
    with pytest.raises(IntegrityError), transaction.atomic():
        Queue.objects.create(name="Second catch-all", is_catch_all=True)


def test_overflowing_queue_needs_a_fallback():
    queue = QueueFactory.build(name="DACH", when_nobody_eligible=Queue.WhenNobodyEligible.OVERFLOW)
    with pytest.raises(ValidationError) as error:
        queue.full_clean()
    assert "fallback" in error.value.message_dict


def test_fallback_chain_must_not_loop():
    first = QueueFactory(name="First")
    second = QueueFactory(name="Second", fallback=first)
    first.fallback = second
    with pytest.raises(ValidationError) as error:
        first.full_clean()
    assert "leads back to this queue" in " ".join(error.value.message_dict["fallback"])


def test_catch_all_has_no_fallback():
    catch_all = Queue.objects.catch_all()
    catch_all.fallback = QueueFactory(name="Elsewhere")
    with pytest.raises(ValidationError) as error:
        catch_all.full_clean()
    assert "last stop" in " ".join(error.value.message_dict["fallback"])
