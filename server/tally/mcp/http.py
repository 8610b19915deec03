"""MCP over streamable HTTP at `/mcp` on the API app, over the app's own service: the bearer
token of each HTTP request is authenticated by the service exactly as REST does (a bad one is
a 401 in the one error shape before any MCP message is read), and every tool, resource and
prompt of that request runs as its caller."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.streamable_http_manager import (
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tally.core.caller import SCOPE_KEY, Caller
from tally.errors import CallerError, ServerFault, TallyError
from tally.mcp.server import build_server, current_caller
from tally.service import TallyService
from tally.service.telemetry import current_audit

PATH = "/mcp"
_STATE_KEY = "tally_mcp_caller"
_AUDITED = ("auth", "key_id", "policies")


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


class ServiceUnavailable(ServerFault):
    code = "mcp_unavailable"
    status = 503


async def _send_error(send: Send, e: TallyError, extra: list[tuple[bytes, bytes]] = ()
                      ) -> None:  # fmt: skip
    body = json.dumps(e.to_dict()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra]  # fmt: skip
    if e.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tally"'))
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Authenticated:
    """The session manager's ASGI app behind tally's authentication."""

    def __init__(self, app: _Endpoint, service: TallyService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        audit = current_audit.get()  # the HTTP request's audit record, as REST fills it
        early = state.get(SCOPE_KEY)  # authenticated before its body (the HTTP app's preauth)
        try:
            caller = early.with_transport("mcp") if early is not None else \
                self.service.authenticate(_bearer(scope), transport="mcp",
                                          request_id=state.get("request_id", "-"))
        except TallyError as e:
            if audit is not None:
                audit.update(transport="mcp", auth_failed=e.code, reason=e.message)
            await _send_error(send, e)
            return
        if audit is not None and caller.subject is not None:
            audit.update(transport="mcp", subject=caller.subject,
                         **{k: v for k, v in caller.extra.items() if k in _AUDITED})  # fmt: skip
        state[_STATE_KEY] = caller
        await self.app(scope, receive, send)


async def _as_http_caller(ctx: Any, call_next: Any) -> Any:
    """SDK middleware: the caller authenticated for this message's HTTP request."""
    request = getattr(ctx, "request", None)
    state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
    caller = state.get(_STATE_KEY)
    token = current_caller.set(caller)
    try:
        return await call_next(ctx)
    finally:
        current_caller.reset(token)


class _Endpoint:
    """The session manager's ASGI app, built when the app starts: building the MCP server
    costs tens of milliseconds, which an app that never starts (in-process tests create
    hundreds) should not pay."""

    def __init__(self, service: TallyService) -> None:
        self.service = service
        self.app: StreamableHTTPASGIApp | None = None

    def start(self) -> StreamableHTTPSessionManager:
        def no_caller() -> Caller:
            # Every HTTP request is authenticated before it reaches the server; a message
            # without one would be a wiring fault, never anonymous access.
            raise RuntimeError("MCP message without an authenticated HTTP request")

        server = build_server(self.service, no_caller)
        server.middleware.append(_as_http_caller)
        # Stateless, JSON responses: each POST is one self-contained exchange, so any server
        # process behind a load balancer can answer it, and no session outlives its request.
        server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            host=self.service.settings.host,
        )  # fmt: skip
        self.app = StreamableHTTPASGIApp(server.session_manager)
        return server.session_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            error = ServiceUnavailable("MCP starts with the server; this app was not started.")
            await _send_error(send, error)
            return
        await self.app(scope, receive, send)


class NoStream(CallerError):
    code = "method_not_allowed"
    status = 405


class _PostOnly:
    """GET (an event stream for server-initiated messages) and DELETE (ending a session) have
    nothing to serve on a stateless endpoint, and an event stream would stay open for as long
    as its client likes: refused, as the protocol allows (405), before anything is held."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_error(send, NoStream(
            "tally's MCP endpoint is stateless: POST each JSON-RPC message; it opens no event "
            "stream (GET) and keeps no session (DELETE)."
        ), extra=[(b"allow", b"POST")])  # fmt: skip


def mount(app: FastAPI, service: TallyService) -> None:
    """Serve MCP at /mcp on `app`; its session manager runs inside the app's lifespan."""
    endpoint = _Endpoint(service)
    app.router.routes.append(
        Route(PATH, endpoint=_Authenticated(endpoint, service), methods=["POST"])
    )
    app.router.routes.append(Route(PATH, endpoint=_PostOnly(), methods=["GET", "DELETE"]))
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with outer(a) as state, endpoint.start().run():
            yield state

    app.router.lifespan_context = lifespan
