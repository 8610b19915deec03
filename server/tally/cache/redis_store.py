"""The shared tier of the result cache: one Redis that every replica reads and writes.

Redis holds three kinds of keys under one prefix (TALLY_CACHE_PREFIX):
* `{prefix}:gen`: the shared data generation, bumped by an invalidation or a rebuild on any
  replica; it is part of every cache key, so no replica can find a result from before it;
* `{prefix}:r:{key}`: a result (Arrow IPC, compressed), with its TTL as Redis' expiry;
* `{prefix}:l:{key}`: the lease of the one replica running that query now (single flight
  across replicas), expiring by itself if the holder dies.

Redis going away must never fail a query: every call goes through `_call`, which turns a Redis
error into "unavailable" (logged once), and stops asking for `retry_seconds` so a dead Redis
costs no time per query; the first call after that probes it again and, if it answers, the
shared tier is back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("tally.cache")
T = TypeVar("T")

# Deletes a lease only if we still hold it (it may have expired and been taken by another).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Unavailable(Exception):
    """Redis did not answer (or is in its back-off after failing)."""


class RedisStore:
    def __init__(
        self,
        url: str,
        prefix: str = "tally",
        *,
        retry_seconds: float = 1.0,
        timeout_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # One immediate retry (a pooled connection that died with a restarted Redis is
            # replaced), no back-off loop: its delays would be added to queries while down.
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1),
        )
        self._release = self.client.register_script(_RELEASE)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self.last_error = ""
        self.failures = 0

    # Health -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether the last call succeeded (no I/O)."""
        return self._down_since is None

    def health(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "available": self.available,
            "prefix": self.prefix,
            **(
                {"warning": "shared cache unavailable: serving uncached", "error": self.last_error}
                if not self.available
                else {}
            ),
        }

    def _call(self, fn: Callable[[redis.Redis], T]) -> T:
        if self._down_since is not None and self.clock() < self._retry_at:
            raise Unavailable(self.last_error)
        try:
            value = fn(self.client)
        except (redis.RedisError, OSError) as e:
            with self._lock:
                self._retry_at = self.clock() + self.retry_seconds
                self.failures += 1
                if self._down_since is None:
                    self._down_since = self.clock()
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning(
                        "shared cache (Redis at %s) unavailable, serving uncached until it "
                        "returns: %s", _safe(self.url), self.last_error,
                    )
            raise Unavailable(str(e)) from None
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    log.warning(
                        "shared cache (Redis at %s) is back after %.1f s",
                        _safe(self.url), self.clock() - self._down_since,
                    )
                    self._down_since = None
                    self.last_error = ""
        return value

    # Keys ---------------------------------------------------------------------------------

    def _k(self, kind: str, key: str = "") -> str:
        return f"{self.prefix}:{kind}:{key}" if key else f"{self.prefix}:{kind}"

    def generation(self) -> str:
        value = self._call(lambda r: r.get(self._k("gen")))
        return value.decode() if value is not None else "0"

    def bump(self) -> str:
        return str(self._call(lambda r: r.incr(self._k("gen"))))

    def get(self, key: str) -> bytes | None:
        return self._call(lambda r: r.get(self._k("r", key)))

    def set(self, key: str, blob: bytes, ttl_seconds: float) -> None:
        ms = max(int(ttl_seconds * 1000), 1)
        self._call(lambda r: r.set(self._k("r", key), blob, px=ms))

    def acquire(self, key: str, token: str, lease_seconds: float) -> bool:
        ms = max(int(lease_seconds * 1000), 1)
        return bool(self._call(lambda r: r.set(self._k("l", key), token, nx=True, px=ms)))

    def release(self, key: str, token: str) -> None:
        self._call(lambda r: self._release(keys=[self._k("l", key)], args=[token], client=r))

    def leased(self, key: str) -> bool:
        return bool(self._call(lambda r: r.exists(self._k("l", key))))

    def close(self) -> None:
        self.client.close()


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
