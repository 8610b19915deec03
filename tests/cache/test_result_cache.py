"""The result cache through the real service and warehouse: hits, normalized hits, TTLs,
bounded bytes, isolation by access context, invalidation on rebuild and on demand."""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest

from tally.core.caller import ANONYMOUS, Caller
from tally.core.request import QueryRequest
from tally.warehouse.duckdb import DuckDBWarehouse


@pytest.fixture
def make_service(services):
    """make_service(warehouse=None, *, clock=None, **settings_overrides)."""
    return services.service


def q(**kw) -> QueryRequest:
    return QueryRequest.create(**kw)


def test_repeat_is_a_hit_with_age(make_service, clock):
    svc = make_service(clock=clock)
    first = svc.query(q(metrics="revenue", group_by="metric_time__year"), ANONYMOUS)
    clock.advance(0.5)  # (a binary fraction: the age is exact)
    second = svc.query(q(metrics="revenue", group_by="metric_time__year"), ANONYMOUS)
    assert (first.cache.hit, second.cache.hit) == (False, True)
    assert second.cache.age_seconds >= 0.5
    assert second.cache.age_seconds == 0.5  # the clock moved by that, no more
    assert second.cache.ttl_seconds == 300 - 0.5  # what is left of the TTL
    assert second.table.equals(first.table)
    assert svc.counters.executions == 1


def test_normalized_spellings_share_an_entry(make_service):
    svc = make_service()
    a = svc.query(q(metrics=["revenue", "order_count"],
                    group_by=["metric_time__year", "customer__country"],
                    where=["{{ Dimension('customer__country') }} in ('US','DE')"]), ANONYMOUS)
    b = svc.query(q(metrics=["Order_Count", " revenue"],
                    group_by=["customer__country", "METRIC_TIME__YEAR"],
                    where=["{{Dimension('customer__country')}}   IN ( 'US' , 'DE' )"]), ANONYMOUS)
    assert b.cache.hit and svc.counters.executions == 1
    # Each caller gets its own column and row order.
    assert a.table.column_names == ["metric_time__year", "customer__country", "revenue",
                                    "order_count"]
    assert b.table.column_names == ["customer__country", "metric_time__year", "order_count",
                                    "revenue"]
    assert b.table.sort_by([("customer__country", "ascending"),
                            ("metric_time__year", "ascending")]).equals(b.table)
    assert sorted(a.table.to_pylist(), key=str) == sorted(
        ({k: r[k] for k in a.table.column_names} for r in b.table.to_pylist()), key=str)
    c = svc.query(q(metrics="revenue", group_by="customer__country", order_by="-revenue"),
                  ANONYMOUS)
    d = svc.query(q(metrics="revenue", group_by="customer__country"), ANONYMOUS)
    assert d.cache.hit
    values = c.table.column("revenue").to_pylist()
    assert values == sorted(values, reverse=True)
    countries = d.table.column("customer__country").to_pylist()
    assert countries == sorted(countries)


def test_different_questions_do_not_share(make_service):
    svc = make_service()
    svc.query(q(metrics="revenue", group_by="metric_time__year"), ANONYMOUS)
    for other in (q(metrics="revenue", group_by="metric_time__month"),
                  q(metrics="revenue", group_by="metric_time__year", limit=2),
                  q(metrics="revenue", group_by="metric_time__year", start="2024-01-01"),
                  q(metrics="revenue", group_by="metric_time__year",
                    where="{{ Dimension('customer__country') }} = 'US'")):
        assert not svc.query(other, ANONYMOUS).cache.hit


def test_limit_with_a_different_order_is_a_different_question(make_service):
    svc = make_service()
    top = svc.query(q(metrics="revenue", group_by="customer__country", order_by="-revenue",
                      limit=2), ANONYMOUS)
    bottom = svc.query(q(metrics="revenue", group_by="customer__country", order_by="revenue",
                         limit=2), ANONYMOUS)
    assert not bottom.cache.hit
    assert top.table.column("customer__country").to_pylist() != \
        bottom.table.column("customer__country").to_pylist()


def test_ttl_expires_and_saved_query_ttl_overrides(make_service, clock):
    svc = make_service(clock=clock, cache_ttl_seconds=0.3)
    svc.query(q(metrics="revenue"), ANONYMOUS)
    clock.advance(0.29)
    assert svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit  # still within its TTL
    clock.advance(0.06)
    assert not svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit
    saved = svc.query(q(saved_query="executive_kpis_by_month"), ANONYMOUS)
    assert saved.cache.ttl_seconds == 3600  # meta.cache_ttl_seconds of the saved query
    clock.advance(0.35)
    assert svc.query(q(saved_query="executive_kpis_by_month"), ANONYMOUS).cache.hit
    clock.advance(3600)
    assert not svc.query(q(saved_query="executive_kpis_by_month"), ANONYMOUS).cache.hit
    assert svc.counters.executions == 4


