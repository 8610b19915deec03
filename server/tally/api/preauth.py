"""Authentication before a body is read, on every route that takes one.

FastAPI reads and parses a request's body before it solves the route's dependencies (the caller
among them), so an anonymous client could make the server buffer a body (up to
TALLY_MAX_BODY_BYTES) per connection, and trickle it for the whole body timeout, before it was
refused: a thousand connections held a gigabyte (found by the adversarial pass). This
middleware authenticates a request that carries a body from its headers alone, before any byte
of the body is read; a refused one is answered at once in its route's error shape (the dbt
Semantic Layer's GraphQL shape on /api/graphql, the one error shape elsewhere). The caller is
kept in the request's scope, where `deps.caller_of` (and MCP) find it: one authentication, and
one rate-limit token, per request."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.api.errors import error_headers
from tally.core.caller import SCOPE_KEY
from tally.errors import TallyError
from tally.service import TallyService
from tally.service.telemetry import current_audit

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# dbt's Semantic Layer API answers an authentication failure with this message and HTTP 200;
# its SDK turns it into its AuthError (tally's reason stays in extensions).
_SEMANTIC_LAYER = "/api/graphql"


class AuthenticateFirst:
    def __init__(self, app: ASGIApp, service: TallyService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            caller = self.service.authenticate(
                _bearer(scope), transport=_transport(scope["path"]),
                request_id=state.get("request_id", "-"),
            )  # fmt: skip
        except TallyError as e:
            audit = current_audit.get()
            if audit is not None:
                audit.update(auth_failed=e.code, reason=e.message)
            await _refuse(scope, send, e)
            return
        state[SCOPE_KEY] = caller
        await self.app(scope, receive, send)


# The transport a path belongs to (the audit log and the counters say which).
_TRANSPORTS = (("/api/graphql", "dbtsl-graphql"), ("/graphql", "graphql"), ("/mcp", "mcp"))


def _transport(path: str) -> str:
    return next((t for prefix, t in _TRANSPORTS if path.startswith(prefix)), "rest")


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


async def _refuse(scope: Scope, send: Send, e: TallyError) -> None:
    status, headers = e.status, error_headers(e)
    body: dict[str, Any] = e.to_dict()
    if scope["path"].rstrip("/") == _SEMANTIC_LAYER:
        message = "User is not authorized" if e.code == "unauthorized" else e.message
        body = {"data": None, "errors": [
            {"message": message, "extensions": {"code": e.code, "status": e.status}}]}
        status, headers = 200, {}
    raw = json.dumps(body).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    (b"connection", b"close"),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    }  # fmt: skip
    await send(start)
    await send({"type": "http.response.body", "body": raw})
