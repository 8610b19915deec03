"""What the Flight SQL server keeps between calls, each bounded in count and time and owned by
the caller who made it: results waiting for their DoGet, prepared statements, and sessions
(their options; a session is named by the `arrow_flight_session_id` cookie the ADBC driver
sends back)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tally.core.caller import Caller

V = TypeVar("V")
Owner = tuple[str | None, tuple[tuple[str, str], ...]]


def owner_of(caller: Caller) -> Owner:
    return (caller.subject, caller.access)


@dataclass
class _Entry(Generic[V]):
    value: V
    owner: Owner
    expires: float


class Store(Generic[V]):
    """A thread-safe map from random handles to values, each kept `ttl` seconds after its last
    use, at most `max_entries` (the oldest go first); a handle of another owner is absent."""

    def __init__(self, ttl: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._entries: OrderedDict[bytes, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, value: V, owner: Owner) -> bytes:
        """Store under a new random handle (returned)."""
        handle = secrets.token_bytes(16)
        self.put_new(handle, value, owner)
        return handle

    def put_new(self, handle: bytes, value: V, owner: Owner) -> bool:
        """Store under a handle the caller chose, unless anything is stored under it."""
        with self._lock:
            self._sweep()
            if handle in self._entries:
                return False
            self._entries[handle] = _Entry(value, owner, self.clock() + self.ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True

    def get(self, handle: bytes, owner: Owner) -> V | None:
        with self._lock:
            self._sweep()
            entry = self._entries.get(handle)
            if entry is None or entry.owner != owner:
                return None
            entry.expires = self.clock() + self.ttl
            return entry.value

    def pop(self, handle: bytes, owner: Owner) -> V | None:
        with self._lock:
            self._sweep()
            entry = self._entries.get(handle)
            if entry is None or entry.owner != owner:
                return None
            del self._entries[handle]
            return entry.value

    def remove_where(self, test: Callable[[V], bool]) -> None:
        with self._lock:
            for handle in [h for h, e in self._entries.items() if test(e.value)]:
                del self._entries[handle]

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self) -> None:
        now = self.clock()
        for handle in [h for h, e in self._entries.items() if e.expires <= now]:
            del self._entries[handle]


@dataclass
class Prepared:
    query: str
    session: bytes | None


@dataclass
class Session:
    options: dict[str, Any]


class ServerState:
    def __init__(self, result_ttl: float = 300.0) -> None:
        self.results: Store[Any] = Store(result_ttl, 256)
        self.prepared: Store[Prepared] = Store(3600.0, 10_000)
        self.sessions: Store[Session] = Store(3600.0, 10_000)

    def close_session(self, session: bytes, owner: Owner) -> bool:
        if self.sessions.pop(session, owner) is None:
            return False
        self.prepared.remove_where(lambda p: p.session == session)
        return True