def test_memory_is_bounded_by_bytes(make_service):
    probe = make_service().query(q(metrics="revenue", group_by="metric_time__day"), ANONYMOUS)
    budget = int(probe.table.nbytes * 1.5)
    svc = make_service(cache_max_bytes=budget)
    for grain in ("day", "week", "month", "quarter", "year"):
        for metric in ("revenue", "order_count"):
            svc.query(q(metrics=metric, group_by=f"metric_time__{grain}"), ANONYMOUS)
            assert svc.cache.current_bytes <= budget
    assert svc.cache.stats.evictions > 0
    tiny = make_service(cache_max_bytes=64)
    tiny.query(q(metrics="revenue", group_by="metric_time__day"), ANONYMOUS)
    assert tiny.cache.stats.rejections == 1 and len(tiny.cache) == 0
    assert not tiny.query(q(metrics="revenue", group_by="metric_time__day"), ANONYMOUS).cache.hit


def test_access_contexts_never_share_entries(make_service):
    svc = make_service()
    acme = Caller.of("python", access={"tenant": "acme"})
    globex = Caller.of("python", access={"tenant": "globex"})
    a = svc.query(q(metrics="revenue"), acme)
    b = svc.query(q(metrics="revenue"), globex)
    assert not a.cache.hit and not b.cache.hit and a.cache.key != b.cache.key
    assert svc.query(q(metrics="revenue"), acme).cache.hit
    assert not svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit
    assert svc.counters.executions == 3


def test_explicit_invalidation(make_service):
    svc = make_service()
    svc.query(q(metrics="revenue"), ANONYMOUS)
    svc.invalidate_cache()
    assert len(svc.cache) == 0
    assert not svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit
    assert svc.counters.executions == 2


def test_rebuilt_warehouse_is_a_miss_with_fresh_numbers(make_service, warehouse, tmp_path):
    served = tmp_path / "served" / "warehouse.duckdb"
    served.parent.mkdir()
    shutil.copy(warehouse.duckdb_path, served)
    svc = make_service(DuckDBWarehouse(served))
    before = svc.query(q(metrics="revenue"), ANONYMOUS)
    assert svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit
    # A rebuild as `make warehouse` does it: a new file written elsewhere, renamed over the
    # served one while the service holds its connection.
    build = tmp_path / "build" / "warehouse.duckdb"
    build.parent.mkdir()
    shutil.copy(warehouse.duckdb_path, build)
    con = duckdb.connect(str(build))
    con.execute("update analytics_marts.fct_orders set net_amount = net_amount + 1000 "
                "where is_completed and order_id = (select min(order_id) "
                "from analytics_marts.fct_orders where is_completed)")
    con.close()
    os.replace(build, served)
    after = svc.query(q(metrics="revenue"), ANONYMOUS)
    assert not after.cache.hit
    assert after.table.column("revenue")[0].as_py() == \
        before.table.column("revenue")[0].as_py() + 1000
    assert svc.query(q(metrics="revenue"), ANONYMOUS).cache.hit


def test_new_manifest_invalidates(make_service, warehouse, tmp_path):
    import json

    manifest = tmp_path / "semantic_manifest.json"
    shutil.copy(warehouse.manifest_path, manifest)
    svc = make_service(manifest_path=manifest)  # another manifest: an engine of its own
    before = svc.query(q(metrics="order_count"), ANONYMOUS)
    assert svc.query(q(metrics="order_count"), ANONYMOUS).cache.hit
    data = json.loads(manifest.read_text())
    model = next(m for m in data["semantic_models"] if m["name"] == "orders")
    measure = next(m for m in model["measures"] if m["name"] == "order_count")
    measure["expr"] = "case when order_status <> 'cancelled' then order_id end"
    manifest.write_text(json.dumps(data))
    changed = svc.query(q(metrics="order_count"), ANONYMOUS)
    assert not changed.cache.hit and changed.manifest_version != before.manifest_version
    # The new definition's numbers, not the cached ones: cancelled orders no longer count.
    cancelled = svc.query(q(metrics="order_count",
                            where="{{ Dimension('order__order_status') }} = 'cancelled'"),
                          ANONYMOUS)
    assert cancelled.table.column("order_count")[0].as_py() == 0
    assert changed.table.column("order_count")[0].as_py() < \
        before.table.column("order_count")[0].as_py()


def test_each_query_counts_one_cache_outcome(make_service):
    from concurrent.futures import ThreadPoolExecutor

    svc = make_service()
    svc.query(q(metrics="revenue", group_by="customer__country"), ANONYMOUS)
    svc.query(q(metrics="revenue", group_by="customer__country"), ANONYMOUS)
    svc.query(q(metrics="revenue", group_by="customer__country", order_by="-revenue"), ANONYMOUS)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: svc.query(q(metrics="order_count"), ANONYMOUS), range(8)))
    outcomes = ["hit" if r.cache.hit else "shared" if r.cache.shared else "miss"
                for r in results]
    stats = svc.cache.stats
    assert stats.hits + stats.misses + stats.shared == 11
    # The first three: a miss, a hit, a hit re-sorted for another order; then the eight.
    assert stats.misses == 1 + outcomes.count("miss")
    assert stats.hits == 2 + outcomes.count("hit")
    assert stats.shared == outcomes.count("shared")
    assert outcomes.count("miss") == 1 and svc.counters.executions == 2
