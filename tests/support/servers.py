"""A real `tally serve` process on a loopback port, over a copy of the session warehouse (the
server may hold the file; hand-written SQL reads the original), stopped with SIGTERM and its
log checked for tracebacks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import PROJECT_DIR, TALLY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    url: str  # http://127.0.0.1:port
    process: subprocess.Popen
    log: Path

    def stop(self) -> str:
        """Stop it; its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


def start_tally(warehouse, root: Path, project_dir: Path = PROJECT_DIR,
                **env: str) -> RunningServer:  # fmt: skip
    served = root / "served" / "warehouse.duckdb"
    served.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(warehouse.duckdb_path, served)
    port = free_port()
    log = root / "server.log"
    environment = {**os.environ, "TALLY_DUCKDB_PATH": str(served),
                   "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
                   "TALLY_PROJECT_DIR": str(project_dir), **env}  # fmt: skip
    process = subprocess.Popen(
        [str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return RunningServer(url, process, log)
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"tally serve did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
