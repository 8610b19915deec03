"""Slow bodies: a client that trickles its request body (a byte at a time, never pausing long)
must not hold a request open for longer than TALLY_BODY_TIMEOUT_SECONDS, on any route. A real
`tally serve` on loopback, a raw socket, and a small timeout so the test stays fast."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.support.mcp_clients import tally_env
from tests.support.processes import start_server, stop_server

TIMEOUT = 1.0  # the server's TALLY_BODY_TIMEOUT_SECONDS here
PAUSE = 0.2  # between two bytes: far shorter than the timeout, so no single read waits long
# Every route family that reads a body: REST, both GraphQL APIs, MCP.
ROUTES = ["/api/v1/query", "/graphql", "/api/graphql", "/mcp"]


@pytest.fixture(scope="module")
def server(warehouse, tmp_path_factory):
    served = start_server(tmp_path_factory.mktemp("slow_bodies") / "serve.log",
                          tally_env(warehouse, TALLY_BODY_TIMEOUT_SECONDS=str(TIMEOUT)),
                          flight=False)  # fmt: skip
    yield served
    stop_server(served)


def _head(path: str, port: int, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip


def _trickle(
    port: int, path: str, body: bytes, pause: float, give_up: float
) -> tuple[bytes, float]:
    """Send the headers, then the body a byte per `pause` until the server answers (or closes)
    or `give_up` seconds pass; (what the server sent, seconds from the first byte of body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as s:
        s.sendall(_head(path, port, len(body)))
        started = time.monotonic()
        received = b""
        for byte in body:
            try:
                s.sendall(bytes([byte]))
            except OSError:  # the server closed the connection after answering
                break
            s.settimeout(pause)
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                chunk = None
            if chunk is not None:
                received += chunk
                break  # the server answered (or closed: an empty chunk) before the body ended
            if time.monotonic() - started > give_up:
                return received, time.monotonic() - started
        s.settimeout(give_up)
        try:
            while chunk := s.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received, time.monotonic() - started


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize("path", ROUTES)
def test_a_trickled_body_is_cut_off_with_408(server, path):
    body = json.dumps({"query": "x" * 200}).encode()  # 200 bytes: 40 s at this pace
    raw, seconds = _trickle(server.http_port, path, body, PAUSE, give_up=8 * TIMEOUT)
    assert raw.startswith(b"HTTP/1.1 "), (path, raw[:200], seconds)
    status, answer = _status_and_body(raw)
    assert status == 408, (path, raw[:400])
    message = f"The request body did not arrive within {TIMEOUT:g} s."
    assert answer == {"error": {"code": "request_timeout", "message": message}}
    assert b"connection: close" in raw.lower()
    # Cut off once the whole-body deadline passed: not at the first pause, not at the end.
    assert TIMEOUT - PAUSE <= seconds < 4 * TIMEOUT, (path, seconds)


def test_a_slow_body_that_arrives_in_time_is_answered(server):
    body = json.dumps({"query": "{ __typename }"}).encode()
    raw, _ = _trickle(server.http_port, "/graphql", body, TIMEOUT / 2 / len(body), 10)
    status, answer = _status_and_body(raw)
    assert status == 200 and answer == {"data": {"__typename": "Query"}}, raw[:400]
