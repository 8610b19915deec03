"""Query shapes in a SQLite file (<project>/.tally/history.sqlite by default).

A shape is the request as asked (metrics, group-bys, filters, order, limit, saved query, time
range), never the caller's credentials or row-level policy filters (the service adds those) and
never a result. Shapes asked by a caller restricted by a policy are recorded as `restricted`:
warming replays only unrestricted shapes, because a warm entry made for no one in particular
could never be a hit for a restricted caller (their access context is part of the cache key).

Recording is on the query path, so it only appends to a buffer; a background thread (and every
read) writes the buffer in one transaction. Bounded: at most `max_shapes` shapes (the least
recently seen go first), the last 100 durations per shape, hourly counts for 7 days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.core.caller import Caller
from tally.core.filters import StructuredFilter
from tally.core.request import QueryRequest
from tally.core.results import QueryResult

HISTORY_FILE = ".tally/history.sqlite"
DURATIONS_KEPT = 100
HOURS_KEPT = 24 * 7
ROLLUP_MIN_COUNT = 10
ROLLUP_MIN_P95_MS = 250.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shapes (
    key TEXT PRIMARY KEY, request TEXT NOT NULL, restricted INTEGER NOT NULL,
    count INTEGER NOT NULL, hits INTEGER NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, durations TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hourly (
    key TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (key, hour)
);
"""


def shape_of(request: QueryRequest) -> dict[str, Any]:
    where = [w if isinstance(w, str) else _filter(w) for w in request.where]
    return {"metrics": list(request.metrics), "group_by": list(request.group_by),
            "where": where, "order_by": list(request.order_by), "limit": request.limit,
            "saved_query": request.saved_query,
            "start": request.start.isoformat() if request.start else None,
            "end": request.end.isoformat() if request.end else None}  # fmt: skip


def request_of(shape: dict[str, Any]) -> QueryRequest:
    return QueryRequest.create(**shape)


def _filter(f: StructuredFilter) -> dict[str, Any]:
    out: dict[str, Any] = {"dimension": f.dimension, "op": f.op, "values": list(f.values)}
    if f.grain:
        out["grain"] = f.grain
    return out


@dataclass(frozen=True)
class ShapeStats:
    key: str
    request: dict[str, Any]
    restricted: bool
    count: int
    count_24h: int
    last_seen: str
    median_ms: float
    p95_ms: float
    cache_hit_ratio: float

    @property
    def rollup_candidate(self) -> bool:
        """A saved query asked often (ROLLUP_MIN_COUNT times) whose answers are slow
        (p95 >= ROLLUP_MIN_P95_MS) or mostly not from cache: precomputing it as a rollup
        would pay."""
        return bool(self.request.get("saved_query")) and self.count >= ROLLUP_MIN_COUNT and (
            self.p95_ms >= ROLLUP_MIN_P95_MS or self.cache_hit_ratio < 0.5
        )

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "request": self.request, "restricted": self.restricted,
                "count": self.count, "count_24h": self.count_24h, "last_seen": self.last_seen,
                "median_ms": self.median_ms, "p95_ms": self.p95_ms,
                "cache_hit_ratio": self.cache_hit_ratio,
                "rollup_candidate": self.rollup_candidate}  # fmt: skip


