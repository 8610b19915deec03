"""Real receivers on loopback for notifications: a webhook endpoint (an HTTP server that checks
HMAC-SHA256 signatures and can fail on purpose) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    signature_ok: bool

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.payload["event"]


@dataclass
class WebhookReceiver:
    url: str
    secret: bytes
    deliveries: list[Delivery] = field(default_factory=list)
    # Statuses to answer, in order, before answering 200 (e.g. [500, 500] fails twice).
    fail_with: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, event: str | None = None) -> list[Delivery]:
        """Deliveries answered 2xx (the ones a subscriber acted on), in arrival order."""
        with self.lock:
            return [d for d in self.deliveries
                    if d.status < 300 and (event is None or d.event == event)]  # fmt: skip

    def events(self) -> list[str]:
        return [d.event for d in self.accepted()]


def _verify(secret: bytes, headers: dict[str, str], body: bytes) -> bool:
    """What a subscriber does: recompute HMAC-SHA256 over `<timestamp>.<body>`, compare in
    constant time."""
    timestamp = headers.get("x-tally-timestamp", "")
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()  # fmt: skip
    return hmac.compare_digest(expected, headers.get("x-tally-signature", ""))


@contextmanager
def webhook_receiver(secret: bytes = b"test-webhook-secret") -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                status = receiver.fail_with.pop(0) if receiver.fail_with else 200
                receiver.deliveries.append(
                    Delivery(headers, body, status, _verify(receiver.secret, headers, body))
                )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hook", secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd's SMTP server on a free loopback port, keeping every message it receives."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox("127.0.0.1", port)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            box.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
