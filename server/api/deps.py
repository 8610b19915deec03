"""Shared plumbing for routers: the service, running blocking work off the event loop, the
caller's access context and the admin guard."""

from __future__ import annotations

import asyncio
import functools
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import Request
from starlette.exceptions import HTTPException

from server.core.service import TallyService

T = TypeVar("T")


def service(request: Request) -> TallyService:
    return request.app.state.service


def executor(request: Request) -> ThreadPoolExecutor:
    """The query pool: compile, warehouse and large-result encoding work."""
    return request.app.state.executor


async def run_blocking(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """Compile and warehouse calls run in the app's thread pool; the event loop never blocks."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor(request), functools.partial(fn, *args, **kwargs))


async def run_operational(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """Health checks and cache control run on a small pool of their own, so a busy query pool
    (a herd of slow queries) never makes the server look dead to its orchestrator."""
    loop = asyncio.get_running_loop()
    pool: ThreadPoolExecutor = request.app.state.operations_executor
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))


def access_context(request: Request) -> dict[str, str]:
    """Who is asking, as far as caching is concerned: `request.state.access_context`, set by
    whatever authenticates the caller (a middleware in front of the routers). Until one exists
    every caller shares one context; the key is ready for it."""
    return dict(getattr(request.state, "access_context", {}) or {})


def require_admin(request: Request) -> None:
    """A route dependency: with TALLY_ADMIN_TOKEN set, admin routes need
    `Authorization: Bearer <token>` (compared in constant time); without it they are open."""
    token = request.app.state.settings.admin_token
    if token is None or not token.get_secret_value():
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401,
            "This route needs `Authorization: Bearer <token>` with the server's admin token "
            "(TALLY_ADMIN_TOKEN).",
            headers={"WWW-Authenticate": "Bearer"},
        )


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")
