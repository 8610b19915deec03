"""Per-caller limits: a request rate (a token bucket per key or token subject) and a number of
warehouse queries running at once. Both answer 429 `too_many_requests` with the seconds to wait
(Retry-After over HTTP). Anonymous callers of an open (loopback) server are not limited."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cachetools import LRUCache

from tally.core.caller import Caller
from tally.errors import CallerError


class TooManyRequests(CallerError):
    code = "too_many_requests"
    status = 429


class Limits:
    def __init__(
        self, rate_per_minute: int, max_concurrent: int, clock: Callable[[], float]
    ) -> None:
        self.rate = rate_per_minute
        self.burst = max(1, rate_per_minute // 6) if rate_per_minute else 0  # ten seconds' worth
        self.max_concurrent = max_concurrent
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: LRUCache = LRUCache(maxsize=100_000)  # subject -> (tokens, at)
        self._running: dict[str, int] = {}

    def admit(self, caller: Caller) -> None:
        """Take one request from the caller's bucket, or raise TooManyRequests."""
        if not self.rate or caller.subject is None:
            return
        per_second = self.rate / 60.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(caller.subject, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * per_second)
            if tokens < 1.0:
                wait = (1.0 - tokens) / per_second
                self._buckets[caller.subject] = (tokens, now)
                raise TooManyRequests(
                    f"Rate limit: at most {self.rate} requests a minute for {caller.subject}; "
                    f"retry in {wait:.1f} s.",
                    retry_after_seconds=round(wait, 3),
                )
            self._buckets[caller.subject] = (tokens - 1.0, now)

    @contextmanager
    def running(self, caller: Caller | None) -> Iterator[None]:
        """A slot for one warehouse query of the caller, or TooManyRequests."""
        subject = caller.subject if caller is not None else None
        if not self.max_concurrent or subject is None:
            yield
            return
        with self._lock:
            count = self._running.get(subject, 0)
            if count >= self.max_concurrent:
                raise TooManyRequests(
                    f"At most {self.max_concurrent} queries may run at once for {subject}; "
                    "retry when one has finished.",
                    retry_after_seconds=1,
                )
            self._running[subject] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[subject] - 1
                if left:
                    self._running[subject] = left
                else:
                    del self._running[subject]
