"""Typed dependencies for routers: the service, the caller's context, the admin guard, and
running blocking work off the event loop."""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from tally.core.caller import SCOPE_KEY, Caller
from tally.errors import TallyError, Unauthorized
from tally.service import TallyService
from tally.service.access import require
from tally.service.telemetry import current_audit

AUDITED = ("auth", "key_id", "policies")

T = TypeVar("T")


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread pool, a
# thread hop per request that would cost a cache hit more than the hit itself.
async def get_service(request: Request) -> TallyService:
    return request.app.state.service


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme in any case), or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def caller_of(request: Request, transport: str = "rest") -> Caller:
    """Who is asking, authenticated by the service from the request's bearer token, with the
    request id (and an access context a test middleware may set on request.state)."""
    state = request.scope.get("state", {})
    svc: TallyService = request.app.state.service
    audit = current_audit.get()
    early: Caller | None = state.get(SCOPE_KEY)  # authenticated before its body (preauth.py)
    try:
        caller = early.with_transport(transport) if early is not None else svc.authenticate(
            bearer_token(request), transport=transport, request_id=state.get("request_id", "-")
        )
    except TallyError as e:
        if audit is not None:
            audit.update(transport=transport, auth_failed=e.code, reason=e.message)
        raise
    if audit is not None and caller.subject is not None:
        audit.update(transport=transport, subject=caller.subject,
                     **{k: v for k, v in caller.extra.items() if k in AUDITED})  # fmt: skip
    access = getattr(request.state, "access_context", None)
    if access:
        caller = replace(caller, access=Caller.of(transport, access=access).access)
    return caller


async def get_caller(request: Request) -> Caller:
    return caller_of(request, "rest")


ServiceDep = Annotated[TallyService, Depends(get_service)]
CallerDep = Annotated[Caller, Depends(get_caller)]


async def run_operational(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """Health checks and cache control run on a small pool of their own, so a busy query pool
    (a herd of slow queries) never makes the server look dead to its orchestrator."""
    loop = asyncio.get_running_loop()
    pool: ThreadPoolExecutor = request.app.state.operations_executor
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))


def require_scope(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A route dependency: the caller, who must hold `scope` (401 without credentials, 403
    with credentials that lack it)."""

    async def dependency(request: Request) -> Caller:
        caller = caller_of(request, "rest")
        require(caller, scope)
        return caller

    return dependency


def check_metrics_scrape(request: Request) -> None:
    """GET /metrics (Prometheus) takes TALLY_METRICS_TOKEN when it is set, or a caller with the
    `admin` scope. It is open only on an open server (no authentication configured, which
    serves on loopback only) without a metrics token: the counters name routes, subjects'
    traffic and the cache, not for anonymous callers of a secured server."""
    svc: TallyService = request.app.state.service
    secret = request.app.state.settings.metrics_token
    token = secret.get_secret_value() if secret is not None else ""
    given = bearer_token(request)
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return
    if not token and not svc.security.configured:
        return
    need = "`Authorization: Bearer <TALLY_METRICS_TOKEN or a key with the admin scope>`"
    if given is None:
        raise Unauthorized(f"GET /metrics needs {need}.")
    caller = caller_of(request, "rest")  # a token that does not hold is a 401 here
    if caller.subject is None:  # an open server takes any token as anonymous
        raise Unauthorized(f"GET /metrics needs {need}.")
    require(caller, "admin")
