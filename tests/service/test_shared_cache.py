"""Services sharing one Redis (the machine's, a key prefix of their own), in one process as
two replicas would be: a result stored by one is a hit for the other, a rebuild announced by
one (`tally build` calls announce_new_data) or an invalidation is honoured by the other, and
Prometheus tells local hits, shared hits and misses apart."""

from __future__ import annotations

import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tests.support.hand_sql import assert_rows_match, expected_rows, group_columns
from tests.support.redis import clean_prefix, machine_redis_url

REQUEST = QueryRequest.create(metrics=["order_count"], group_by=["metric_time__year"])


@pytest.fixture
def replicas(services):
    url = machine_redis_url()
    with clean_prefix(url) as prefix:
        yield [services.service(cache_url=url, cache_prefix=prefix) for _ in range(2)]


def sample(service, name: str) -> float:
    return service.telemetry.registry.get_sample_value(name) or 0.0


def test_results_rebuilds_and_invalidations_are_shared(replicas, raw):
    a, b = replicas
    first = a.query(REQUEST, ANONYMOUS)
    assert not first.cache.hit
    expected = expected_rows(raw, f"""
        select {group_columns(['metric_time__year'], 'order_date')}, count(*) as order_count
        from enriched_orders group by all""")
    assert_rows_match(first.table.to_pylist(), expected, ["metric_time__year"], "order_count")
    assert b.query(REQUEST, ANONYMOUS).cache.hit and b.counters.executions == 0  # from Redis
    assert b.query(REQUEST, ANONYMOUS).cache.hit  # from b's own memory now
    assert sample(b, "tally_cache_shared_hits_total") == 1
    assert sample(b, "tally_cache_local_hits_total") == 1
    assert sample(a, "tally_cache_misses_total") == 1

    assert a.announce_new_data()  # what `tally build` does after its swap
    assert not b.query(REQUEST, ANONYMOUS).cache.hit and b.counters.executions == 1
    assert a.query(REQUEST, ANONYMOUS).cache.hit and a.counters.executions == 1

    b.invalidate_cache()
    assert not a.query(REQUEST, ANONYMOUS).cache.hit and a.counters.executions == 2
    assert a.cache_stats()["backend"] == {"backend": "redis", "available": True,
                                          "prefix": a.settings.cache_prefix}
