"""The `mcp` SDK's own client, held open for a whole test module: over stdio (it spawns
`tally mcp`) or streamable HTTP (a URL, with a bearer token). The client lives in one task of a
background event loop (its task groups must enter and exit in the same task); tests call it
synchronously, one request at a time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support.paths import PROJECT_DIR, TALLY


class McpSession:
    def __init__(self, target: Callable[[], Any], timeout: float = 120.0) -> None:
        self._target = target
        self._timeout = timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"MCP client did not connect: {self._error!r}")

    async def _main(self) -> None:
        from mcp import Client

        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            async with Client(self._target(), read_timeout_seconds=self._timeout) as client:
                self._ready.set()
                while True:
                    fn, future = await self._queue.get()
                    if fn is None:
                        return
                    try:
                        future.set_result(await fn(client))
                    except BaseException as e:  # handed to the test's thread
                        future.set_exception(e)
        except BaseException as e:
            self._error = e
            self._ready.set()

    def run(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        assert self._loop is not None and self._queue is not None
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (fn, future))
        return future.result(self._timeout)

    def call(self, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
        """(is_error, the answer as JSON) of one tool call; the structured content and the
        text content must say the same."""
        result = self.run(lambda c: c.call_tool(tool, arguments))
        text = json.loads(result.content[0].text)
        if result.structured_content is not None:
            assert result.structured_content == text
        return bool(result.is_error), text

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        is_error, body = self.call(tool, **arguments)
        assert not is_error, body
        return body

    def close(self) -> None:
        if self._loop is not None and self._queue is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (None, None))
        self._thread.join(30)


def stdio_session(env: dict[str, str], *args: str) -> McpSession:
    """`tally mcp` spawned by the SDK's stdio client."""

    def target() -> Any:
        from mcp.client.stdio import StdioServerParameters

        return StdioServerParameters(command=str(TALLY), args=["mcp", *args], env=env)

    return McpSession(target)


def http_session(url: str, token: str | None = None) -> McpSession:
    def target() -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0))
        return streamable_http_client(url, http_client=client)

    return McpSession(target)


def tally_env(warehouse: Any, project_dir: Path = PROJECT_DIR, **extra: str) -> dict[str, str]:
    return {**os.environ, "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
            "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
            "TALLY_PROJECT_DIR": str(project_dir), **extra}  # fmt: skip
