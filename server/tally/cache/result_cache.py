"""L1: an in-process result cache bounded by bytes (Arrow nbytes), with a TTL per entry. Time
is read from an injectable clock (time.monotonic by default), so tests move it by hand."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from cachetools import TLRUCache

Clock = Callable[[], float]


@dataclass(frozen=True)
class CacheEntry:
    table: pa.Table
    sql: str
    stored_at: float  # time.monotonic()
    ttl_seconds: float
    compile_ms: float
    execute_ms: float
    nbytes: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        """Everything the entry keeps: its Arrow data and the encoded forms memoised with it."""
        return self.nbytes + int(self.extra.get("memo_bytes", 0))

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)

    def remaining(self, now: float) -> float:
        return max(0.0, self.ttl_seconds - self.age(now))


@dataclass
class CacheStats:
    """Every query that reaches the cache is counted exactly once, by the service, as one of:
    a hit (served from a stored result), a miss (it ran the query) or shared (it waited on an
    identical query already in flight and took its result)."""

    hits: int = 0
    misses: int = 0
    shared: int = 0
    evictions: int = 0
    expirations: int = 0
    rejections: int = 0  # results larger than the whole cache
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, outcome: str) -> None:
        """Count one query as "hit", "miss" or "shared"."""
        if outcome not in ("hit", "miss", "shared"):
            raise ValueError(f"unknown cache outcome {outcome!r}")
        attr = {"hit": "hits", "miss": "misses", "shared": "shared"}[outcome]
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)


class _Cache(TLRUCache):
    """TLRUCache that reports what it throws away, to tell evictions (memory) from expirations."""

    def __init__(self, maxsize: int, on_evict, clock: Clock, max_ttl: float = math.inf) -> None:
        super().__init__(
            maxsize=maxsize,
            # Expiry from when the entry was stored: re-inserting it (to count a memo) must
            # not extend its life. `max_ttl` caps it (a short-lived tier in front of another).
            ttu=lambda _k, v, _now: v.stored_at + min(v.ttl_seconds, max_ttl),
            timer=clock,
            getsizeof=lambda v: v.size,
        )
        self._on_evict = on_evict

    def popitem(self):
        key, value = super().popitem()
        self._on_evict(key, value)
        return key, value


class ResultCache:
    def __init__(
        self, max_bytes: int, clock: Clock = time.monotonic, max_ttl: float = math.inf
    ) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._cache = _Cache(max_bytes, self._evicted, clock, max_ttl)

    def _evicted(self, _key: str, value: CacheEntry) -> None:
        if value.remaining(self.clock()) > 0:
            self.stats.evictions += 1
        else:
            self.stats.expirations += 1

    def get(self, key: str) -> CacheEntry | None:
        """The live entry for `key`, or None. Counts nothing: a caller may look more than once
        for one query, so the service counts each query's outcome itself (stats.record)."""
        with self._lock:
            return self._cache.get(key)

    def put(self, key: str, entry: CacheEntry) -> bool:
        if entry.ttl_seconds <= 0:
            return False
        with self._lock:
            if entry.nbytes > self.max_bytes:
                self.stats.rejections += 1
                return False
            self._cache[key] = entry
            return True

    def resize(self, key: str, entry: CacheEntry) -> None:
        """Count what an encoder memoised with a stored entry (its JSON text): the byte bound
        covers everything entries keep, so memory stays within it."""
        with self._lock:
            if self._cache.get(key) is not entry:
                return
            try:
                self._cache[key] = entry  # recomputes its size; may evict older entries
            except ValueError:  # the entry with its memo no longer fits at all
                entry.extra.pop("json_rows", None)
                entry.extra["memo_bytes"] = 0
                self._cache[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    @property
    def current_bytes(self) -> int:
        with self._lock:
            self._cache.expire()
            return int(self._cache.currsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    # What a cache shared between processes adds (tally.cache.tiered); for this one, nothing.

    def load_or_run(
        self, key: str, run: Callable[[], CacheEntry]
    ) -> tuple[CacheEntry, str]:
        """After a miss here: the entry another process stored or is computing, else run()
        (which stores it). Returns (entry, "hit" | "shared" | "miss"). One process: run()."""
        return run(), "miss"

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "available": True}
