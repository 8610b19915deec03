"""Single flight: concurrent callers asking for the same key wait for one computation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """Run fn once for all concurrent callers of `key`; returns (value, shared) where shared
        is True for callers that waited on another's computation. Errors are shared too."""
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = Future()
                self._calls[key] = future
        assert future is not None
        if not leader:
            return future.result(), True
        try:
            value = fn()
        except BaseException as e:
            future.set_exception(e)
            raise
        else:
            future.set_result(value)
            return value, False
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._calls)
