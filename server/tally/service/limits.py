"""Per-caller limits: a request rate (a token bucket per key or token subject) and a number of
warehouse queries running at once. Both answer 429 `too_many_requests` with the seconds to wait
(Retry-After over HTTP). Anonymous callers of an open (loopback) server are not limited.

A caller's queries may never take the whole query pool: a quarter of it (at least one thread)
is kept for the others, whatever `max_concurrent` says. And a request's filters are bounded in
values and bytes before anything parses them (`check_filter_size`): parsing is linear, but a
100,000-value `in` list still cost seconds of a shared thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cachetools import LRUCache

from tally.core.caller import Caller
from tally.core.filters import StructuredFilter
from tally.core.request import QueryRequest
from tally.errors import CallerError, InvalidFilter


class TooManyRequests(CallerError):
    code = "too_many_requests"
    status = 429


class Limits:
    """`fanout`: the callers of one group (the embed tokens of one minting key, each with a
    subject of its own) together get at most this many times each per-caller limit, so that
    minting subjects cannot multiply what one key may take."""

    def __init__(
        self,
        rate_per_minute: int,
        max_concurrent: int,
        clock: Callable[[], float],
        pool_size: int | None = None,
        fanout: int = 4,
    ) -> None:
        self.rate = rate_per_minute
        self.burst = max(1, rate_per_minute // 6) if rate_per_minute else 0  # ten seconds' worth
        self.share: int | None = None
        if pool_size is not None:
            self.share = max(1, pool_size - max(1, pool_size // 4))  # the rest is for others
            max_concurrent = min(max_concurrent, self.share) if max_concurrent else self.share
        self.max_concurrent = max_concurrent
        self.fanout = max(1, fanout)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: LRUCache = LRUCache(maxsize=100_000)  # subject -> (tokens, at)
        self._running: dict[str, int] = {}

    def admit(self, caller: Caller) -> None:
        """Take one request from the caller's bucket (and its group's), or raise
        TooManyRequests."""
        if not self.rate or caller.subject is None:
            return
        with self._lock:
            self._take(caller.subject, self.rate, self.burst)
            if caller.group is not None:
                self._take(f"group:{caller.group}", self.rate * self.fanout,
                           self.burst * self.fanout)  # fmt: skip

    def _take(self, who: str, rate: int, burst: int) -> None:
        per_second = rate / 60.0
        now = self.clock()
        tokens, at = self._buckets.get(who, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * per_second)
        if tokens < 1.0:
            wait = (1.0 - tokens) / per_second
            self._buckets[who] = (tokens, now)
            raise TooManyRequests(
                f"Rate limit: at most {rate} requests a minute for {who}; "
                f"retry in {wait:.1f} s.",
                retry_after_seconds=round(wait, 3),
            )
        self._buckets[who] = (tokens - 1.0, now)

    @contextmanager
    def running(self, caller: Caller | None) -> Iterator[None]:
        """A slot for one warehouse query of the caller, or TooManyRequests."""
        release = self.acquire(caller)
        try:
            yield
        finally:
            release()

    def acquire(self, caller: Caller | None) -> Callable[[], None]:
        """A slot held until the returned function is called (any number of times: it
        releases once), or TooManyRequests. For work that outlives a block (a streamed
        export)."""
        subject = caller.subject if caller is not None else None
        if not self.max_concurrent or subject is None:
            return lambda: None
        holders = [(subject, self.max_concurrent)]
        if caller is not None and caller.group is not None:
            group_cap = self.max_concurrent * self.fanout
            if self.share is not None:
                group_cap = min(group_cap, self.share)  # a group never holds the whole pool
            holders.append((f"group:{caller.group}", group_cap))
        with self._lock:
            for who, cap in holders:
                if self._running.get(who, 0) >= cap:
                    raise TooManyRequests(
                        f"At most {cap} queries may run at once for {who}; retry when one "
                        "has finished.",
                        retry_after_seconds=1,
                    )
            for who, _ in holders:
                self._running[who] = self._running.get(who, 0) + 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                for who, _ in holders:
                    left = self._running[who] - 1
                    if left:
                        self._running[who] = left
                    else:
                        del self._running[who]

        return release


def filter_bytes(request: QueryRequest) -> int:
    """The size of a request's filters: their text, or a structured filter's values."""
    total = 0
    for clause in request.where:
        if isinstance(clause, StructuredFilter):
            total += len(clause.dimension) + sum(len(str(v)) + 3 for v in clause.values)
        else:
            total += len(clause)
    return total


def check_filter_size(request: QueryRequest, max_values: int, max_bytes: int) -> None:
    """InvalidFilter (400) for a filter with more values, or filters of more bytes, than the
    server takes; checked before any filter is parsed."""
    for clause in request.where:
        if isinstance(clause, StructuredFilter) and len(clause.values) > max_values:
            raise InvalidFilter(
                f"The filter on {clause.dimension} has {len(clause.values):,} values; at most "
                f"{max_values:,} are allowed (TALLY_MAX_FILTER_VALUES). Filter on a coarser "
                "dimension, or split the question."
            )
    size = filter_bytes(request)
    if size > max_bytes:
        raise InvalidFilter(
            f"The filters take {size:,} bytes; at most {max_bytes:,} are allowed "
            "(TALLY_MAX_FILTER_BYTES)."
        )
