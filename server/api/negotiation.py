"""Content negotiation and the query response: JSON, CSV or Arrow IPC by Accept, with cache
metadata in the body (JSON) and in headers (all formats), ETag and Cache-Control."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from server import encoding
from server.api.errors import HTTPError
from server.core.service import QueryResult

JSON, CSV = "application/json", "text/csv"
FORMATS = {JSON: "json", CSV: "csv", encoding.ARROW_STREAM: "arrow"}


def negotiate(request: Request) -> str:
    """The response format for the request's Accept header (JSON when absent or */*)."""
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return "json"
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
    for q, media in sorted(ranked, key=lambda x: -x[0]):
        if q <= 0:
            continue
        if media in FORMATS:
            return FORMATS[media]
        if media in ("*/*", "application/*"):
            return "json"
        if media == "text/*":
            return "csv"
    raise HTTPError(
        406,
        "not_acceptable",
        f"Cannot produce {accept!r}; ask for one of {', '.join(FORMATS)}.",
        supported=list(FORMATS),
    )


def require_json_body(request: Request) -> None:
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
            f"Send the body as application/json (got {content_type or 'nothing'!r}).",
        )


def cache_state(result: QueryResult) -> str:
    return "hit" if result.cache.hit else ("shared" if result.cache.shared else "miss")


def query_response(request: Request, result: QueryResult, fmt: str) -> Response:
    etag = f'W/"{result.cache.key}-{fmt}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={round(result.cache.ttl_seconds)}",
        "Vary": "Accept",
        "X-Tally-Cache": cache_state(result),
        "X-Tally-Cache-Age": f"{result.cache.age_seconds:.3f}",
        "X-Tally-Manifest-Version": result.manifest_version,
        "Server-Timing": (
            f"compile;dur={result.timing.compile_ms}, "
            f"execute;dur={result.timing.execute_ms}, "
            f"total;dur={result.timing.total_ms}"
        ),
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    if fmt == "csv":
        return Response(
            encoding.to_csv(result.table), media_type="text/csv; charset=utf-8", headers=headers
        )
    if fmt == "arrow":
        return Response(
            encoding.to_arrow_stream(result.table),
            media_type=encoding.ARROW_STREAM,
            headers=headers,
        )
    return Response(encoding.to_json(result), media_type=JSON, headers=headers)
