"""Every error leaves the HTTP layer in one shape:
{"error": {"code": "...", "message": "...", "details": {...}}}, 4xx for the caller's mistakes,
5xx only for the server's own faults, never with a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from tally.errors import TallyError, cut

log = logging.getLogger("tally.api")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """Every error, on every route: a stable code and a human message."""

    error: ErrorDetail


_STATUS_TEXT = {
    400: "The caller's mistake: invalid request, unknown name (with a suggestion), bad filter",
    401: "No credentials, or credentials that do not hold",
    403: "The credentials do not allow this (scope, metric, dimension)",
    404: "No such resource (an unknown name on a resource route)",
    406: "Cannot produce the Accept format",
    413: "The request body is larger than the server's limit",
    415: "The body is not application/json",
    429: "Too many requests (Retry-After says when to come back)",
    500: "The server's own fault",
    502: "The warehouse failed the query",
    503: "Not ready, or the warehouse is unavailable (Retry-After when known)",
    504: "The query ran longer than the server's timeout",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _STATUS_TEXT.items()
}


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the statuses the server really answers: the error shape on
    every operation, and no 422 (validation errors are 400s in the error shape)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)  # fmt: skip
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorBody):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, text in _STATUS_TEXT.items():
                responses.setdefault(str(status), {
                    "description": text, "content": {"application/json": {"schema": ref}}})
    app.openapi_schema = schema
    return schema


class ErrorJSON(JSONResponse):
    """An error body as ASCII JSON: a caller's text echoed in a message may hold characters
    UTF-8 cannot carry (a lone surrogate), which must not turn an error into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, **details: object
) -> JSONResponse:
    body: dict = {"code": code, "message": message}
    details = {k: v for k, v in details.items() if v is not None}
    if details:
        body["details"] = details
    return ErrorJSON({"error": body}, status_code=status, headers=headers)


class HTTPError(TallyError):
    """An error only HTTP has (wrong content type, unsupported Accept)."""

    def __init__(self, status: int, code: str, message: str, **details: object) -> None:
        super().__init__(message, **details)
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


def error_headers(exc: TallyError) -> dict[str, str]:
    """HTTP headers an error implies: a challenge with a 401, Retry-After with 429 and 503."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry = exc.details.get("retry_after_seconds")
    if retry is not None and exc.status in (429, 503):
        headers["Retry-After"] = str(max(1, int(float(retry) + 0.999)))
    return headers


def install(app: FastAPI) -> None:
    @app.exception_handler(TallyError)
    async def tally_error(request: Request, exc: TallyError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("server fault %s on %s: %s", exc.code, request.url.path, exc.message)
        return ErrorJSON(exc.to_dict(), status_code=exc.status, headers=error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            # A location can hold a caller's key (an unknown field): never echo much of it.
            where = ".".join(cut(str(p)) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {cut(str(err.get('msg', 'invalid')), 200)}")
        message = "Invalid request: " + "; ".join(problems[:5])
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            message = "The request body is not valid JSON."
        elif any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
            message = "The request body must be a JSON object, e.g. {\"metrics\": [\"<metric>\"]}."
        return error_response(400, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route {cut(request.url.path)}; see /docs for the API."
        if exc.status_code == 405:
            message = f"Method {cut(request.method)} is not allowed on {cut(request.url.path)}."
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client left while its body was read: no one to answer, and nothing wrong with
        # the server (a traceback per disconnect would let anyone flood the log).
        log.debug("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=499)  # "client closed request", as proxies log it

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(
            500, "internal_error", "Internal server error; the server log has the details."
        )
