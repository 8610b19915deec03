"""What the rest of tally needs to know about a warehouse engine, as values: the `Warehouse`
interface every engine implements (SQL in, Arrow out) and the `EngineSpec` each engine module
declares (its dbt adapter type, SQL dialect, MetricFlow's engine and renderer, reserved words,
which of its errors are the caller's, its rollup spellings, its name in the dbt Semantic Layer
API, how the demo data gets into it). The implementations live in `tally.warehouse`, one
module per engine (most on `tally.warehouse.base.BaseWarehouse`), registered in
`tally.warehouse.registry`; the compiler, rollups, the dbt SL API and the demo data generator
read only the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from tally.core.rollup_dialect import RollupDialect


@runtime_checkable
class Warehouse(Protocol):
    #: sqlglot dialect of the SQL this warehouse runs ("duckdb", "postgres").
    dialect: str

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        """Run one read-only query and return its rows. Raises QueryDataError (a value or type
        in the query the warehouse refused: the caller's, when the caller wrote the values),
        QueryTimeout, WarehouseError or WarehouseUnavailable (tally.errors)."""
        ...

    def stream(self, sql: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The rows of one read-only query as record batches of at most `batch_rows`, at least
        one (of no rows when the result is empty: its columns). Errors as `execute`'s. An engine
        that cannot stream fetches the whole result and cuts it (BaseWarehouse's default)."""
        ...

    def ping(self) -> None:
        """Raise WarehouseUnavailable unless the warehouse answers a trivial query."""
        ...

    def data_version(self) -> str:
        """A token that changes whenever the data may have changed (a rebuild)."""
        ...

    def interrupt(self) -> None:
        """Stop every query running now (the server is shutting down); each raises
        WarehouseUnavailable."""
        ...

    def close(self) -> None: ...


class RollupWriter(Protocol):
    """A connection that may write, for building rollups (tally.rollups.build) and nothing
    else: the served `Warehouse` stays read-only. Driver errors are raised as WarehouseError.
    Parameters are written `?` in the SQL, whatever the driver's own style."""

    #: sqlglot dialect of the SQL it runs.
    dialect: str
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Statements inside commit together, or not at all (rolled back on an exception)."""
        ...

    def relation_bytes(self, relation: str) -> int:
        """The size of a table, as well as the engine can tell (0 when it cannot)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DemoTarget:
    """Where `tally generate --target` puts the demo's raw data (schema `raw`) on one engine.
    The generator writes a DuckDB file: straight into `file`, or into a scratch file whose
    schema raw `load` then copies into the warehouse (replacing it there)."""

    #: How the progress line names the destination ("PostgreSQL database 'test'").
    where: str
    #: The DuckDB file to generate into (DuckDB's own target); None: `load` copies.
    file: Path | None = None
    #: Copy schema raw of a DuckDB file in, saying how it goes through the callable; row
    #: counts per table.
    load: Callable[[Path, Callable[[str], None]], Mapping[str, int]] | None = None


@dataclass(frozen=True)
class EngineSpec:
    """One warehouse engine, as its module declares it."""

    #: The dbt adapter type this engine serves (a profile output's `type:`).
    adapter_type: str
    #: sqlglot dialect used to parse and write filters for this engine.
    dialect: str
    #: MetricFlow's `SqlEngine` member name and plan renderer ("module:Class") that write SQL
    #: for this engine. Names, not objects: MetricFlow is imported only by the compiler.
    metricflow_engine: str
    metricflow_renderer: str
    #: Connect from a rendered dbt profile output; relative paths resolve from project_dir.
    connect: Callable[[Mapping[str, Any], Path], Warehouse] = field(compare=False)
    #: SQL keywords MetricFlow may write as bare identifiers, quoted by the compiler.
    reserved_words: frozenset[str] = frozenset()
    #: Driver exception types that mean "the query's values or types are wrong" (a bad cast,
    #: a string compared with a number): raised as QueryDataError, the caller's mistake when
    #: the caller wrote those values. Every other driver error is a fault (WarehouseError).
    data_errors: tuple[type[BaseException], ...] = ()
    #: Other dbt adapter types whose manifests this engine can serve (same relation names).
    compatible_adapters: frozenset[str] = frozenset()
    #: How queries run: "native" (the engine's own driver), "adbc", "dbt-adapter".
    execution_path: str = "native"
    #: For a file-based engine (DuckDB): the local file a profile output serves. `tally build`
    #: builds a side copy of it and swaps it in; None: dbt builds in place.
    data_file: Callable[[Mapping[str, Any], Path], Path | None] | None = field(
        default=None, compare=False
    )
    #: Open a writing connection for rollups from a rendered profile output (for a file
    #: engine, the output's path is the file written). None: rollups are not built on it.
    rollup_writer: Callable[[Mapping[str, Any], Path], RollupWriter] | None = field(
        default=None, compare=False
    )
    #: The SQL spellings rollups are built and read with (None: no rollups on this engine;
    #: routing reads rollups wherever it has them, whichever path built them).
    rollup_dialect: RollupDialect | None = None
    #: Its member of the dbt Semantic Layer API's `SqlEngine` enum (environmentInfo.dialect:
    #: "DUCKDB", "POSTGRES", ...); None: UNKNOWN, the API has no member for it.
    semantic_layer_engine: str | None = None
    #: Where `tally generate --target` writes the demo's raw data, from a rendered profile
    #: output; it checks the warehouse answers before anything is generated. None: the demo
    #: cannot be loaded into this engine.
    demo_target: Callable[[Mapping[str, Any], Path], DemoTarget] | None = field(
        default=None, compare=False
    )
