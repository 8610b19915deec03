"""Concurrency: 50 concurrent identical cold requests cause exactly one warehouse execution and
hold one worker thread; the event loop stays free while queries run and while large cached
results are shaped and encoded."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.clients import asgi_client
from tests.support.warehouses import EndlessWarehouse, HeldWarehouse, SlowWarehouse

pytestmark = pytest.mark.anyio


async def test_fifty_identical_cold_requests_run_the_warehouse_once(make_app, warehouse):
    app = make_app(SlowWarehouse(warehouse.duckdb_path), query_workers=8)
    service = app.state.service
    body = {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__month"]}
    async with asgi_client(app) as client:
        assert (await client.get("/api/v1/metrics")).status_code == 200  # engine built
        threads_before = len(app.state.service.executor._threads)
        responses = await asyncio.gather(
            *(client.post("/api/v1/query", json=body) for _ in range(50)))
        stats = (await client.get("/api/v1/cache")).json()
    assert {r.status_code for r in responses} == {200}
    assert service.counters.executions == 1
    states = [r.headers["x-tally-cache"] for r in responses]
    assert states.count("miss") == 1
    assert states.count("shared") >= 1  # waited on the in-flight query, did not run its own
    assert states.count("miss") + states.count("shared") + states.count("hit") == 50
    assert (stats["misses"], stats["shared"], stats["hits"]) == (
        1, states.count("shared"), states.count("hit"))
    assert len({r.json()["row_count"] for r in responses}) == 1
    assert len({str(r.json()["data"]) for r in responses}) == 1
    # The waiters awaited the leader's result on the event loop: the herd needed at most one
    # more worker thread (blocking waiters would have taken all eight).
    assert len(app.state.service.executor._threads) <= threads_before + 1


async def test_a_slow_identical_herd_does_not_starve_other_queries_or_readiness(
    make_app, warehouse
):
    # Only the herd's query is held (it alone asks for order_count), until the other query
    # and the readiness probe have answered: they must answer while it still runs.
    held = HeldWarehouse(warehouse.duckdb_path, marker="order_count")
    app = make_app(held, query_workers=2)
    herd_body = {"metrics": ["order_count"], "group_by": ["metric_time__month"]}
    async with asgi_client(app) as client:
        herd = [asyncio.create_task(client.post("/api/v1/query", json=herd_body))
                for _ in range(20)]
        # the herd is in flight: its leader's query runs on the warehouse
        assert await asyncio.to_thread(held.started.wait, 30)
        other = await asyncio.wait_for(
            client.post("/api/v1/query", json={"metrics": ["revenue"]}), 30)
        ready = await asyncio.wait_for(client.get("/health/ready"), 30)
        assert not any(t.done() for t in herd), "the herd finished too early to prove anything"
        held.release()
        responses = await asyncio.gather(*herd)
    assert other.status_code == 200 and other.headers["x-tally-cache"] == "miss"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert held.held == 1  # the herd's query ran once, and was still running meanwhile
    assert {r.status_code for r in responses} == {200}
    assert [r.headers["x-tally-cache"] for r in responses].count("miss") == 1


async def test_the_event_loop_stays_free_while_queries_run(make_app, warehouse):
    held = HeldWarehouse(warehouse.duckdb_path)
    app = make_app(held, query_workers=2)
    async with asgi_client(app) as client:
        slow = asyncio.create_task(client.post("/api/v1/query", json={"metrics": ["revenue"]}))
        assert await asyncio.to_thread(held.started.wait, 30)
        # answered while the query is held on the warehouse
        live = await asyncio.wait_for(client.get("/health/live"), 30)
        assert live.status_code == 200
        assert not slow.done()
        held.release()
        assert (await slow).status_code == 200


# A large result: one row per order item (some twenty thousand rows at the test scale).
LARGE = {"metrics": ["item_revenue", "cost_of_goods_sold"],
         "group_by": ["order_item", "metric_time__day", "customer__country"]}


async def _loop_stall_while_served(client, body: dict) -> float:
    """Serve `body` (a cache hit) while a ticker sleeps 2 ms at a time: the longest gap
    between its ticks is how long the event loop was kept from everything else."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    r = await client.post("/api/v1/query", json=body, headers={"accept-encoding": "identity"})
    stop.set()
    await tick
    assert r.status_code == 200 and r.headers["x-tally-cache"] == "hit"
    assert r.json()["row_count"] > 5000
    return max(gaps)


