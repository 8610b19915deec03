"""Three real `tally serve` processes on loopback sharing one Redis (a redis-server this module
starts on a port of its own, so it can stop it): a herd of identical cold queries spread over
the replicas runs the warehouse exactly once; an invalidation on one replica is honoured by the
others; Redis stopped mid-test degrades every replica to uncached service (no 5xx, correct
numbers, a warning in health) and they share again once it is back. The numbers served are
checked against hand-written SQL over raw.* each time."""

from __future__ import annotations

import io
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pyarrow as pa
import pytest

from tests.support.hand_sql import assert_rows_match, expected_rows, group_columns
from tests.support.paths import PROJECT_DIR
from tests.support.redis import RedisProcess
from tests.support.servers import prometheus_value, start_servers

pytestmark = pytest.mark.slow
ARROW = {"accept": "application/vnd.apache.arrow.stream"}
COMPLETED = "order_status = 'completed'"
_queries = itertools.count()


@pytest.fixture(scope="module")
def redis_process():
    redis = RedisProcess()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture(scope="module")
def replicas(warehouse, redis_process, tmp_path_factory):
    env = {
        "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
        "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
        "TALLY_PROJECT_DIR": str(PROJECT_DIR),
        "TALLY_CACHE_URL": redis_process.url,
        "TALLY_CACHE_PREFIX": "replicas",
        "TALLY_CACHE_RETRY_SECONDS": "0.2",
    }
    servers = start_servers(env, 3, tmp_path_factory.mktemp("replicas"))
    clients = [httpx.Client(base_url=s.base_url, timeout=60) for s in servers]
    yield clients
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def fresh_question(grain: str = "month") -> dict:
    """A question no earlier test asked, so it is cold everywhere: revenue by `grain`, with a
    limit of its own far above the number of periods (it keeps every row)."""
    return {"metrics": ["revenue"], "group_by": [f"metric_time__{grain}"],
            "limit": 10_000 + next(_queries)}


def hand_revenue(raw, grain: str) -> list[dict]:
    return expected_rows(raw, f"""
        select {group_columns([f'metric_time__{grain}'], 'order_date')},
               sum(net_amount) filter (where {COMPLETED}) as revenue
        from enriched_orders group by all""")


def ask(client: httpx.Client, body: dict) -> tuple[str, list[dict]]:
    r = client.post("/api/v1/query", json=body, headers=ARROW)
    assert r.status_code == 200, r.text
    table = pa.ipc.open_stream(io.BytesIO(r.content)).read_all()
    return r.headers["x-tally-cache"], table.to_pylist()


def counter(client: httpx.Client, name: str) -> float:
    return prometheus_value(client.get("/metrics").text, name)


def executions(clients) -> float:
    return sum(counter(c, "tally_warehouse_executions") for c in clients)


def check(rows, raw, grain="month"):
    key = f"metric_time__{grain}"
    assert_rows_match(rows, hand_revenue(raw, grain), [key], "revenue", absent="zero")


def test_a_cold_herd_over_three_replicas_runs_the_warehouse_once(replicas, raw):
    body = fresh_question()
    before = executions(replicas)
    shared_before = sum(counter(c, "tally_cache_shared_hits")
                        + counter(c, "tally_cache_shared_waits") for c in replicas)
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda i: ask(replicas[i % 3], body), range(48)))
    assert executions(replicas) - before == 1
    # The replicas that did not run it took the result from Redis (read, or waited for).
    shared = sum(counter(c, "tally_cache_shared_hits")
                 + counter(c, "tally_cache_shared_waits") for c in replicas)
    assert shared - shared_before >= 2
    outcomes = {outcome for outcome, _ in answers}
    assert "miss" in outcomes and outcomes <= {"miss", "hit", "shared"}
    first = answers[0][1]
    assert all(rows == first for _, rows in answers)
    check(first, raw)


def test_an_invalidation_on_one_replica_is_honoured_by_all(replicas, raw):
    body = fresh_question("quarter")
    for client in replicas:  # warm every replica's own memory too
        ask(client, body)
    assert [ask(c, body)[0] for c in replicas] == ["hit"] * 3
    version = replicas[0].get("/health/ready").json()["data_version"]
    r = replicas[0].post("/api/v1/cache/invalidate")
    assert r.status_code == 200
    # Every replica now keys on the new data version, and none serves the older result.
    assert {c.get("/health/ready").json()["data_version"] for c in replicas} == {
        r.json()["data_version"]} != {version}
    before = executions(replicas)
    assert ask(replicas[1], body)[0] == "miss"
    assert ask(replicas[2], body)[0] == "hit"  # the result replica 1 stored after it
    assert executions(replicas) - before == 1
    outcome, rows = ask(replicas[0], body)
    assert outcome == "hit"
    check(rows, raw, "quarter")


def test_redis_stopped_mid_test_degrades_to_uncached_and_recovers(replicas, redis_process, raw):
    body = fresh_question("year")
    ask(replicas[0], body)
    redis_process.stop()
    try:
        before = executions(replicas)
        for client in replicas:
            for _ in range(2):  # not even this replica's own memory: it could be stale
                outcome, rows = ask(client, body)
                assert outcome == "miss"
                check(rows, raw, "year")
        assert executions(replicas) - before == 6
        for client in replicas:
            health = client.get("/health/ready")
            assert health.status_code == 200
            cache = health.json()["cache"]
            assert cache["available"] is False and "uncached" in cache["warning"]
            assert counter(client, "tally_cache_shared_up") == 0
    finally:
        redis_process.start()  # the same port, empty
    time.sleep(0.3)  # past the replicas' back-off (TALLY_CACHE_RETRY_SECONDS=0.2)
    assert ask(replicas[0], body)[0] == "miss"  # Redis came back empty
    before = executions(replicas)
    outcome, rows = ask(replicas[1], body)
    assert outcome == "hit" and executions(replicas) == before
    check(rows, raw, "year")
    for client in replicas:
        assert client.get("/health/ready").json()["cache"]["available"] is True
        assert counter(client, "tally_cache_shared_up") == 1
