"""HTTP metrics (requests by route and status, latency, requests in flight) in the service's
Prometheus registry, and the request id. What concerns queries (outcomes, compile and execute
time, the cache) is counted by the service itself, for every transport."""

from __future__ import annotations

import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.service.telemetry import BUCKETS, Telemetry, current_audit


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tally_http_requests",
            "HTTP requests.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "tally_http_request_duration_seconds",
            "HTTP latency.",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tally_http_requests_in_flight",
            "HTTP requests being answered (this scrape included).",
            registry=registry,
        )


# Routes that some sub-applications (GraphQL, MCP, dashboards) handle without a FastAPI route
# in the scope: labelled by their prefix, never by the raw path (label cardinality).
MOUNTS = ("/api/graphql", "/graphql", "/mcp", "/dashboards", "/assets")


def route_label(scope: Scope, status: int) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    raw = scope.get("path", "")
    for prefix in MOUNTS:
        if raw == prefix or raw.startswith(prefix + "/"):
            return prefix
    return "unmatched" if status == 404 else "other"


class RequestMiddleware:
    """Request id (X-Request-ID, taken from the caller when sane), request count and latency by
    route template (not raw path, to keep label cardinality bounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, telemetry: Telemetry) -> None:
        self.app = app
        self.metrics = metrics
        self.telemetry = telemetry

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
        audit: dict = {}
        token = current_audit.set(audit)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            current_audit.reset(token)
            self.metrics.in_flight.dec()
            if audit.get("subject") or audit.get("auth_failed"):
                self.telemetry.audit({
                    "request_id": request_id, "method": scope["method"],
                    "route": route_label(scope, status), "status": status, **audit,
                })  # fmt: skip
            label = route_label(scope, status)
            self.metrics.requests.labels(label, scope["method"], str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)
