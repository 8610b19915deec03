"""Attack class: holding the server's connections, memory and log from outside.

Found by the adversarial pass on real servers: GET /mcp opened an event stream that never
closed (about 20,000 of them exhausted the server's descriptors); anonymous clients could make
the server buffer a body of up to a MiB per connection before refusing them (a thousand
connections held a GiB), and clients leaving in the middle of a body wrote a traceback each
(a thousand in 0.08 s wrote 100,000 log lines). Now /mcp answers GET and DELETE 405 at once, a
request with a body is authenticated from its headers before any of the body is read, a
client that leaves is logged in one line at debug, and the server serves at most
TALLY_MAX_CONNECTIONS at once (503 beyond)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import start_server, stop_server


@pytest.fixture(scope="module")
def servers(secured, warehouse, tmp_path_factory):
    """A secured server, and an open one (loopback, no authentication) on the same data."""
    base = {"TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
            "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path)}
    root = tmp_path_factory.mktemp("connections")
    open_project = root / "open"
    open_project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        (open_project / name).write_text((secured.project_dir / name).read_text())
    secured_server = start_server(root / "secured.log", {
        **base, "TALLY_PROJECT_DIR": str(secured.project_dir),
        "TALLY_JWT_SECRET": secured.jwt_secret}, flight=False, clean_env=True)
    open_server = start_server(root / "open.log", {**base, "TALLY_PROJECT_DIR": str(open_project)},
                               flight=False, clean_env=True)
    yield secured_server, open_server
    stop_server(secured_server)
    stop_server(open_server)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def test_mcp_opens_no_event_stream(servers, secured):
    secured_server, _ = servers
    for method in ("GET", "DELETE"):
        started = time.monotonic()
        r = httpx.request(method, f"{secured_server.http}/mcp", timeout=10,
                          headers={"authorization": f"Bearer {secured.keys['reader']}",
                                   "accept": "text/event-stream"})
        assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
        assert r.json()["error"]["code"] == "method_not_allowed"
        assert time.monotonic() - started < 5  # answered, not held open


def test_an_anonymous_body_is_refused_before_it_is_read(servers):
    """Each connection announces a MiB of body and sends a few bytes: refused at once (401),
    none of the body buffered."""
    secured_server, _ = servers
    before = _rss(secured_server.process.pid)
    sockets = []
    try:
        for _ in range(200):
            s = _connect(secured_server)
            s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 1048000\r\n\r\n{\"metrics\": [")
            sockets.append(s)
        answers = [s.recv(4096) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 401") for a in answers), answers[0][:200]
    assert _rss(secured_server.process.pid) - before < 50 * 2**20
    r = httpx.get(f"{secured_server.http}/health/live", timeout=10)
    assert r.status_code == 200


def test_clients_that_leave_mid_body_write_no_traceback(servers):
    _, open_server = servers
    for _ in range(50):
        s = _connect(open_server)
        s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                  b"\r\nContent-Length: 5000\r\n\r\n{\"metrics\": [\"rev")
        s.close()
    time.sleep(1)
    assert httpx.get(f"{open_server.http}/health/live", timeout=10).status_code == 200
    log = open_server.log.read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log


def test_connections_beyond_the_cap_are_503_at_once(secured, warehouse, tmp_path):
    server = start_server(tmp_path / "capped.log", {
        "TALLY_PROJECT_DIR": str(secured.project_dir), "TALLY_JWT_SECRET": secured.jwt_secret,
        "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
        "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path), "TALLY_MAX_CONNECTIONS": "6",
        "TALLY_BODY_TIMEOUT_SECONDS": "20"}, flight=False, clean_env=True)
    token = secured.keys["reader"].encode()
    held, refused = [], None
    try:
        for _ in range(10):  # authenticated requests whose bodies trickle: each holds a place
            s = _connect(server)
            s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token
                      + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            s.settimeout(1.0)
            try:
                refused = s.recv(200)  # answered at once: the server is full
                break
            except TimeoutError:
                held.append(s)  # still reading its body: holding a place
        assert refused is not None and refused.startswith(b"HTTP/1.1 503"), refused
        assert 0 < len(held) < 6
        r = httpx.get(f"{server.http}/health/live", timeout=10)
        assert r.status_code == 503  # full, for everyone, at once
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)
    r = httpx.get(f"{server.http}/api/v1/metrics", timeout=10,
                  headers={"authorization": f"Bearer {secured.keys['reader']}"})
    assert r.status_code == 200, r.text  # room again once they are gone
    stop_server(server)
