"""Redis for the tests: the machine's server (127.0.0.1:6379, or TALLY_TEST_REDIS_URL) with a
key prefix of its own per test, and `RedisProcess`, a `redis-server` a test starts on a free
port of its own to stop and restart (the machine's server is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.processes import free_port


def _missing(reason: str) -> None:
    """A missing service fails in CI (CI=true) and skips with the reason elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(reason)


def machine_redis_url() -> str:
    """The machine's Redis, checked to answer."""
    import redis

    url = os.environ.get("TALLY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as e:
        _missing(f"no Redis at {url} on this machine: {e}")
    return url


def unique_prefix() -> str:
    return f"tally-test-{uuid.uuid4().hex[:12]}"


@contextmanager
def clean_prefix(url: str) -> Iterator[str]:
    """A prefix no other run uses; its keys are deleted afterwards."""
    import redis

    prefix = unique_prefix()
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class RedisProcess:
    """A private redis-server (no persistence) on a loopback port, stopped and restarted on
    the same port by the test."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            _missing("no redis-server binary on this machine")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        assert self.binary is not None
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
