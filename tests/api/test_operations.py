from __future__ import annotations

import json
import logging

import pytest

from tests.support.assertions import assert_error, prometheus_sample
from tests.support.clients import asgi_client
from tests.support.warehouses import missing_warehouse

pytestmark = pytest.mark.anyio


async def test_health(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["manifest_version"]


async def test_not_ready_without_a_warehouse(make_app, tmp_path):
    app = make_app(missing_warehouse(tmp_path))
    async with asgi_client(app) as c:
        r = await c.get("/health/ready")
        assert (await c.get("/health/live")).status_code == 200
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "warehouse_unavailable"


async def test_not_ready_without_a_manifest(make_app, tmp_path):
    app = make_app(manifest_path=tmp_path / "none.json")
    async with asgi_client(app) as c:
        r = await c.get("/health/ready")
        q = await c.post("/api/v1/query", json={"metrics": ["revenue"]})
    assert r.status_code == 503 and "dbt parse" in r.json()["error"]["message"]
    assert_error(q, 503, "manifest_unavailable", "dbt parse")


async def test_prometheus_metrics(client):
    body = {"metrics": ["revenue"], "group_by": ["metric_time__year"]}
    await client.post("/api/v1/query", json=body)
    await client.post("/api/v1/query", json=body)
    await client.post("/api/v1/query", json={"metrics": ["revenu"]})
    await client.get("/api/v1/metrics/nope")
    text = (await client.get("/metrics")).text
    requests = "tally_http_requests_total"
    assert prometheus_sample(text, requests, route="/api/v1/query", status="200") == 2
    assert prometheus_sample(text, requests, route="/api/v1/query", status="400") == 1
    assert prometheus_sample(text, "tally_http_requests_total", route="/api/v1/metrics/{name}",
                   status="404") == 1
    assert prometheus_sample(text, "tally_http_request_duration_seconds_count",
                   route="/api/v1/query") == 3
    assert prometheus_sample(text, "tally_cache_hits_total") == 1
    assert prometheus_sample(text, "tally_cache_misses_total") == 2
    assert prometheus_sample(text, "tally_cache_evictions_total") == 0
    assert prometheus_sample(text, "tally_cache_bytes") > 0
    assert prometheus_sample(text, "tally_compile_seconds_count") == 1
    assert prometheus_sample(text, "tally_execute_seconds_count") == 1
    assert prometheus_sample(text, "tally_warehouse_errors_total") == 0


async def test_one_structured_log_line_per_query(client, caplog):
    caplog.set_level(logging.INFO, logger="tally.query")
    body = {"metrics": ["revenue"], "group_by": ["metric_time__year"]}
    await client.post("/api/v1/query", json=body, headers={"x-request-id": "req-123"})
    await client.post("/api/v1/query", json=body)
    await client.post("/api/v1/query", json={"metrics": ["revenu"]})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tally.query"]
    assert len(records) == 3
    first, second, bad = records
    assert first["request_id"] == "req-123" and first["cache"] == "miss"
    assert first["metrics"] == ["revenue"] and first["rows"] == 4
    assert {"compile_ms", "execute_ms", "total_ms"} <= set(first)
    assert second["cache"] == "hit" and second["request_id"] != "req-123"
    assert bad["status"] == "error" and bad["code"] == "unknown_metric"


async def test_request_id_is_echoed(client):
    r = await client.get("/health/live", headers={"x-request-id": "abc"})
    assert r.headers["x-request-id"] == "abc"
    assert len((await client.get("/health/live")).headers["x-request-id"]) == 32


async def test_invalidate_endpoint(client):
    body = {"metrics": ["revenue"]}
    await client.post("/api/v1/query", json=body)
    assert (await client.post("/api/v1/query", json=body)).headers["x-tally-cache"] == "hit"
    r = await client.post("/api/v1/cache/invalidate")
    assert r.status_code == 200 and r.json()["invalidated"] is True
    assert (await client.post("/api/v1/query", json=body)).headers["x-tally-cache"] == "miss"
    stats = (await client.get("/api/v1/cache")).json()
    assert stats["warehouse_executions"] == 2 and stats["hits"] == 1


async def test_cors_only_for_configured_origins(make_app):
    app = make_app(cors_origins=["https://app.example.com"])
    async with asgi_client(app) as c:
        ok = await c.options("/api/v1/query", headers={
            "origin": "https://app.example.com", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        other = await c.post("/api/v1/query", json={"metrics": ["revenue"]},
                             headers={"origin": "https://evil.example.com"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in other.headers


async def test_large_results_are_compressed(client):
    r = await client.post("/api/v1/query", headers={"accept-encoding": "gzip"},
                          json={"metrics": ["revenue", "order_count"],
                                "group_by": ["metric_time__day"]})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.json()["row_count"] > 1000
    small = await client.get("/health/live", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers
