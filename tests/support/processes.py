"""Real `tally serve` processes on loopback ports, for the tests of real clients: started with the
environment a test gives, ready when /health/ready answers, stopped gracefully, and their log
checked for tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import TALLY


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


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Until `base`/health/ready answers 200; a process that exits or a timeout fails the test
    with the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"tally serve did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def launch(log: Path, env: dict[str, str], *, flight: bool = True, clean_env: bool = False,
           args: tuple[str, ...] = ()) -> Server:
    """`tally serve` with `env` over this process's environment (without its TALLY_ variables
    when `clean_env`), on free ports; not yet ready (see wait_ready)."""
    base_env = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("TALLY_"))}
    http_port = free_port()
    flight_port = free_port() if flight else 0
    argv = [str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(http_port), *args]
    if flight:
        argv += ["--flight-port", str(flight_port)]
    process = subprocess.Popen(argv, env={**base_env, **env}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{http_port}",
                  f"grpc://127.0.0.1:{flight_port}" if flight else "", "127.0.0.1", http_port,
                  flight_port, process, log)


def start_server(log: Path, env: dict[str, str], *, flight: bool = True,
                 clean_env: bool = False, ready_timeout: float = 120.0,
                 args: tuple[str, ...] = ()) -> Server:
    """launch(), then wait until it is ready."""
    server = launch(log, env, flight=flight, clean_env=clean_env, args=args)
    wait_ready(server.http, server.process, log, ready_timeout)
    return server


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


def create_key(project: Path, env: dict[str, str], name: str,
               claims: dict | None = None) -> str:
    """An API key made as an operator makes one (`tally keys create`), for `project`."""
    argv = [str(TALLY), "keys", "create", name, "--scopes", "meta,query,sql",
            "--project-dir", str(project)]
    if claims:
        argv += ["--claims", json.dumps(claims)]
    made = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[1].strip()
    assert key.startswith("tk_"), made.stdout
    return key


def wait_port(port: int, server: Server, timeout: float = 60.0) -> None:
    """Until something listens on 127.0.0.1:port (a server's second protocol); a server that
    exits or a timeout fails the test with the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nothing listens on port {port}:\n{server.log.read_text()[-3000:]}")
            time.sleep(0.2)
