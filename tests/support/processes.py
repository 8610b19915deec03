"""Real `tally serve` processes on loopback ports, for the tests of real clients: started with the
environment a test gives, ready when /health/ready answers, stopped gracefully, and their log
checked for tracebacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TALLY = Path(sys.executable).parent / "tally"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    http: str  # http://127.0.0.1:port
    flight: str  # grpc://127.0.0.1:port ("" without Flight SQL)
    host: str
    http_port: int
    flight_port: int
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None and httpx.get(
            f"{self.http}/health/live", timeout=5).status_code == 200


def start_server(log: Path, env: dict[str, str], *, flight: bool = True,
                 clean_env: bool = False, ready_timeout: float = 120.0) -> Server:
    """`tally serve` with `env` over this process's environment (without its TALLY_ variables
    when `clean_env`), on free ports, once it is ready."""
    base_env = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("TALLY_"))}
    http_port = free_port()
    flight_port = free_port() if flight else 0
    args = [str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(http_port)]
    if flight:
        args += ["--flight-port", str(flight_port)]
    process = subprocess.Popen(args, env={**base_env, **env}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"tally serve did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return Server(base, f"grpc://127.0.0.1:{flight_port}" if flight else "", "127.0.0.1",
                  http_port, flight_port, process, log)


def stop_server(server: Server, *, check_log: bool = True) -> None:
    """Terminate (SIGTERM, then SIGKILL after 30 s); the log must hold no traceback."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    if check_log:
        text = server.log.read_text()
        assert "Traceback" not in text, text[-3000:]