async def test_the_event_loop_stays_free_while_a_large_hit_is_encoded(make_app):
    """Side by side: the same large hits served by the default app (large results are
    shaped and encoded in the thread pool) and by one told to serve every hit on the loop.
    Each hit asks for another column order than the last, so each is encoded afresh."""
    stalls: dict[str, list[float]] = {}
    for name, overrides in (("pool", {}), ("loop", {"loop_result_max_bytes": 1 << 40})):
        app = make_app(**overrides)
        async with asgi_client(app) as client:
            assert (await client.post("/api/v1/query", json=LARGE)).status_code == 200
            stalls[name] = sorted([
                await _loop_stall_while_served(
                    client, {**LARGE, "metrics": LARGE["metrics"][:: 1 if i % 2 else -1]})
                for i in range(3)
            ])
    pool, loop = stalls["pool"][1], stalls["loop"][1]  # medians
    assert loop > 0.08, f"encoding on the loop stalled it only {loop:.3f} s: too small to tell"
    assert pool < loop / 2, stalls


async def test_query_timeout_is_a_clear_error(make_app, warehouse):
    app = make_app(EndlessWarehouse(warehouse.duckdb_path, marker="metric_time__day"),
                   query_timeout_seconds=0.2)
    async with asgi_client(app) as client:
        started = time.perf_counter()
        r = await client.post("/api/v1/query", json={
            "metrics": ["revenue"], "group_by": ["metric_time__day"]})
        elapsed = time.perf_counter() - started
        body = r.json()
        assert r.status_code == 504 and body["error"]["code"] == "query_timeout", body
        assert "0.2 s" in body["error"]["message"] and elapsed < 10
        # The server is fine afterwards: another query answers.
        ok = await client.post("/api/v1/query", json={
            "metrics": ["revenue"], "group_by": ["metric_time__year"]})
        assert ok.status_code == 200, ok.text


async def test_a_new_manifest_is_loaded_off_the_event_loop(make_app, warehouse, tmp_path,
                                                           monkeypatch):
    import json
    import shutil
    import threading

    import tally.service.runtime as service_module

    manifest = tmp_path / "semantic_manifest.json"
    shutil.copy(warehouse.manifest_path, manifest)
    app = make_app(manifest_path=manifest)  # another manifest: an engine of its own
    loaded_on: list[str] = []
    real_load = service_module.load_manifest

    def spy(path):
        loaded_on.append(threading.current_thread().name)
        return real_load(path)

    monkeypatch.setattr(service_module, "load_manifest", spy)
    body = {"metrics": ["order_count"]}
    async with asgi_client(app) as client:
        first = await client.post("/api/v1/query", json=body)
        assert (await client.post("/api/v1/query", json=body)).headers["x-tally-cache"] == "hit"
        data = json.loads(manifest.read_text())
        data["metrics"] = [m for m in data["metrics"] if m["name"] != "revenue_growth_yoy"]
        manifest.write_text(json.dumps(data))
        after = await client.post("/api/v1/query", json=body)
    assert first.status_code == after.status_code == 200
    assert after.headers["x-tally-cache"] == "miss"  # a new manifest version, a new key
    assert after.headers["x-tally-manifest-version"] != first.headers["x-tally-manifest-version"]
    assert len(loaded_on) == 2 and all(n.startswith("tally-query") for n in loaded_on), loaded_on
