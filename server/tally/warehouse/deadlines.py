"""Query time limits without a thread per query.

A `threading.Timer` per query starts an OS thread every time (about 0.2 ms, and a thread per
running query under load). One daemon thread per process instead keeps a heap of deadlines;
when one passes before its query ended, its action (an interrupt or a cancel) runs on a thread
of its own, so a cancel that blocks (a driver opening a connection to send it, an unreachable
warehouse) never delays another query's limit. Timeouts are rare; queries are not.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("tally.warehouse")


class _Deadline:
    __slots__ = ("action", "at", "cancelled", "fired")

    def __init__(self, at: float, action: Callable[[], None] | None) -> None:
        self.at = at
        self.action = action
        self.cancelled = False
        self.fired = threading.Event()


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0  # cancelled deadlines still in the heap

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tally-deadlines", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if deadline.cancelled:
                    self._cancelled -= 1
                    continue
                deadline.fired.set()
                action, deadline.action = deadline.action, None
            threading.Thread(
                target=_call, args=(action,), name="tally-deadline-action", daemon=True
            ).start()

    @contextmanager
    def limit(self, seconds: float | None, action: Callable[[], None]) -> Iterator[threading.Event]:
        """Within the block, `action` is called once `seconds` have passed (never, for None or
        0). Yields an event that is set when it was: the block's error is then a timeout."""
        if not seconds:
            yield threading.Event()
            return
        deadline = _Deadline(time.monotonic() + seconds, action)
        with self._wake:
            self._start()
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._heap[0][2] is deadline:
                self._wake.notify()
        try:
            yield deadline.fired
        finally:
            # Under the lock: once the block has ended, either `fired` is set (the action is
            # due and may still run: the caller must not reuse what it acts on) or the action
            # never runs. A cancelled deadline drops its action (and what the action holds: a
            # cursor, a connection) at once; the heap is compacted when most of it is such.
            with self._wake:
                if not deadline.fired.is_set():  # a fired deadline has left the heap already
                    self._cancelled += 1
                deadline.cancelled = True
                deadline.action = None
                if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                    self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                    heapq.heapify(self._heap)
                    self._cancelled = 0


def _call(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:  # the query runs on to its end: nothing else to do but say so
        log.warning("a query's time limit could not interrupt it", exc_info=True)


WATCHDOG = Watchdog()
