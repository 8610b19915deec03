"""Bounds on slow clients, so connections that never finish cannot pile up.

* Headers: uvicorn's h11 protocol waits forever for a request's headers (its keep-alive timeout
  starts only after a response). `HeaderTimeoutProtocol` closes a connection whose headers have
  not all arrived within TALLY_HEADER_TIMEOUT_SECONDS of its opening or of its last response.
* Body: `BodyTimeoutMiddleware` answers 408 when the whole body has not arrived within
  TALLY_BODY_TIMEOUT_SECONDS, on every route, and the connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from tally.api.errors import error_response


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    class HeaderTimeoutProtocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _waiting_cycle: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._waiting_cycle = self.cycle
            self._timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._timer is not None and self.cycle is not self._waiting_cycle:
                self._disarm()  # a new request's headers are complete

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _too_slow(self) -> None:
            self._timer = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


class BodyTimeoutMiddleware:
    """The whole body within `seconds` of the app's first read of it, however it trickles in
    (a byte every 20 s never pauses long, yet would hold the request open for hours).

    On time-out the middleware answers 408 itself (the one error shape, `Connection: close`)
    unless the app has started its answer, and makes the app's read fail: REST and GraphQL
    turn that into the same 408, and an app that would answer otherwise (MCP's transport) has
    its answer dropped, so every route answers a slow body the same way."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        body_done = False
        started = False  # the response, by the app or by us
        timed_out = False
        message = f"The request body did not arrive within {self.seconds:g} s."

        async def timed_receive() -> Message:
            nonlocal body_done, deadline, timed_out
            if body_done or timed_out:
                # After the body, a receive waits for the client to disconnect (a streamed
                # response listens for that the whole time it streams): not a slow body.
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.seconds
            try:
                received = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                timed_out = True
                if not started:
                    await answer_408()
                raise HTTPException(408, message, headers={"Connection": "close"}) from None
            if received.get("type") != "http.request" or not received.get("more_body"):
                body_done = True
            return received

        async def answer_408() -> None:
            nonlocal started
            started = True
            response = error_response(408, "request_timeout", message,
                                      headers={"Connection": "close"})  # fmt: skip
            await response(scope, receive, send)

        async def guarded_send(out: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the 408 is (or was meant to be) the answer
            if out["type"] == "http.response.start":
                started = True
            await send(out)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except HTTPException as e:
            if not (timed_out and e.status_code == 408):
                raise
