"""Prometheus metrics (one registry per app) and one structured log line per query."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core.request import QueryRequest
from server.core.results import QueryResult
from server.core.service import TallyService

query_log = logging.getLogger("tally.query")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _CacheCollector:
    """Reads the cache's own counters at scrape time, so they can never drift from it."""

    def __init__(self, service: TallyService) -> None:
        self.service = service

    def collect(self):
        stats = self.service.cache.stats
        for name, value, doc in (
            ("tally_cache_hits", stats.hits, "Result cache hits."),
            ("tally_cache_misses", stats.misses, "Result cache misses (the query ran)."),
            (
                "tally_cache_shared",
                stats.shared,
                "Queries that waited on an identical query in flight and took its result.",
            ),
            ("tally_cache_evictions", stats.evictions, "Results evicted to stay within bytes."),
            ("tally_cache_expirations", stats.expirations, "Results dropped at their TTL."),
            (
                "tally_warehouse_executions",
                self.service.counters.executions,
                "Queries run on the warehouse.",
            ),
            (
                "tally_warehouse_errors",
                self.service.counters.warehouse_errors,
                "Warehouse queries that failed.",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "tally_cache_bytes",
            "Arrow bytes held by the result cache.",
            value=self.service.cache.current_bytes,
        )
        yield GaugeMetricFamily(
            "tally_cache_entries",
            "Results held by the result cache.",
            value=len(self.service.cache),
        )
        yield GaugeMetricFamily(
            "tally_cache_max_bytes", "Result cache bound.", value=self.service.cache.max_bytes
        )


class Metrics:
    def __init__(self, service: TallyService) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tally_http_requests",
            "HTTP requests.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tally_http_request_duration_seconds",
            "HTTP latency.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tally_http_requests_in_flight",
            "HTTP requests being answered (this scrape included).",
            registry=self.registry,
        )
        self.compile = Histogram(
            "tally_compile_seconds",
            "Time compiling queries (MetricFlow).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.execute = Histogram(
            "tally_execute_seconds",
            "Time executing on the warehouse.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_CacheCollector(service))
        service.counters.listeners.append(self._on_event)

    def _on_event(self, event: str, value: float) -> None:
        if event == "compile_seconds":
            self.compile.observe(value)
        elif event == "execute_seconds":
            self.execute.observe(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMiddleware:
    """Request id (X-Request-ID, taken from the caller when sane), request count and latency by
    route template (not raw path, to keep label cardinality bounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            label = getattr(route, "path", None) or ("unmatched" if status == 404 else "other")
            self.metrics.requests.labels(label, scope["method"], str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


def log_query(
    request_id: str,
    transport: str,
    request: QueryRequest,
    result: QueryResult | None = None,
    error: Any = None,
) -> None:
    record: dict[str, Any] = {
        "event": "query",
        "request_id": request_id,
        "transport": transport,
        "metrics": list(request.metrics),
        "group_by": list(request.group_by),
        "saved_query": request.saved_query,
        "filters": len(request.where),
    }
    if result is not None:
        record.update(
            status="ok",
            rows=result.table.num_rows,
            cache="hit" if result.cache.hit else ("shared" if result.cache.shared else "miss"),
            cache_age_s=round(result.cache.age_seconds, 3),
            compile_ms=result.timing.compile_ms,
            execute_ms=result.timing.execute_ms,
            total_ms=result.timing.total_ms,
        )
    if error is not None:
        record.update(status="error", code=getattr(error, "code", "internal_error"))
    query_log.info(json.dumps(record, separators=(",", ":")))
