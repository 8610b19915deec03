"""The result cache of a replica among several: a small, short-lived in-process tier (L1) in
front of Redis (L2, tally.cache.redis_store), with single flight across replicas.

* `get` (on the event loop) reads L1 only: no network on the loop for a hit.
* `load_or_run` (in a query thread, after an L1 miss and the process's own single flight)
  reads L2; on a miss it takes the query's lease in Redis and runs it, or, when another
  replica holds the lease, waits for that replica's result. A holder that dies stops
  blocking the others when its lease expires; a waiter never waits beyond `wait_seconds`.
* `put` writes both tiers (L2 with the result's TTL as Redis' expiry).

Keys carry the shared data generation (tally.cache.data_version), so an invalidation on any
replica makes every replica's older entries unreachable at once. While Redis is unavailable
the cache is bypassed entirely, L1 included: an invalidation elsewhere could not reach this
replica, so anything it kept could be stale. Queries run uncached until Redis answers again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tally.cache import codec
from tally.cache.redis_store import RedisStore, Unavailable
from tally.cache.result_cache import CacheEntry, Clock, ResultCache
from tally.settings import Settings

log = logging.getLogger("tally.cache")


class TieredCache(ResultCache):
    def __init__(
        self,
        store: RedisStore,
        max_bytes: int,
        clock: Clock = time.monotonic,
        *,
        local_ttl_seconds: float = 10.0,
        lease_seconds: float = 30.0,
        wait_seconds: float = 60.0,
    ) -> None:
        super().__init__(max_bytes, clock, max_ttl=local_ttl_seconds)
        self.store = store
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.shared_hits = 0  # results read from Redis (stored by any replica)
        self.shared_waits = 0  # results another replica was computing, waited for
        self._counts = threading.Lock()

    # Tiers --------------------------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        if not self.store.available:
            return None
        return super().get(key)

    def put(self, key: str, entry: CacheEntry) -> bool:
        if entry.ttl_seconds <= 0 or not self.store.available:
            return False
        try:
            self.store.set(key, codec.encode(entry, self.clock), entry.ttl_seconds)
        except Unavailable:
            return False
        return super().put(key, entry)

    def fetch(self, key: str) -> CacheEntry | None:
        """The entry in Redis (copied into L1), or None. Raises Unavailable."""
        blob = self.store.get(key)
        if blob is None:
            return None
        entry = codec.decode(blob, self.clock)
        if entry.remaining(self.clock()) <= 0:
            return None
        entry.extra["on_grow"] = functools.partial(self.resize, key, entry)
        super().put(key, entry)
        return entry

    # Single flight across replicas --------------------------------------------------------

    def load_or_run(
        self, key: str, run: Callable[[], CacheEntry]
    ) -> tuple[CacheEntry, str]:
        try:
            return self._load_or_run(key, run)
        except Unavailable:
            # Redis went away mid-way: answer anyway (put() stores nothing while it is down).
            return run(), "miss"

    def _load_or_run(self, key: str, run: Callable[[], CacheEntry]) -> tuple[CacheEntry, str]:
        if not self.store.available:
            return run(), "miss"
        entry = self.fetch(key)
        if entry is not None:
            self._count("shared_hits")
            return entry, "hit"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        while True:
            if self.store.acquire(key, token, self.lease_seconds):
                try:
                    # Stored between our look-up and the lease (its holder just released it).
                    entry = self.fetch(key)
                    if entry is not None:
                        self._count("shared_hits")
                        return entry, "hit"
                    return run(), "miss"
                finally:
                    with contextlib.suppress(Unavailable):  # else the lease expires by itself
                        self.store.release(key, token)
            entry = self._wait(key, deadline)
            if entry is not None:
                self._count("shared_waits")
                return entry, "shared"
            if time.monotonic() >= deadline:
                log.warning("waited %.0f s for another replica's query; running it here",
                            self.wait_seconds)  # fmt: skip
                return run(), "miss"
            # The lease is gone without a result (its holder failed, or died and the lease
            # expired): take it ourselves.

    def _wait(self, key: str, deadline: float) -> CacheEntry | None:
        """Poll for another replica's result while its lease lasts."""
        pause = 0.005
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)
            entry = self.fetch(key)
            if entry is not None:
                return entry
            if not self.store.leased(key):
                return self.fetch(key)  # it may have stored and released between the calls
        return None

    def _count(self, attr: str) -> None:
        with self._counts:
            setattr(self, attr, getattr(self, attr) + 1)

    # Health and metrics -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.store.health()

    def collect(self):
        """Prometheus metrics of the shared tier (registered by the service's telemetry)."""
        local = max(self.stats.hits - self.shared_hits, 0)
        for name, value, doc in (
            ("tally_cache_local_hits", local, "Hits served from this replica's memory."),
            ("tally_cache_shared_hits", self.shared_hits,
             "Hits served from the shared cache (Redis), stored by any replica."),
            ("tally_cache_shared_waits", self.shared_waits,
             "Queries another replica was running, whose result this one waited for."),
            ("tally_cache_shared_failures", self.store.failures,
             "Calls to the shared cache that failed (Redis unavailable)."),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "tally_cache_shared_up",
            "1 while the shared cache (Redis) answers, 0 while tally serves uncached.",
            value=1 if self.store.available else 0,
        )


def build_cache(settings: Settings, clock: Clock = time.monotonic) -> ResultCache:
    """The cache the settings ask for: in-process only, or tiered over TALLY_CACHE_URL."""
    if not settings.cache_url:
        return ResultCache(settings.cache_max_bytes, clock)
    store = RedisStore(
        settings.cache_url,
        settings.cache_prefix,
        retry_seconds=settings.cache_retry_seconds,
    )
    return TieredCache(
        store,
        settings.cache_local_max_bytes,
        clock,
        local_ttl_seconds=settings.cache_local_ttl_seconds,
        lease_seconds=settings.cache_lease_seconds,
        wait_seconds=settings.query_timeout_seconds,
    )
