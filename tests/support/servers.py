"""Real `tally serve` processes on loopback ports, for tests that need several (replicas)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.support.paths import TALLY
from tests.support.redis import free_port


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    base_url: str
    log_path: Path
    log: IO[str]

    def tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text()[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_servers(env: dict[str, str], count: int, log_dir: Path,
                  timeout: float = 90) -> list[ServerProcess]:
    """`count` servers started at once (they build their engines in parallel), each ready."""
    servers = []
    for i in range(count):
        port = free_port()
        log_path = log_dir / f"server-{i}.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [str(TALLY), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        servers.append(ServerProcess(proc, f"http://127.0.0.1:{port}", log_path, log))
    deadline = time.monotonic() + timeout
    for server in servers:
        while True:
            try:
                if httpx.get(f"{server.base_url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.proc.poll() is not None or time.monotonic() > deadline:
                tail = server.tail()
                for s in servers:
                    s.stop()
                raise RuntimeError(f"tally serve did not become ready:\n{tail}")
            time.sleep(0.2)
    return servers


def prometheus_value(text: str, name: str) -> float:
    """One sample of a Prometheus text exposition (counters carry a _total suffix)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        if metric in (name, f"{name}_total"):
            return float(value)
    raise KeyError(name)
