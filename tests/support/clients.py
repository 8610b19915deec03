"""The in-process HTTP client: the real app through httpx's ASGI transport (no socket)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

BASE_URL = "http://tally.test"


def asgi_client(app: Any) -> httpx.AsyncClient:
    """`async with asgi_client(app) as client: await client.get(...)`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


class SyncASGIClient:
    """The same for synchronous tests (the correctness suite): one event loop per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with asgi_client(self.app) as client:
                return await client.post(url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with asgi_client(self.app) as client:
                return await client.get(url, **kwargs)

        return asyncio.run(send())
