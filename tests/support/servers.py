"""Real `tally serve` processes on loopback ports, for tests that need several (replicas)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.processes import launch, wait_ready


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
    launched = [launch(log_dir / f"server-{i}.log", env, flight=False) for i in range(count)]
    servers = [ServerProcess(s.process, s.http, s.log, s.log.open()) for s in launched]
    try:
        for server in servers:
            wait_ready(server.base_url, server.proc, server.log_path, timeout)
    except BaseException:
        for s in servers:
            s.stop()
        raise
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
