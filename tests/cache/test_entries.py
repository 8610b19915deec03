"""The result cache by itself (tally/cache/result_cache.py), on the test clock: TTLs, ages, the
byte bound and what it counts."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tally.cache.result_cache import CacheEntry, ResultCache


def entry(clock, ttl: float = 10.0, nbytes: int = 100) -> CacheEntry:
    return CacheEntry(table=pa.table({"x": [1]}), sql="select 1", stored_at=clock(),
                      ttl_seconds=ttl, compile_ms=1.0, execute_ms=2.0, nbytes=nbytes)


def test_an_entry_lives_for_its_ttl(clock):
    cache = ResultCache(1_000, clock)
    stored = entry(clock, ttl=10)
    assert cache.put("k", stored)
    clock.advance(9.5)
    assert cache.get("k") is stored
    assert stored.age(clock()) == pytest.approx(9.5)
    assert stored.remaining(clock()) == pytest.approx(0.5)
    clock.advance(1)
    assert cache.get("k") is None
    assert stored.remaining(clock()) == 0  # never negative
    assert len(cache) == 0 and cache.current_bytes == 0


def test_entries_have_their_own_ttls(clock):
    cache = ResultCache(1_000, clock)
    cache.put("short", entry(clock, ttl=1))
    cache.put("long", entry(clock, ttl=3600))
    clock.advance(2)
    assert cache.get("short") is None and cache.get("long") is not None


def test_a_ttl_of_zero_is_not_stored(clock):
    cache = ResultCache(1_000, clock)
    assert not cache.put("k", entry(clock, ttl=0))
    assert cache.get("k") is None and cache.stats.rejections == 0


def test_bytes_are_bounded_least_recently_used_first(clock):
    cache = ResultCache(250, clock)
    for name in ("a", "b"):
        cache.put(name, entry(clock))
    assert cache.current_bytes == 200
    cache.get("a")  # b is now the least recently used
    cache.put("c", entry(clock))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.current_bytes == 200 and cache.stats.evictions == 1


def test_a_result_larger_than_the_cache_is_rejected(clock):
    cache = ResultCache(250, clock)
    cache.put("a", entry(clock))
    assert not cache.put("huge", entry(clock, nbytes=251))
    assert cache.stats.rejections == 1 and cache.get("a") is not None


def test_only_the_service_counts_outcomes(clock):
    cache = ResultCache(1_000, clock)
    cache.put("k", entry(clock))
    cache.get("k")
    cache.get("nope")
    assert (cache.stats.hits, cache.stats.misses, cache.stats.shared) == (0, 0, 0)
    for outcome in ("hit", "hit", "miss", "shared"):
        cache.stats.record(outcome)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.shared) == (2, 1, 1)
    with pytest.raises(ValueError, match="unknown cache outcome"):
        cache.stats.record("evicted")


def test_clear_forgets_everything(clock):
    cache = ResultCache(1_000, clock)
    cache.put("a", entry(clock))
    cache.put("b", entry(clock))
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None and cache.current_bytes == 0
