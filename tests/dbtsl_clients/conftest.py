"""A real `tally serve` with Flight SQL, on loopback ports, for the tests of the dbt Semantic
Layer's real clients: its published SDK (in its own virtualenv, made by `make sdk-venv`) and the
ADBC Flight SQL driver. The server serves a copy of the session warehouse; hand-written SQL runs
on the original (the `raw` fixture)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import PROJECT_DIR, ROOT

TALLY = Path(sys.executable).parent / "tally"
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    http: str  # http://127.0.0.1:port
    flight: str  # grpc://127.0.0.1:port
    host: str
    http_port: int
    flight_port: int
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None and httpx.get(
            f"{self.http}/health/live", timeout=5).status_code == 200


def start_server(warehouse, root: Path, **env: str) -> Server:
    served = root / "served" / "warehouse.duckdb"
    served.parent.mkdir(parents=True)
    shutil.copy(warehouse.duckdb_path, served)
    http_port, flight_port = free_port(), free_port()
    log = root / "server.log"
    environment = {**os.environ, "TALLY_DUCKDB_PATH": str(served),
                   "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
                   "TALLY_PROJECT_DIR": str(PROJECT_DIR), **env}
    process = subprocess.Popen(
        [str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(http_port),
         "--flight-port", str(flight_port)],
        env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 90
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
    return Server(base, f"grpc://127.0.0.1:{flight_port}", "127.0.0.1", http_port, flight_port,
                  process, log)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def sl_server(warehouse, tmp_path_factory) -> Iterator[Server]:
    server = start_server(warehouse, tmp_path_factory.mktemp("sl_server"))
    yield server
    stop_server(server)
    text = server.log.read_text()
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The SDK's own interpreter. Missing: a failure in CI (make test creates it), a skip
    elsewhere, saying how to create it."""
    if SDK_PYTHON.exists():
        return SDK_PYTHON
    if os.environ.get("CI") == "true":
        pytest.fail(f"{SDK_PYTHON} is missing: `make sdk-venv` creates it (make test does).")
    pytest.skip(f"no {SDK_PYTHON}: run `make sdk-venv` to test the dbt Semantic Layer SDK")
