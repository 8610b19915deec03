"""Content negotiation and the query response: any answer format of core/formats.py (JSON,
CSV, Arrow IPC, NDJSON...) by Accept, with cache metadata in the body (JSON) and in headers (all
formats), ETag and Cache-Control.

The responses are built by plain functions of a result, so the service can run them where it
is cheap (the event loop for a small hit, a worker thread for a large result)."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from tally.api.errors import HTTPError
from tally.core import encoding, formats
from tally.core.formats import Format
from tally.core.results import QueryResult
from tally.errors import shorten


def negotiate(request: Request) -> Format:
    """The response format for the request's Accept header (the first answer format, JSON,
    when absent or */*; for `type/*`, the first answer format of that type)."""
    offered = formats.answers()
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return offered[0]
    ranked = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        ranked.append((q, media.lower()))
    ranked.sort(key=lambda x: -x[0])
    for q, media in ranked:
        if q <= 0:
            continue
        kind = media.removesuffix("*") if media.endswith("/*") else None
        for f in offered:
            if f.media_type == media or media == "*/*" or (kind and f.media_type.startswith(kind)):
                return f
    supported = [f.media_type for f in offered]
    wanted = [media for q, media in ranked if q > 0]
    close = formats.suggest(wanted[0], offered) if wanted else None
    hint = f" Did you mean '{close.media_type}'?" if close else ""
    raise HTTPError(
        406,
        "not_acceptable",
        f"Cannot produce {shorten(accept)}; ask for one of {', '.join(supported)}.{hint}",
        supported=supported,
    )


async def require_json_body(request: Request) -> None:
    """A route dependency: runs before FastAPI reads the body, so a wrong content type is a
    415, not a confusing validation error. A request without a body passes."""
    content_type = request.headers.get("content-type", "")
    has_body = (
        request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    )
    if not has_body and not content_type:
        return
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPError(
            415,
            "unsupported_media_type",
            f"Send the body as application/json (got {shorten(content_type or 'nothing')}).",
        )


def _headers(request: Request, result: QueryResult, fmt: Format) -> tuple[dict[str, str], bool]:
    """Response headers, and whether If-None-Match already has this representation. The ETag
    names the cached entry and this request's column and row order (requests that differ only
    in order share an entry, not a representation) and the format."""
    etag = f'W/"{result.cache.key}-{result.cache.variant}-{fmt.name}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={round(result.cache.ttl_seconds)}",
        "Vary": "Accept",
        "X-Tally-Cache": result.cache.outcome,
        "X-Tally-Cache-Age": f"{result.cache.age_seconds:.3f}",
        "X-Tally-Manifest-Version": result.manifest_version,
        "Server-Timing": (
            f"compile;dur={result.timing.compile_ms}, "
            f"execute;dur={result.timing.execute_ms}, "
            f"total;dur={result.timing.total_ms}"
        ),
    }
    if result.cache.stale:
        headers["X-Tally-Stale"] = "true"
        headers["Warning"] = '110 - "Response is Stale"'
    matched = etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    return headers, matched


def query_response(request: Request, result: QueryResult, fmt: Format) -> Response:
    """The response to POST /query (a 304 when If-None-Match has this representation)."""
    headers, matched = _headers(request, result, fmt)
    if matched:
        return Response(status_code=304, headers=headers)
    return Response(fmt.encode(result), media_type=fmt.content_type, headers=headers)


def values_response(
    request: Request, result: QueryResult, fmt: Format, dimension: str
) -> Response:
    """The response to GET /dimension-values: a one-column result; in JSON, its values."""
    headers, matched = _headers(request, result, fmt)
    if matched:
        return Response(status_code=304, headers=headers)
    if fmt is not formats.JSON:  # JSON's answer here is a list of values, not a result's rows
        return Response(fmt.encode(result), media_type=fmt.content_type, headers=headers)
    meta = encoding.result_meta(result)
    metrics = list(result.request.metrics)
    body = {
        "dimension": dimension,
        "column": result.table.column_names[0],
        # Which values these are: those reachable through the metrics asked for, or every
        # value in the dimension's own semantic model (no metrics asked).
        "scope": "metrics" if metrics else "semantic_model",
        "metrics": metrics,
        "values": [encoding.json_value(v) for v in result.table.column(0).to_pylist()],
        "row_count": meta["row_count"],
        "cache": meta["cache"],
        "timing_ms": meta["timing_ms"],
    }
    return Response(json.dumps(body), media_type=fmt.content_type, headers=headers)
