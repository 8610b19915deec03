"""L1: an in-process result cache bounded by bytes (Arrow nbytes), with a TTL per entry."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from cachetools import TLRUCache


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

    def age(self, now: float | None = None) -> float:
        return max(0.0, (now if now is not None else time.monotonic()) - self.stored_at)

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.ttl_seconds - self.age(now))


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    rejections: int = 0  # results larger than the whole cache


class _Cache(TLRUCache):
    """TLRUCache that reports what it throws away, to tell evictions (memory) from expirations."""

    def __init__(self, maxsize: int, on_evict) -> None:
        super().__init__(
            maxsize=maxsize,
            ttu=lambda _k, v, now: now + v.ttl_seconds,
            timer=time.monotonic,
            getsizeof=lambda v: v.nbytes,
        )
        self._on_evict = on_evict

    def popitem(self):
        key, value = super().popitem()
        self._on_evict(key, value)
        return key, value


class ResultCache:
    def __init__(self, max_bytes: int, default_ttl_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.default_ttl_seconds = default_ttl_seconds
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._cache = _Cache(max_bytes, self._evicted)

    def _evicted(self, _key: str, value: CacheEntry) -> None:
        if value.remaining() > 0:
            self.stats.evictions += 1
        else:
            self.stats.expirations += 1

    def get(self, key: str) -> CacheEntry | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
            return entry

    def peek(self, key: str) -> CacheEntry | None:
        """Like get, without counting a hit or a miss."""
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
