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

from tally.core.caller import Caller
from tally.errors import TallyError
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
    try:
        caller = svc.authenticate(
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


def metrics_token_ok(request: Request) -> bool:
    """GET /metrics takes its own token when TALLY_METRICS_TOKEN is set."""
    token = request.app.state.settings.metrics_token
    if token is None or not token.get_secret_value():
        return True
    given = bearer_token(request) or ""
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())
