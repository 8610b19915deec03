"""A real `tally serve` on a free loopback port over the demo project, for the benches that
measure through HTTP: started, waited for until ready, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TALLY = ROOT / ".venv" / "bin" / "tally"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tally_serve(env: dict[str, str] | None = None, ready_timeout: float = 60.0) -> Iterator[str]:
    """The server's base URL, once /health/ready answers; `env` over this process's
    environment (the project: the repository's dbt_project unless it says otherwise)."""
    with tally_serve_process(env, ready_timeout) as (base, _):
        yield base


@contextmanager
def tally_serve_process(
    env: dict[str, str] | None = None, ready_timeout: float = 60.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """tally_serve, with the server's process (to read its memory)."""
    port = free_port()
    environment = {**os.environ, "TALLY_PROJECT_DIR": str(ROOT / "dbt_project"), **(env or {})}
    proc = subprocess.Popen([str(TALLY), "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tally serve did not become ready (exit code {proc.poll()})")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(30)
