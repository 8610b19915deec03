"""Shared plumbing for routers: the service, running blocking work off the event loop, and the
caller's access context."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import Request

from server.core.service import TallyService

T = TypeVar("T")


def service(request: Request) -> TallyService:
    return request.app.state.service


async def run_blocking(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """Compile and warehouse calls run in the app's thread pool; the event loop never blocks."""
    executor: ThreadPoolExecutor = request.app.state.executor
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


def access_context(request: Request) -> dict[str, str]:
    """Who is asking, as far as caching is concerned. Until authentication exists every caller
    shares one context; the hook keeps the cache key ready for it."""
    return dict(getattr(request.state, "access_context", {}) or {})


def request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")
