"""The tiered cache against the machine's real Redis (a key prefix of its own per test): entries
round-trip exactly through Arrow IPC, two replicas' caches share results and the data
generation, a lease held by a replica that died blocks the others only until it expires, and
an unreachable Redis means uncached service, never an error."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time

import pyarrow as pa
import pytest

from tally.cache import codec
from tally.cache.data_version import DataVersion
from tally.cache.redis_store import RedisStore
from tally.cache.result_cache import CacheEntry
from tally.cache.tiered import TieredCache
from tests.support.processes import free_port
from tests.support.redis import clean_prefix, machine_redis_url


@pytest.fixture
def url():
    return machine_redis_url()


@pytest.fixture
def prefix(url):
    with clean_prefix(url) as p:
        yield p


def entry(value: int = 1, ttl: float = 60.0) -> CacheEntry:
    table = pa.table({
        "metric_time__month": pa.array([dt.date(2025, 1, 1), None], pa.date32()),
        "revenue": pa.array([decimal.Decimal(value) / 100, None], pa.decimal128(38, 2)),
        "customer__country": ["US", "FR"],
    })
    return CacheEntry(table=table, sql=f"select {value}", stored_at=time.monotonic(),
                      ttl_seconds=ttl, compile_ms=1.5, execute_ms=2.5, nbytes=table.nbytes,
                      extra={"order": ("metric_time__month",)})


def storing(cache: TieredCache, key: str, e: CacheEntry, runs: list):
    """A query run as the service runs one: it stores its result, and is counted."""
    def run() -> CacheEntry:
        runs.append(key)
        cache.put(key, e)
        return e
    return run


def tiered(url: str, prefix: str, **kw) -> TieredCache:
    return TieredCache(RedisStore(url, prefix, retry_seconds=kw.pop("retry", 1.0)),
                       1 << 20, **kw)


def test_codec_round_trip_keeps_types_values_and_age():
    e = entry(12345)
    time.sleep(0.05)
    back = codec.decode(codec.encode(e, time.monotonic), time.monotonic)
    assert back.table.equals(e.table) and back.table.schema == e.table.schema
    assert (back.sql, back.ttl_seconds, back.compile_ms, back.execute_ms) == (
        e.sql, e.ttl_seconds, e.compile_ms, e.execute_ms)
    assert back.extra["order"] == ("metric_time__month",)
    assert 0.04 < back.age(time.monotonic()) < 5


def test_two_replicas_share_results_through_redis(url, prefix):
    a, b = tiered(url, prefix), tiered(url, prefix)
    runs = []
    _, outcome = a.load_or_run("k", storing(a, "k", entry(7), runs))
    assert outcome == "miss" and len(runs) == 1
    got, outcome = b.load_or_run("k", lambda: pytest.fail("b must not run it"))
    assert outcome == "hit" and got.table.equals(entry(7).table)
    assert b.get("k") is not None  # copied into b's own memory
    assert b.shared_hits == 1 and a.shared_hits == 0


def test_a_waiter_takes_the_holders_result(url, prefix):
    a, b = tiered(url, prefix), tiered(url, prefix)
    started = threading.Event()

    def slow_run():
        started.set()
        time.sleep(0.3)
        e = entry(3)
        a.put("k", e)
        return e

    holder = threading.Thread(target=lambda: a.load_or_run("k", slow_run))
    holder.start()
    started.wait(5)
    got, outcome = b.load_or_run("k", lambda: pytest.fail("b must wait, not run"))
    holder.join()
    assert outcome == "shared" and got.sql == "select 3" and b.shared_waits == 1


def test_a_dead_holder_blocks_others_only_until_its_lease_ends(url, prefix):
    dead = RedisStore(url, prefix)
    assert dead.acquire("k", "token-of-a-dead-replica", lease_seconds=0.5)
    b = tiered(url, prefix)
    t0 = time.monotonic()
    got, outcome = b.load_or_run("k", lambda: entry(9))
    waited = time.monotonic() - t0
    assert outcome == "miss" and got.sql == "select 9"
    assert 0.4 < waited < 5


def test_the_shared_generation_reaches_every_replica(url, prefix):
    a = DataVersion(lambda: "w", _nowhere(), RedisStore(url, prefix))
    b = DataVersion(lambda: "w", _nowhere(), RedisStore(url, prefix))
    assert a.current() == b.current()
    before = b.current()
    a.bump()
    assert b.current() == a.current() != before


def test_unreachable_redis_serves_uncached_and_says_so():
    cache = tiered(f"redis://127.0.0.1:{free_port()}/0", "p", retry=60)
    version = DataVersion(lambda: "w", _nowhere(), cache.store)
    assert version.current().endswith("unshared")
    runs = []
    for _ in range(2):
        _, outcome = cache.load_or_run("k", storing(cache, "k", entry(), runs))
        assert outcome == "miss"
    assert len(runs) == 2 and cache.get("k") is None
    health = cache.health()
    assert health["available"] is False and "uncached" in health["warning"]
    # In its back-off, a dead Redis costs no time per call.
    t0 = time.monotonic()
    for _ in range(100):
        version.current()
    assert time.monotonic() - t0 < 0.5


def _nowhere():
    from pathlib import Path
    return Path("/nonexistent/run_results.json")