class QueryHistory:
    def __init__(self, path: Path, max_shapes: int = 1000, flush_seconds: float = 2.0,
                 clock=time.time) -> None:  # fmt: skip
        self.path = path
        self.max_shapes = max_shapes
        self.clock = clock
        self._buffer: list[tuple[str, str, bool, bool, float, float]] = []
        self._lock = threading.Lock()  # the buffer
        self._db_lock = threading.Lock()  # the connection
        path.parent.mkdir(parents=True, exist_ok=True)
        # Several servers of one project may share the file: wait for each other's writes.
        self._db = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_seconds > 0:
            self._thread = threading.Thread(target=self._loop, args=(flush_seconds,),
                                            name="tally-history", daemon=True)  # fmt: skip
            self._thread.start()

    # Recording (the query path) -------------------------------------------------------------
    def observe(self, request: QueryRequest, caller: Caller, result: QueryResult) -> None:
        """A Telemetry observer: one answered query."""
        shape = json.dumps(shape_of(request), sort_keys=True, default=str)
        key = hashlib.sha256(shape.encode()).hexdigest()[:16]
        restricted = bool(caller.access) or caller.grant is not None
        hit = result.cache.outcome in ("hit", "shared")
        with self._lock:
            self._buffer.append((key, shape, restricted, hit, result.timing.total_ms,
                                 self.clock()))  # fmt: skip

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        with self._db_lock, self._db:
            for key, shape, restricted, hit, ms, at in batch:
                row = self._db.execute("SELECT durations FROM shapes WHERE key = ?",
                                       (key,)).fetchone()  # fmt: skip
                durations = [*json.loads(row[0]), round(ms, 3)][-DURATIONS_KEPT:] if row \
                    else [round(ms, 3)]  # fmt: skip
                if row:
                    self._db.execute(
                        "UPDATE shapes SET count = count + 1, hits = hits + ?, last_seen = ?, "
                        "durations = ?, restricted = max(restricted, ?) WHERE key = ?",
                        (int(hit), at, json.dumps(durations), int(restricted), key),
                    )
                else:
                    self._db.execute(
                        "INSERT INTO shapes VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                        (key, shape, int(restricted), int(hit), at, at, json.dumps(durations)),
                    )
                self._db.execute(
                    "INSERT INTO hourly VALUES (?, ?, 1) ON CONFLICT (key, hour) "
                    "DO UPDATE SET count = count + 1", (key, int(at // 3600)),
                )  # fmt: skip
            now_hour = int(self.clock() // 3600)
            self._db.execute("DELETE FROM hourly WHERE hour < ?", (now_hour - HOURS_KEPT,))
            self._db.execute(
                "DELETE FROM shapes WHERE key NOT IN (SELECT key FROM shapes "
                "ORDER BY last_seen DESC LIMIT ?)", (self.max_shapes,),
            )  # fmt: skip
            self._db.execute("DELETE FROM hourly WHERE key NOT IN (SELECT key FROM shapes)")

    def _loop(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            # A full disk must not stop the server: try again later.
            with contextlib.suppress(sqlite3.Error):
                self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()
        with self._db_lock:
            self._db.close()

    # Reading ---------------------------------------------------------------------------------
    def shapes(self, order: str = "frequent", limit: int = 20, hours: float | None = None,
               unrestricted_only: bool = False) -> list[ShapeStats]:  # fmt: skip
        """Shapes by `frequent` (count in the window, else overall) or `slow` (p95)."""
        self.flush()
        window = min(hours or 24, HOURS_KEPT)  # nothing older is kept anyway
        since_hour = int((self.clock() - window * 3600) // 3600)
        with self._db_lock:
            rows = self._db.execute(
                "SELECT s.key, s.request, s.restricted, s.count, s.hits, s.last_seen, "
                "s.durations, coalesce(sum(h.count), 0) FROM shapes s LEFT JOIN hourly h "
                "ON h.key = s.key AND h.hour >= ? GROUP BY s.key", (since_hour,),
            ).fetchall()  # fmt: skip
        stats = [_stats(r) for r in rows if not (unrestricted_only and r[2])]
        if hours is not None:
            stats = [s for s in stats if s.count_24h > 0]
        if order == "slow":
            stats.sort(key=lambda s: (-s.p95_ms, s.key))
        else:
            key = (lambda s: (-s.count_24h, -s.count, s.key)) if hours is not None \
                else (lambda s: (-s.count, s.key))  # fmt: skip
            stats.sort(key=key)
        return stats[:limit]


def _stats(row: tuple) -> ShapeStats:
    key, request, restricted, count, hits, last_seen, durations, recent = row
    ms = sorted(json.loads(durations))
    p95 = ms[min(len(ms) - 1, max(0, round(0.95 * len(ms) + 0.5) - 1))]
    seen = dt.datetime.fromtimestamp(last_seen, dt.UTC).isoformat(timespec="seconds")
    return ShapeStats(key, json.loads(request), bool(restricted), count, recent, seen,
                      round(statistics.median(ms), 3), round(p95, 3),
                      round(hits / count, 3) if count else 0.0)  # fmt: skip
