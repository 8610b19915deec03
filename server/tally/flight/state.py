"""What the Flight SQL server keeps between calls, each bounded in count and time and owned by
the caller who made it: results waiting for their DoGet, prepared statements, and sessions
(their options; a session is named by the `arrow_flight_session_id` cookie the ADBC driver
sends back).

Every store gives each owner a share: an owner over its share (in entries, or in bytes for
the results, which hold whole query results in memory) loses its own oldest entries, never
another owner's, so no caller can make another's pending result disappear. A global bound
holds too; when many owners fill it, the owner holding the most loses its oldest entry (no
owner is ever pushed below the others by the store being full)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tally.core.caller import Caller
from tally.errors import ResultTooLarge

V = TypeVar("V")
Owner = tuple[str | None, tuple[tuple[str, str], ...]]


def owner_of(caller: Caller) -> Owner:
    return (caller.subject, caller.access)


@dataclass(frozen=True)
class Bounds:
    """At most `entries` in all and `entries_per_owner` of one owner; when the store weighs its
    values, at most `bytes` in all and `bytes_per_owner` of one owner."""

    entries: int
    entries_per_owner: int
    bytes: int | None = None
    bytes_per_owner: int | None = None


@dataclass
class _Entry(Generic[V]):
    value: V
    owner: Owner
    expires: float
    size: int


@dataclass
class _Holding:
    """One owner's entries, oldest first, and their bytes."""

    handles: OrderedDict[bytes, None]
    size: int = 0


class Store(Generic[V]):
    """A thread-safe map from random handles to values, each kept `ttl` seconds after its last
    use, within `bounds` (see the module's docstring); a handle of another owner is absent.
    `weigh` gives a value's bytes (for the bounds in bytes)."""

    def __init__(self, ttl: float, bounds: Bounds, weigh: Callable[[V], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.bounds, self.clock = ttl, bounds, clock
        self._weigh = weigh
        self._entries: OrderedDict[bytes, _Entry[V]] = OrderedDict()
        self._owners: dict[Owner, _Holding] = {}
        self._size = 0
        self._lock = threading.Lock()

    def put(self, value: V, owner: Owner) -> bytes:
        """Store under a new random handle (returned)."""
        handle = secrets.token_bytes(16)
        self.put_new(handle, value, owner)
        return handle

    def put_new(self, handle: bytes, value: V, owner: Owner) -> bool:
        """Store under a handle the caller chose, unless anything is stored under it. Raises
        ResultTooLarge for a value heavier than one owner may hold."""
        size = self._weigh(value) if self._weigh is not None else 0
        limit = self._owner_bytes()
        if limit is not None and size > limit:
            raise ResultTooLarge(
                f"This result is {size:,} bytes; a caller's results waiting for their DoGet may "
                f"hold at most {limit:,}: ask for fewer rows or columns, or export it whole "
                "(POST /api/v1/exports).", bytes=size, limit=limit,
            )
        with self._lock:
            self._sweep()
            if handle in self._entries:
                return False
            self._entries[handle] = _Entry(value, owner, self.clock() + self.ttl, size)
            holding = self._owners.setdefault(owner, _Holding(OrderedDict()))
            holding.handles[handle] = None
            holding.size += size
            self._size += size
            self._within_share(owner, handle)
            self._within_total(handle)
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
            self._drop(handle)
            return entry.value

    def remove_where(self, test: Callable[[V], bool]) -> None:
        with self._lock:
            for handle in [h for h, e in self._entries.items() if test(e.value)]:
                self._drop(handle)

    def __len__(self) -> int:
        return len(self._entries)

    def held(self, owner: Owner) -> tuple[int, int]:
        """(entries, bytes) the owner holds now."""
        with self._lock:
            holding = self._owners.get(owner)
            return (len(holding.handles), holding.size) if holding else (0, 0)

    def _owner_bytes(self) -> int | None:
        limits = [b for b in (self.bounds.bytes, self.bounds.bytes_per_owner) if b is not None]
        return min(limits) if limits else None

    def _within_share(self, owner: Owner, keep: bytes) -> None:
        """The owner's oldest entries dropped until it is within its share (never `keep`)."""
        holding = self._owners[owner]
        per_bytes = self.bounds.bytes_per_owner
        while len(holding.handles) > self.bounds.entries_per_owner or (
            per_bytes is not None and holding.size > per_bytes
        ):
            oldest = next(h for h in holding.handles if h != keep)
            self._drop(oldest)

    def _within_total(self, keep: bytes) -> None:
        """While the store is over a global bound: the oldest entry of the owner holding the
        most (by the bound exceeded) is dropped, never `keep`."""
        total_bytes = self.bounds.bytes
        while True:
            by_count = len(self._entries) > self.bounds.entries
            if not by_count and (total_bytes is None or self._size <= total_bytes):
                return
            candidates = [h for h in self._owners.values() if any(k != keep for k in h.handles)]
            heaviest = max(candidates, key=lambda h: len(h.handles) if by_count else h.size)
            self._drop(next(h for h in heaviest.handles if h != keep))

    def _drop(self, handle: bytes) -> None:
        entry = self._entries.pop(handle)
        holding = self._owners[entry.owner]
        del holding.handles[handle]
        holding.size -= entry.size
        self._size -= entry.size
        if not holding.handles:
            del self._owners[entry.owner]

    def _sweep(self) -> None:
        now = self.clock()
        for handle in [h for h, e in self._entries.items() if e.expires <= now]:
            self._drop(handle)


@dataclass
class Prepared:
    query: str
    session: bytes | None


@dataclass
class Session:
    options: dict[str, Any]


class ServerState:
    def __init__(self, results: Bounds, prepared: Bounds, sessions: Bounds,
                 result_ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.results: Store[Any] = Store(result_ttl, results, weigh=lambda t: t.nbytes,
                                         clock=clock)
        self.prepared: Store[Prepared] = Store(3600.0, prepared, clock=clock)
        self.sessions: Store[Session] = Store(3600.0, sessions, clock=clock)

    def close_session(self, session: bytes, owner: Owner) -> bool:
        if self.sessions.pop(session, owner) is None:
            return False
        self.prepared.remove_where(lambda p: p.session == session)
        return True
