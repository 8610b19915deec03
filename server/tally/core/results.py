"""What the service returns: a query's result (an Arrow table, its SQL, timings and cache
status) as frozen dataclasses, and the type normalization every warehouse's rows go through."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from tally.core.grains import DATE_SUFFIXES
from tally.core.request import QueryRequest


@dataclass(frozen=True)
class Timing:
    compile_ms: float
    execute_ms: float
    total_ms: float


@dataclass(frozen=True)
class CacheStatus:
    hit: bool
    age_seconds: float = 0.0
    ttl_seconds: float = 0.0
    key: str = ""
    shared: bool = False  # waited on an identical in-flight query instead of running it
    # The key plus this request's column and row order: what one representation of the
    # result is made of (an entry serves requests that differ only in order).
    variant: str = ""
    # Served from an older answer because the warehouse failed (stale-if-error).
    stale: bool = False

    @property
    def outcome(self) -> str:
        """hit (served from a stored result), shared (took the result of an identical query in
        flight), miss (ran on the warehouse) or stale (the warehouse failed; an older answer)."""
        if self.stale:
            return "stale"
        return "hit" if self.hit else ("shared" if self.shared else "miss")


@dataclass(frozen=True)
class RollupStatus:
    """Which rollup answered (its saved query's name; None: the source tables did), and for
    each other rollup the first reason it could not."""

    used: str | None
    misses: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict:
        return {
            "used": self.used,
            "misses": [{"rollup": r, "reason": why} for r, why in self.misses],
        }


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    sql: str
    request: QueryRequest
    timing: Timing
    cache: CacheStatus
    manifest_version: str
    # Per cache entry scratch space where encoders keep what they derived from `table`.
    memo: dict | None = field(default=None, compare=False, repr=False)
    rollup: RollupStatus | None = None


def values_only(result: QueryResult) -> QueryResult:
    """A dimension-values result: the query's first column (the dimension) only."""
    return replace(result, table=result.table.select([0]), memo=None)


def normalize_types(table: pa.Table) -> pa.Table:
    """Types that say what the values are, whatever the engine:
    * time columns at day grain or coarser come back from some engines as timestamps at
      midnight; they are dates (JSON and CSV say 2025-01-01, not 2025-01-01T00:00:00);
    * counts come back from DuckDB as decimal(38, 0) (SUM over integers is a HUGEINT); they are
      integers. Kept as decimals if a value would not fit in 64 bits;
    * a ratio over a zero denominator can be inf or NaN on some engines: it has no value, so it
      is null, in every format (JSON has no inf, and CSV and Arrow say the same as JSON)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_floating(f.type):
            column = table.column(i)
            if pc.any(pc.invert(pc.is_finite(column))).as_py():
                finite = pc.if_else(pc.is_finite(column), column, pa.scalar(None, f.type))
                table = table.set_column(i, f.name, finite)
            continue
        if pa.types.is_timestamp(f.type) and f.name.endswith(DATE_SUFFIXES) and f.type.tz is None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.date32()))
        elif pa.types.is_decimal(f.type) and f.type.scale == 0:
            with contextlib.suppress(pa.ArrowInvalid):
                table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table
