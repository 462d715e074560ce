"""Routing threads of one process taking turns at the interpreter.

A routing batch alternates Python work (preparing, deciding, building rows) with waits for the database
(the claim's rows, the routing lock, the last writes and the commit): ~12% of a 1,000-lead batch is spent
waiting. A second thread with its own connection can fill those waits with its own batch. Left to the
interpreter's lock, two threads interleave their Python every few milliseconds, evict each other's caches and
each runs slower, which ate the waits they filled. Here the threads of a ``Turns`` take turns instead: one
runs Python at a time, and hands the turn over only where it starts waiting for the database (``let_go``,
``handed_over``), taking it back once the database has answered (``take``).

A thread that waits for the routing lock says so (``let_go(urgent=True)``): once it has the lock, it gets the
turn before any thread that only wants to start its next batch, so that the lock is never held by a thread
waiting for the interpreter while another prepares.

The turn is a matter of speed, never of correctness: what the threads share is locked on its own (the
coverage cache, the timings), rows are ordered by the database, and a thread that waited ``PATIENCE`` seconds
for its turn takes it anyway, so no wait for a row lock held by the other thread's transaction can stall
both. A thread outside a ``Turns`` (every web request, a single batch's task, SQLite) is not affected: every
function here does nothing there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# How long a thread waits for its turn before it takes it anyway (seconds): longer than any stretch of
# Python between two waits of a 1,000-lead batch (~0.1 s), short enough that a stall the turn did not foresee
# costs little.
PATIENCE = 1.0


class Turns:
    """One turn shared by the routing threads of a process."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._holder: int | None = None  # The thread (``threading.get_ident``) whose turn it is.
        self._urgent = 0  # Threads waiting for the routing lock, which get the turn first once they have it.

    @contextlib.contextmanager
    def taking_part(self) -> Iterator[None]:
        """The calling thread takes turns with the others of this ``Turns`` until the block ends. It starts
        without the turn: its first wait for the database (``take``) asks for it."""
        previous = getattr(_local, "turns", None), getattr(_local, "urgent", False)
        _local.turns, _local.urgent = self, False
        try:
            yield
        finally:
            let_go()
            if _local.urgent:
                with self._changed:
                    self._urgent -= 1
                    self._changed.notify_all()
            _local.turns, _local.urgent = previous

    def _take(self, *, urgent: bool) -> None:
        me = threading.get_ident()
        with self._changed:
            if self._holder == me:
                return
            self._changed.wait_for(lambda: self._holder is None and (urgent or not self._urgent), timeout=PATIENCE)
            self._holder = me
            if urgent:
                self._urgent -= 1

    def _let_go(self, *, urgent: bool) -> None:
        with self._changed:
            if self._holder == threading.get_ident():
                self._holder = None
            if urgent:
                self._urgent += 1
            self._changed.notify_all()


_local = threading.local()


def take() -> None:
    """Take the turn (back), if this thread takes turns; first, if it said its wait was urgent."""
    turns = getattr(_local, "turns", None)
    if turns is None:
        return
    urgent, _local.urgent = _local.urgent, False
    turns._take(urgent=urgent)


def let_go(*, urgent: bool = False) -> None:
    """Let another thread run: this one is about to wait for the database (``urgent``: for the routing lock).
    ``take`` before the next Python work of any length."""
    turns = getattr(_local, "turns", None)
    if turns is None or (urgent and _local.urgent):
        return
    _local.urgent = _local.urgent or urgent
    turns._let_go(urgent=urgent)


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """The block waits for the database: the turn is another thread's meanwhile, and this thread's again after."""
    let_go()
    try:
        yield
    finally:
        take()
