"""Cancelling one query from another thread: a transport opens a `CancelScope` around a
service call (`cancel_scope`), and the warehouse, while it runs a query for that call, lets
the scope stop it (`watch`). A context variable carries the scope into the thread that runs
the query (`asyncio.to_thread` copies it), so no signature in between changes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar


class CancelScope:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    @contextlib.contextmanager
    def watch(self, stop: Callable[[], None]) -> Iterator[None]:
        """While the block runs, cancel() calls `stop` (at once if already cancelled)."""
        with self._lock:
            self._callbacks.append(stop)
            cancelled = self.cancelled
        if cancelled:
            stop()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(stop)


CURRENT: ContextVar[CancelScope | None] = ContextVar("tally_cancel_scope", default=None)


@contextlib.contextmanager
def cancel_scope(scope: CancelScope) -> Iterator[CancelScope]:
    token = CURRENT.set(scope)
    try:
        yield scope
    finally:
        CURRENT.reset(token)
