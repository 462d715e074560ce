"""Routing threads taking turns (routing/turns.py): one runs at a time, a thread holding the routing lock goes
first, a stall never blocks for good, and a thread outside a ``Turns`` is not affected."""

import threading

from routing import turns
from routing.turns import Turns
from tests.helpers import STALL_SECONDS, join_all, wait_for_progress


def run(target) -> threading.Thread:
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_outside_a_turns_every_call_does_nothing():
    turns.take()
    turns.let_go()
    turns.let_go(urgent=True)
    with turns.handed_over():
        pass
    turns.take()


def test_one_thread_runs_at_a_time_until_it_waits_for_the_database():
    shared = Turns()
    order: list[str] = []
    first_has_it, first_may_go = threading.Event(), threading.Event()

    def first():
        with shared.taking_part():
            turns.take()
            first_has_it.set()
            assert first_may_go.wait(STALL_SECONDS)
            order.append("first, before waiting for the database")
            turns.let_go()

    def second():
        with shared.taking_part():
            assert first_has_it.wait(STALL_SECONDS)
            first_may_go.set()
            turns.take()  # Only once the first lets go.
            order.append("second")

    join_all([run(first), run(second)])

    assert order == ["first, before waiting for the database", "second"]


def test_the_thread_waiting_for_the_routing_lock_goes_first():
    shared = Turns()
    order: list[str] = []
    holder_has_it, release = threading.Event(), threading.Event()

    def holder():
        with shared.taking_part():
            turns.take()
            holder_has_it.set()
            assert release.wait(STALL_SECONDS)
            turns.let_go()

    def starting_its_batch():
        with shared.taking_part():
            turns.take()
            order.append("starting its batch")

    def holding_the_lock():
        with shared.taking_part():
            turns.let_go(urgent=True)  # Asks for the routing lock.
            turns.take()  # Has it.
            order.append("holding the lock")

    threads = [run(holder)]
    assert holder_has_it.wait(STALL_SECONDS)
    threads += [run(starting_its_batch), run(holding_the_lock)]
    # Both ask while the holder runs; the urgent one has said so before the holder lets go.
    wait_for_progress(lambda: shared._urgent, lambda urgent: urgent == 1, what="the urgent thread", poll_seconds=0.01)
    release.set()
    join_all(threads)

    assert order == ["holding the lock", "starting its batch"]


def test_a_thread_that_never_lets_go_stalls_the_other_only_for_a_while(monkeypatch):
    monkeypatch.setattr(turns, "PATIENCE", 0.05)
    shared = Turns()
    went_on = threading.Event()
    holder_has_it, release = threading.Event(), threading.Event()

    def stuck():
        with shared.taking_part():
            turns.take()
            holder_has_it.set()
            assert release.wait(STALL_SECONDS)  # Say, waiting for a row the other thread's transaction holds.

    def other():
        with shared.taking_part():
            turns.take()
            went_on.set()

    threads = [run(stuck)]
    assert holder_has_it.wait(STALL_SECONDS)
    threads.append(run(other))

    assert went_on.wait(STALL_SECONDS)
    release.set()
    join_all(threads)
