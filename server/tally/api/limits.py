"""The request body limit (TALLY_MAX_BODY_BYTES): a larger body is refused with 413
payload_too_large before any of it is parsed, whether its size is declared (Content-Length)
or only discovered while it streams in (chunked)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.api.errors import error_response


def _too_large(limit: int) -> str:
    return f"The request body is larger than the server's limit of {limit} bytes."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > self.max_bytes:
                status, code = (413, "payload_too_large") if size > 0 else (400, "invalid_request")
                message = _too_large(self.max_bytes) if size > 0 else "Bad Content-Length."
                limit = self.max_bytes if status == 413 else None
                await error_response(status, code, message, max_bytes=limit)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app while it reads the body: the app's exception
                    # handlers answer it in the error shape.
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, receive if declared is not None else limited_receive, send)
