"""Constraints that hold under concurrency, where a check in Python cannot."""

import threading

import pytest
from django.db import IntegrityError, connections, transaction

from routing.models import Queue
from tests.helpers import STALL_SECONDS, join_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_racing_catch_all_creations_leave_exactly_one() -> None:
    # Start from a database without a catch-all, as before the data migration ran.
    Queue.objects.filter(is_catch_all=True).update(is_catch_all=False)
    both_checked = threading.Barrier(2)
    saw_catch_all: list[bool] = []
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def create_catch_all(name: str) -> None:
        try:
            with transaction.atomic():
                # The check application code would make; both transactions pass it.
                saw_catch_all.append(Queue.objects.filter(is_catch_all=True).exists())
                both_checked.wait(STALL_SECONDS)
                Queue.objects.create(name=name, is_catch_all=True)
            outcomes.append("created")
        except IntegrityError as exc:
            outcomes.append(f"refused: {exc}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create_catch_all, args=(f"Catch-all {n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    join_all(threads)

    assert errors == []
    assert saw_catch_all == [False, False]
    assert len(outcomes) == 2
    assert outcomes.count("created") == 1
    assert "queue_single_catch_all" in next(outcome for outcome in outcomes if outcome != "created")
    assert Queue.objects.filter(is_catch_all=True).count() == 1
