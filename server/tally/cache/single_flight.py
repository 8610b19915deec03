"""Single flight: concurrent callers asking for the same key wait for one computation.

`SingleFlight` is for threads (the CLI, and the service's own worker threads): a waiter blocks
its thread. `AsyncSingleFlight` is for coroutines on one event loop: a waiter awaits a future
and holds no thread at all, so a herd of identical requests costs one worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[T]] = {}

    def do(
        self, key: str, fn: Callable[[], T], on_join: Callable[[], None] | None = None
    ) -> tuple[T, bool]:
        """Run fn once for all concurrent callers of `key`; returns (value, shared) where shared
        is True for callers that waited on another's computation (`on_join` is called for them
        before they wait). Errors are shared too."""
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = Future()
                self._calls[key] = future
        assert future is not None
        if not leader:
            if on_join is not None:
                on_join()
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


class AsyncSingleFlight(Generic[T]):
    """The same for coroutines. Use it from one event loop at a time (the server's)."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[T]] = {}

    async def do(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        on_join: Callable[[], None] | None = None,
    ) -> tuple[T, bool]:
        """Await fn() once for all concurrent callers of `key`; (value, shared) as above. The
        computation runs in a task of its own: a caller that is cancelled (its client went
        away) does not cancel it for the others."""
        loop = asyncio.get_running_loop()
        task = self._calls.get(key)
        if task is not None and not task.done() and task.get_loop() is loop:
            if on_join is not None:
                on_join()
            return await asyncio.shield(task), True
        task = loop.create_task(_run(fn))
        self._calls[key] = task

        def done(t: asyncio.Task[T]) -> None:
            if self._calls.get(key) is t:
                del self._calls[key]
            if not t.cancelled():
                t.exception()  # retrieved: every caller may have gone away

        task.add_done_callback(done)
        return await asyncio.shield(task), False

    def in_flight(self) -> int:
        return len(self._calls)


async def _run(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()
