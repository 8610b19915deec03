"""Bounds on slow clients, so connections that never finish cannot pile up.

* Headers: uvicorn's h11 protocol waits forever for a request's headers (its keep-alive timeout
  starts only after a response). `HeaderTimeoutProtocol` closes a connection whose headers have
  not all arrived within TALLY_HEADER_TIMEOUT_SECONDS of its opening or of its last response.
* Body: `BodyTimeoutMiddleware` answers 408 when the body stops arriving for
  TALLY_BODY_TIMEOUT_SECONDS, and the connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol


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
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                # After the body, a receive waits for the client to disconnect (a streamed
                # response listens for that the whole time it streams): not a slow body.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
                if message.get("type") != "http.request" or not message.get("more_body"):
                    body_done = True
                return message
            except TimeoutError:
                # Raised inside the app while it reads the body: its handlers answer in the
                # error shape, and the connection is closed.
                raise HTTPException(
                    408,
                    f"The request body did not arrive within {self.seconds:g} s.",
                    headers={"Connection": "close"},
                ) from None

        await self.app(scope, timed_receive, send)
