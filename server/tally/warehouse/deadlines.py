"""Query time limits without a thread per query.

A `threading.Timer` per query starts and joins an OS thread every time (about 0.2 ms, and a
thread per running query under load). One daemon thread per process instead keeps a heap of
deadlines and calls each one's action when it passes, unless the query ended first.
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

    def __init__(self, at: float, action: Callable[[], None]) -> None:
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
                    continue
                deadline.fired.set()
            try:
                deadline.action()
            except Exception:  # the query goes on to its end; the watchdog must not stop
                log.warning("a query's time limit could not interrupt it", exc_info=True)

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
            # Under the lock: once the block has ended, the action has either been started
            # (`fired` is set) or never will be. A cancelled deadline stays in the heap until
            # its time and is skipped then.
            with self._wake:
                deadline.cancelled = True


WATCHDOG = Watchdog()
