"""What the service reports about the queries it answers, for every transport at once: one
structured log line per query (logger `tally.query`) and the Prometheus metrics that concern
queries (outcomes by transport, compile and execute time, the cache's own counters). The HTTP
layer adds its request metrics to the same registry."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tally.cache.result_cache import ResultCache
from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.core.results import QueryResult

T = TypeVar("T")
query_log = logging.getLogger("tally.query")
audit_log = logging.getLogger("tally.audit")
# The audit record of the request being answered (set by a transport for one request): the
# service adds what was asked and how it went, the transport writes one line at the end.
current_audit: ContextVar[dict[str, Any] | None] = ContextVar("tally_audit", default=None)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class ServiceCounters:
    """Warehouse executions and errors, counted by the service."""

    executions: int = 0
    warehouse_errors: int = 0
    stale_answers: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def executed(self) -> None:
        with self._lock:
            self.executions += 1

    def failed(self) -> None:
        with self._lock:
            self.warehouse_errors += 1

    def stale(self) -> None:
        with self._lock:
            self.stale_answers += 1


class _CacheCollector:
    """Reads the cache's own counters at scrape time, so they can never drift from it."""

    def __init__(self, cache: ResultCache, counters: ServiceCounters) -> None:
        self.cache = cache
        self.counters = counters

    def collect(self):
        stats = self.cache.stats
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
            ("tally_warehouse_executions", self.counters.executions,
             "Queries run on the warehouse."),
            ("tally_warehouse_errors", self.counters.warehouse_errors,
             "Warehouse queries that failed."),
            ("tally_stale_answers", self.counters.stale_answers,
             "Older answers served because the warehouse failed (stale-if-error)."),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "tally_cache_bytes", "Bytes held by the result cache.", value=self.cache.current_bytes
        )
        yield GaugeMetricFamily(
            "tally_cache_entries", "Results held by the result cache.", value=len(self.cache)
        )
        yield GaugeMetricFamily(
            "tally_cache_max_bytes", "Result cache bound.", value=self.cache.max_bytes
        )


class Telemetry:
    def __init__(self, cache: ResultCache, counters: ServiceCounters) -> None:
        self.registry = CollectorRegistry()
        # Called with (request, caller, result) for every answered query; never raising.
        self.observers: list[Callable[[QueryRequest, Caller, QueryResult], None]] = []
        self.queries = Counter(
            "tally_queries",
            "Queries answered, by transport and outcome (hit, miss, shared, error).",
            ["transport", "outcome"],
            registry=self.registry,
        )
        self.compile = Histogram(
            "tally_compile_seconds",
            "Time compiling queries (MetricFlow).",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.execute = Histogram(
            "tally_execute_seconds",
            "Time executing on the warehouse.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_CacheCollector(cache, counters))
        # Extra per-query hooks (tests, embedding applications): called after the log line.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._parts: dict[str, Any] = {}
        self._parts_lock = threading.Lock()

    def part(self, name: str, factory: Callable[[CollectorRegistry], T]) -> T:
        """Metrics a transport adds to this registry, created once however many apps share
        the service (a collector can be registered only once)."""
        with self._parts_lock:
            if name not in self._parts:
                self._parts[name] = factory(self.registry)
            return self._parts[name]

    def answered(self, request: QueryRequest, caller: Caller, result: QueryResult) -> None:
        outcome = result.cache.outcome
        for observe in self.observers:  # e.g. the query history (tally.history)
            try:
                observe(request, caller, result)
            except Exception:  # an observer never fails the query it observes
                query_log.exception("query observer %r failed", observe)
        self.queries.labels(caller.transport, outcome).inc()
        self._log(
            request,
            caller,
            status="ok",
            rows=result.table.num_rows,
            cache=outcome,
            cache_age_s=round(result.cache.age_seconds, 3),
            compile_ms=result.timing.compile_ms,
            execute_ms=result.timing.execute_ms,
            total_ms=result.timing.total_ms,
        )

    def failed(self, request: QueryRequest, caller: Caller, error: Exception) -> None:
        self.queries.labels(caller.transport, "error").inc()
        self._log(request, caller, status="error", code=getattr(error, "code", "internal_error"))

    def _log(self, request: QueryRequest, caller: Caller, **outcome: Any) -> None:
        audit = current_audit.get()
        if audit is None and not self.listeners and not query_log.isEnabledFor(logging.INFO):
            return  # nobody reads it: a cache hit should not pay for building it
        record: dict[str, Any] = {
            "event": "query",
            "request_id": caller.request_id,
            "transport": caller.transport,
            "metrics": list(request.metrics),
            "group_by": list(request.group_by),
            "saved_query": request.saved_query,
            "filters": len(request.where),
        }
        if caller.subject:
            record["subject"] = caller.subject
        record.update(caller.extra)
        record.update(outcome)
        if query_log.isEnabledFor(logging.INFO):
            query_log.info(json.dumps(record, separators=(",", ":"), default=str))
        if audit is not None:
            grant = caller.grant
            audit.setdefault("asked", []).append({
                "metrics": record["metrics"],
                "group_by": record["group_by"],
                "saved_query": record["saved_query"],
                "filters": record["filters"],
                "policy_filters": [repr(f) for f in grant.row_filters] if grant else [],
                "status": outcome.get("status"),
                **({"code": outcome["code"]} if "code" in outcome else {}),
            })  # fmt: skip
        for listener in self.listeners:
            listener(record)

    def audit(self, record: dict[str, Any]) -> None:
        """One structured line per authenticated request (never a secret)."""
        audit_log.info(json.dumps({"event": "audit", **record}, separators=(",", ":"),
                                  default=str))  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
