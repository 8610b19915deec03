"""`SqlSession`: one SQL connection's state (its caller, settings, transaction flag) and the
one entry point every SQL transport calls: `execute(text, params)` answers one statement.

A statement is one of: a session command (SET, SHOW, BEGIN/COMMIT/ROLLBACK, DISCARD, ...)
answered here; a write or DDL, refused (25006); a query over `pg_catalog` /
`information_schema` (or with no table at all), answered from the emulated catalog
(pg_catalog.py); or a query over tally's tables, whose SELECTs over them run as metric queries
through the service (translate.py) and whose outer layers run over their results only, in the
sandboxed DuckDB of the caller's catalog."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from tally.core.caller import Caller
from tally.core.cancel import CancelScope, cancel_scope
from tally.errors import QueryCancelled, ResultTooLarge
from tally.service import TallyService
from tally.sql import pgtypes
from tally.sql.catalog import Catalogs, SqlCatalog
from tally.sql.errors import (
    InvalidParameter,
    NumericOutOfRange,
    ReadOnly,
    SqlError,
    SqlSyntaxError,
    UndefinedColumn,
    UndefinedFunction,
    UndefinedObject,
    UndefinedTable,
    Unsupported,
)
from tally.sql.pg_catalog import DATABASE, SERVER_VERSION, VERSION, CatalogDatabase
from tally.sql.pgtypes import PgType
from tally.sql.translate import (
    MetricSelect,
    identifier,
    like_escapes,
    pg_column_name,
    table_name,
    translate_select,
)

MAX_STATEMENT = 200_000
BATCH_ROWS = 8_192
_WRITE = re.compile(
    r"^\s*(insert|update|delete|merge|create|drop|alter|truncate|copy|grant|revoke|vacuum|"
    r"analyze|cluster|reindex|comment|lock|refresh|call|do|import|load|install|attach|"
    r"detach|export|checkpoint|pragma|security|reassign|notify|listen)\b", re.IGNORECASE)
_DENIED_FUNCTIONS = {"read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto",
                     "read_text", "read_blob", "glob", "parquet_scan", "sniff_csv",
                     "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_import",
                     "lo_export", "dblink", "query_table", "query", "getenv", "sqlite_scan",
                     "postgres_scan", "iceberg_scan", "delta_scan", "read_xlsx", "http_get"}
_TABLE_FUNCTIONS = {"unnest", "generate_series", "exploding_generate_series",
                    "generate_subscripts", "pg_get_keywords",
                    "explode", "range"}
DEFAULTS = {
    "server_version": SERVER_VERSION, "server_version_num": "160000",
    "server_encoding": "UTF8", "client_encoding": "UTF8", "datestyle": "ISO, MDY",
    "timezone": "UTC", "integer_datetimes": "on", "standard_conforming_strings": "on",
    "intervalstyle": "postgres", "is_superuser": "off", "application_name": "",
    "search_path": '"$user", public', "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed", "transaction_read_only": "on",
    "default_transaction_read_only": "on", "max_identifier_length": "63",
    "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "extra_float_digits": "1",
    "statement_timeout": "0", "idle_in_transaction_session_timeout": "0",
    "bytea_output": "hex", "default_transaction_deferrable": "off",
    "session_authorization": "tally", "in_hot_standby": "off", "block_size": "8192",
}


@dataclass
class SqlResult:
    """One statement's answer: its columns, its rows (None for a command without rows), and
    its command tag (SELECT 3, SET, BEGIN ...)."""

    columns: tuple[tuple[str, PgType], ...] = ()
    table: pa.Table | None = None
    tag: str = ""
    empty_query: bool = False
    rows_affected: int | None = None
    _schema: pa.Schema | None = field(default=None, repr=False)
    # Describe: the types of the parameters compared with a column ($1 -> DATE in
    # `metric_time >= $1`), as PostgreSQL infers them; the others are left to the client.
    parameter_types: dict[int, PgType] = field(default_factory=dict)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The rows in batches, each cast to the declared column types as it goes (the whole
        result is never copied at once)."""
        if self.table is None:
            return
        schema = self._schema or conform_schema(
            self.table.schema, pa.schema([(n, t.arrow()) for n, t in self.columns]))
        for batch in self.table.to_batches(batch_rows):
            if batch.schema != schema:
                batch = pa.RecordBatch.from_arrays(
                    [_cast(batch.column(i), schema.field(i).type)
                     for i in range(batch.num_columns)], names=schema.names)
            yield batch

    def command_tag(self, rows: int) -> str:
        return self.tag or f"SELECT {rows}"


def conform_type(actual: pa.DataType, declared: pa.DataType) -> pa.DataType:
    """The type a column is sent as: the declared one, except that an exact decimal keeps its
    own scale (and an integer becomes a decimal of scale 0) where NUMERIC is declared."""
    if pa.types.is_decimal(declared):
        if pa.types.is_decimal(actual):
            return actual
        if pa.types.is_integer(actual):
            return pa.decimal128(38, 0)
    return declared


def conform_schema(actual: pa.Schema, declared: pa.Schema) -> pa.Schema:
    return pa.schema([(d.name, conform_type(a.type, d.type))
                      for a, d in zip(actual, declared, strict=True)])


def _cast(array: pa.Array, to: pa.DataType) -> pa.Array:
    if array.type == to:
        return array
    if pa.types.is_decimal(to) and pa.types.is_floating(array.type):
        # A sum over a DOUBLE column where NUMERIC is declared: each value's shortest exact
        # decimal (no cast may round 1.5e30 or 1e-12 to 0).
        return _exact_decimals(array)
    try:
        return array.cast(to, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return array.cast(pa.string()) if pa.types.is_string(to) else array


def _exact_decimals(array: pa.Array) -> pa.Array:
    values = [None if v is None or v != v or v in (float("inf"), float("-inf"))
              else decimal.Decimal(repr(v)) for v in array.to_pylist()]
    try:
        return pa.array(values, type=pa.decimal128(38, _scale(values)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(values, type=pa.decimal256(76, _scale(values)))


def _scale(values: list) -> int:
    exponents = [-v.as_tuple().exponent for v in values if v is not None]
    return max(0, min(38, max(exponents, default=0)))


class SqlEngine:
    """What every session of a server shares: the service, the callers' catalogs and their
    sandboxed DuckDBs (one per catalog, kept while the catalog is)."""

    def __init__(self, service: TallyService, statement_limit: float | None = None,
                 admit_statements: bool = False) -> None:
        self.service = service
        # A transport that authenticates once per connection (not per statement) asks for each
        # metric statement to take from the caller's rate limit.
        self.admit_statements = admit_statements
        # No statement runs longer than a warehouse query may (or the transport's own limit).
        self.statement_limit = statement_limit or service.settings.query_timeout_seconds
        self.catalogs = Catalogs(service)
        self._databases: OrderedDict[int, tuple[SqlCatalog, CatalogDatabase]] = OrderedDict()
        self._lock = threading.Lock()

    def database(self, catalog: SqlCatalog) -> CatalogDatabase:
        key = id(catalog)
        with self._lock:  # built under the lock: one database per catalog, never two
            found = self._databases.get(key)
            if found is not None and found[0] is catalog:
                self._databases.move_to_end(key)
                return found[1]
            database = CatalogDatabase(catalog)
            self._databases[key] = (catalog, database)
            while len(self._databases) > 64:
                # Not closed here: a session may still hold it; it closes when collected.
                self._databases.popitem(last=False)
        return database

    def session(self, caller: Caller, user: str = "tally",
                settings: dict[str, str] | None = None) -> SqlSession:
        return SqlSession(self, caller, user, settings)


class SqlSession:
    def __init__(self, engine: SqlEngine, caller: Caller, user: str = "tally",
                 settings: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.service = engine.service
        self.caller = caller
        self.user = user
        self.settings: dict[str, str] = dict(DEFAULTS)
        for key, value in (settings or {}).items():
            self.settings[key.lower()] = value
        self.in_transaction = False
        self.failed_transaction = False
        self.scope: CancelScope | None = None
        self.duckdb: duckdb.DuckDBPyConnection | None = None  # the sandbox cursor running now

    # Entry points ------------------------------------------------------------------------

    async def execute(self, text: str, params: Sequence[Any] = (),
                      describe_only: bool = False) -> SqlResult:
        """One statement's answer (SqlError, or a tally error, for a refusal). A cancel()
        at any moment of it (before its warehouse query starts too) stops it."""
        self.scope = CancelScope()
        limits = (self.statement_timeout(), self.engine.statement_limit)
        limit = min((x for x in limits if x), default=None)
        try:
            return await asyncio.wait_for(self._execute(text, params, describe_only), limit)
        except TimeoutError:
            self.cancel()  # the warehouse query, or the sandbox's, stops too
            raise QueryCancelled("canceling statement due to statement timeout") from None
        finally:
            self.scope = None

    async def _execute(self, text: str, params: Sequence[Any],
                       describe_only: bool) -> SqlResult:
        if len(text) > MAX_STATEMENT:
            raise SqlSyntaxError(f"The statement is too long ({len(text)} characters).")
        stripped = _strip_comments(text).strip().rstrip(";").strip()
        if not stripped:
            return SqlResult(empty_query=True)
        command = self._command(stripped)
        if command is not None:
            return command
        if _WRITE.match(stripped):
            raise ReadOnly(
                "tally's SQL is read-only: metrics are defined in the dbt project and computed "
                "from the warehouse, not written through SQL. Use SELECT ... FROM metrics."
            )
        tree = _parse(stripped)
        compared = _compared_parameters(tree) if describe_only else {}
        if params:
            tree = _bind(tree, params)
        elif any(True for _ in tree.find_all(exp.Parameter, exp.Placeholder)):
            if not describe_only:
                raise InvalidParameter("The statement has parameters ($1, ...) but none were "
                                       "bound.")
            tree = _bind(tree, [None] * 100)
        if not isinstance(tree, exp.Query):
            raise Unsupported(f"tally answers SELECT statements; got {type(tree).__name__}.")
        catalog = await self.service.run(self.engine.catalogs.get, self.caller)
        database = self.engine.database(catalog)
        self._check_functions(tree)
        kinds = self._table_kinds(tree, catalog)
        if "tally" in kinds and "system" in kinds:
            raise Unsupported("A query over tally's tables cannot read pg_catalog or "
                              "information_schema in the same statement.")
        if "tally" in kinds:
            result = await self._metric_query(tree, catalog, database, describe_only)
            result.parameter_types = _parameter_types(compared, tree, catalog)
            return result
        return await asyncio.to_thread(self._catalog_query, tree, database)

    def statement_timeout(self) -> float | None:
        """SET statement_timeout, in seconds (None: 0, no limit of the session's own)."""
        text = self.settings.get("statement_timeout", "0").strip().strip("'").lower()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?", text)
        if not match:
            return None
        value = float(match.group(1)) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600,
                                         "d": 86400}[match.group(2) or "ms"]
        return value or None

    def cancel(self) -> None:
        """Stop the statement running now (CancelRequest): its warehouse query included."""
        scope = self.scope
        if scope is not None:
            scope.cancel()
        cursor = self.duckdb  # an outer layer or a catalog query in the sandbox: stop it too
        if cursor is not None:
            with contextlib.suppress(duckdb.Error):
                cursor.interrupt()

    # Session commands ----------------------------------------------------------------------

    def _command(self, text: str) -> SqlResult | None:
        words = text.split(None, 2)
        head = words[0].lower()
        if head in ("begin", "start"):
            self.in_transaction = True
            return SqlResult(tag="BEGIN")
        if head in ("commit", "end", "rollback", "abort"):
            self.in_transaction = False
            return SqlResult(tag="ROLLBACK" if head in ("rollback", "abort") else "COMMIT")
        if head in ("savepoint", "release"):
            return SqlResult(tag=head.upper())
        if head == "discard":
            self.settings = dict(DEFAULTS)
            return SqlResult(tag=f"DISCARD {words[1].upper() if len(words) > 1 else 'ALL'}")
        if head in ("deallocate", "close", "unlisten"):
            tag = {"deallocate": "DEALLOCATE", "close": "CLOSE CURSOR",
                   "unlisten": "UNLISTEN"}[head]
            return SqlResult(tag=f"{tag} ALL" if head == "deallocate" and "all" in
                             text.lower().split() else tag)
        if head == "set":
            self._set(text[3:].strip())
            return SqlResult(tag="SET")
        if head == "reset":
            name = text[5:].strip().lower()
            if name == "all":
                self.settings = dict(DEFAULTS)
            else:
                self.settings[name] = DEFAULTS.get(name, "")
            return SqlResult(tag="RESET")
        if head == "show":
            return self._show(text[4:].strip())
        if head in ("prepare", "execute", "declare", "fetch", "move"):
            raise Unsupported(f"{head.upper()} is not supported: use the extended query "
                              "protocol (Parse/Bind/Execute) for prepared statements.")
        return None

    def _set(self, rest: str) -> None:
        rest = re.sub(r"^(session|local)\s+", "", rest, flags=re.IGNORECASE)
        lowered = rest.lower()
        if lowered.startswith(("transaction", "session characteristics", "constraints",
                               "role", "session authorization")):
            return
        match = re.match(r"^time\s+zone\s+(.+)$", rest, re.IGNORECASE)
        if match:
            name, value = "timezone", match.group(1)
        else:
            match = re.match(r"^(names)\s+(.+)$", rest, re.IGNORECASE) or \
                re.match(r'^("?[\w.]+"?)\s*(?:=|\bto\b)\s*(.*)$', rest, re.IGNORECASE | re.S)
            if not match:
                raise SqlSyntaxError(f"Cannot read SET {rest[:60]!r}; write SET name TO value.")
            name, value = match.group(1).strip('"').lower(), match.group(2)
            if name == "names":
                name = "client_encoding"
        value = value.strip()
        if value.lower() in ("default", "local"):
            value = DEFAULTS.get(name, "")
        parts = [p.strip().strip("'").strip('"') for p in value.split(",")] if \
            name == "search_path" else [value.strip("'").strip('"')]
        self.settings[name] = ", ".join(parts)

    def _show(self, name: str) -> SqlResult:
        key = name.strip().strip('"').lower().replace(" ", "")
        if key == "timezone" or key == "time_zone":
            key = "timezone"
        if key == "transactionisolationlevel":  # SHOW TRANSACTION ISOLATION LEVEL (SQLAlchemy)
            key = "transaction_isolation"
        if key == "all":
            table = pa.table({"name": list(self.settings),
                              "setting": list(self.settings.values()),
                              "description": [""] * len(self.settings)})
            return SqlResult((("name", pgtypes.TEXT), ("setting", pgtypes.TEXT),
                              ("description", pgtypes.TEXT)), table, "SHOW")
        if key not in self.settings:
            raise UndefinedObject(f'unrecognized configuration parameter "{name}"')
        table = pa.table({key: [self.settings[key]]})
        return SqlResult(((key, pgtypes.TEXT),), table, "SHOW")

    # Catalog queries ---------------------------------------------------------------------

    def _catalog_query(self, tree: exp.Expression, database: CatalogDatabase) -> SqlResult:
        tree = _named(tree)
        tree = self._session_functions(database.rewrite(tree))
        sql = like_escapes(tree).sql(dialect="duckdb")
        cursor = self.duckdb = database.cursor()
        try:
            relation = cursor.sql(sql)
            table = _fetch(relation, self.service.settings.max_rows) \
                if relation is not None else None
        except duckdb.Error as e:
            raise _duckdb_error(e) from None
        finally:
            self.duckdb = None
            cursor.close()
        if table is None:
            return SqlResult(tag="SELECT 0")
        return _result_of(table)

    def _session_functions(self, tree: exp.Expression) -> exp.Expression:
        """version(), current_schema(), current_setting(), set_config(), current_user: the
        session's answers, as literals."""

        def visit(node: exp.Expression) -> exp.Expression:
            name = _function_name(node)
            args = _function_args(node)
            if name == "version" or isinstance(node, exp.CurrentVersion):
                return exp.Literal.string(VERSION)
            if name == "current_schema" or isinstance(node, exp.CurrentSchema):
                return exp.Literal.string("public")
            if name == "current_schemas":
                return exp.Array(expressions=[exp.Literal.string("pg_catalog"),
                                              exp.Literal.string("public")])
            if name in ("current_user", "session_user", "user", "current_role") or \
                    isinstance(node, exp.CurrentUser):
                return exp.Literal.string(self.user)
            if name in ("current_database", "current_catalog"):
                return exp.Literal.string(DATABASE)
            if name == "current_setting" and args:
                key = _string_arg(args[0]).lower()
                if key not in self.settings:
                    if len(args) > 1:
                        return exp.Null()
                    raise UndefinedObject(f'unrecognized configuration parameter "{key}"')
                return exp.Literal.string(self.settings[key])
            if name == "set_config" and len(args) >= 2:
                key, value = _string_arg(args[0]).lower(), _string_arg(args[1])
                self.settings[key] = value
                return exp.Literal.string(value)
            if name in ("now", "transaction_timestamp", "statement_timestamp") or \
                    isinstance(node, exp.CurrentTimestamp):
                stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
                return exp.Cast(this=exp.Literal.string(stamp),
                                to=exp.DataType.build("TIMESTAMP"))
            return node

        return tree.transform(visit, copy=False)

    # Metric queries ----------------------------------------------------------------------

    async def _metric_query(self, tree: exp.Expression, catalog: SqlCatalog,
                            database: CatalogDatabase, describe_only: bool) -> SqlResult:
        ctes = {identifier(c.args["alias"].this) if c.args.get("alias") else ""
                for c in tree.find_all(exp.CTE)}
        selects: list[MetricSelect] = []
        token = secrets.token_hex(4)
        dialect = self.service.engine.dialect
        passthrough: MetricSelect | None = None
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier):
                continue  # an allowed table function over the results (unnest, ...)
            schema, name = table_name(table)
            if not schema and name in ctes:
                continue
            select = table.find_ancestor(exp.Select)
            if select is None or select.args.get("from_") is None or \
                    select.args["from_"].this is not table:
                if select is not None and any(j.this is table for j in
                                              select.args.get("joins") or []):
                    raise Unsupported(
                        "tally answers one metric query per SELECT: a join of tally tables "
                        "cannot be answered exactly. Ask for every metric in one SELECT, or "
                        "join the results of two subqueries."
                    )
                raise Unsupported("A tally table can only be read in a SELECT's FROM.")
            relation = f"__tally_q{len(selects)}_{token}"
            metric, rewritten = translate_select(select, table, catalog, relation, dialect)
            selects.append(metric)
            if select is tree:
                tree = rewritten
                passthrough = metric if _is_plain(rewritten) else None
            else:
                select.replace(rewritten)
        if self.engine.admit_statements and not describe_only:
            self.service.admit(self.caller)
        scope = self.scope or CancelScope()
        tables = []
        for metric in selects:
            if scope.cancelled:
                raise QueryCancelled("canceling statement due to user request")
            tables.append(await self._run(metric, describe_only, scope))
        if passthrough is not None and len(selects) == 1:
            return _passthrough(tree, passthrough, tables[0])
        return await asyncio.to_thread(self._outer, tree, selects, tables, database)

    async def _run(self, metric: MetricSelect, describe_only: bool,
                   scope: CancelScope) -> pa.Table:
        schema = pa.schema([(c.name, c.type.arrow()) for c in metric.columns])
        if metric.empty or describe_only:
            if not describe_only:
                await self.service.run(self.service.check, metric.request, self.caller)
            if metric.null_row and not describe_only:  # SUM(x) ... WHERE false: one NULL row
                return pa.table({f.name: pa.nulls(1, f.type) for f in schema}, schema=schema)
            return schema.empty_table()
        for attempt in (1, 2):
            try:
                with cancel_scope(scope):
                    result = await asyncio.to_thread(self.service.query, metric.request,
                                                     self.caller)
                break
            except QueryCancelled:
                # Concurrent identical queries share one run: when another connection's cancel
                # stopped it, this one asks again.
                if scope.cancelled or attempt == 2:
                    raise
        if metric.request.saved_query:
            return result.table
        table = result.table
        arrays = []
        for f in schema:
            index = table.schema.get_field_index(f.name)
            if index < 0:
                raise UndefinedColumn(f'column "{f.name}" is not in the answer.')
            arrays.append(table.column(index))
        return pa.Table.from_arrays(arrays, schema=pa.schema(
            [(f.name, table.schema.field(table.schema.get_field_index(f.name)).type)
             for f in schema]))

    def _outer(self, tree: exp.Expression, selects: list[MetricSelect],
               tables: list[pa.Table], database: CatalogDatabase) -> SqlResult:
        sql = like_escapes(_named(tree)).sql(dialect="duckdb")
        cursor = self.duckdb = database.cursor()
        try:
            for metric, table in zip(selects, tables, strict=True):
                # a saved query's table too: its columns as declared (Describe told the client
                # NUMERIC; its integer counts must not reach the outer SELECT as BIGINT)
                declared = conform_schema(table.schema, pa.schema(
                    [(c.name, c.type.arrow()) for c in metric.columns])) \
                    if [c.name for c in metric.columns] == table.column_names else None
                if declared is not None and table.schema != declared:
                    table = pa.Table.from_arrays(
                        [_cast(table.column(i).combine_chunks(), declared.field(i).type)
                         for i in range(table.num_columns)], names=declared.names)
                cursor.register(metric.relation, table)
            result = cursor.sql(sql)
            table = _fetch(result, self.service.settings.max_rows) if result is not None \
                else pa.table({})
        except duckdb.Error as e:
            raise _duckdb_error(e) from None
        finally:
            self.duckdb = None
            for metric in selects:
                with contextlib.suppress(duckdb.Error):
                    cursor.unregister(metric.relation)
            cursor.close()
        return _result_of(table)

    # Checks --------------------------------------------------------------------------------

    def _check_functions(self, tree: exp.Expression) -> None:
        nodes = list(tree.walk())
        for node in nodes:
            name = _function_name(node)
            if name and name in _DENIED_FUNCTIONS:
                raise Unsupported(f"{name}() reads files or the network: tally's SQL reads "
                                  "its own tables only.")
        for node in nodes:
            if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier) \
                    and _function_name(node.this) not in _TABLE_FUNCTIONS:
                raise Unsupported(f"The table function {node.this.sql('postgres')[:60]} is not "
                                  "supported: read tally's tables (metrics, and one per saved "
                                  "query).")

    def _table_kinds(self, tree: exp.Expression, catalog: SqlCatalog) -> set[str]:
        ctes = {identifier(c.args["alias"].this) for c in tree.find_all(exp.CTE)
                if c.args.get("alias")}
        kinds = set()
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue  # a table function (generate_series, unnest): checked already
            schema, name = table_name(table)
            if schema in ("pg_catalog", "information_schema") or \
                    (not schema and name.startswith("pg_") and catalog.table(name) is None):
                kinds.add("system")
            elif not schema and name in ctes:
                continue
            else:
                kinds.add("tally")
        return kinds


# Helpers ------------------------------------------------------------------------------------

def _fetch(relation: duckdb.DuckDBPyRelation, max_rows: int) -> pa.Table:
    """The sandbox's answer, read a batch at a time: more than `max_rows` rows is refused as
    soon as they are seen (a statement that would make billions stops there)."""
    reader = relation.to_arrow_reader(65_536)
    batches, rows = [], 0
    for batch in reader:
        rows += batch.num_rows
        if rows > max_rows:
            raise ResultTooLarge(f"The result has more than {max_rows} rows (the server's "
                                 "maximum, TALLY_MAX_ROWS): add filters, GROUP BY fewer "
                                 "columns or a LIMIT.")
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _named(tree: exp.Expression) -> exp.Expression:
    """Each unnamed item of the outermost SELECT named as PostgreSQL names it."""
    if not isinstance(tree, exp.Select):
        return tree
    tree = tree.copy()
    items = []
    for item in tree.expressions:
        if isinstance(item, exp.Alias | exp.Star | exp.Column):
            items.append(item)
        else:
            items.append(exp.alias_(item, pg_column_name(item), quoted=True))
    tree.set("expressions", items)
    return tree


def _is_plain(select: exp.Expression) -> bool:
    if not isinstance(select, exp.Select):
        return False
    if any(select.args.get(k) is not None for k in ("where", "order", "limit", "offset",
                                                    "distinct", "group", "having")):
        return False
    return all(isinstance(p, exp.Alias) and isinstance(p.this, exp.Column)
               for p in select.expressions)


def _passthrough(select: exp.Select, metric: MetricSelect, table: pa.Table) -> SqlResult:
    """The answer itself, its columns picked and named (no copy of its rows)."""
    types = {c.name: c.type for c in metric.columns}
    names, arrays, columns = [], [], []
    for projection in select.expressions:
        source = projection.this.name
        names.append(projection.alias)
        arrays.append(table.column(source))
        columns.append((projection.alias, types[source]))
    picked = pa.Table.from_arrays(arrays, names=names)
    return SqlResult(tuple(columns), picked)


def _result_of(table: pa.Table) -> SqlResult:
    for f in table.schema:
        if isinstance(f.type, pa.ExtensionType) or type(f.type).__name__ == "OpaqueType":
            name = getattr(f.type, "type_name", "") or str(f.type)
            if name == "bignum":
                raise NumericOutOfRange(f'column "{f.name}": a value beyond 128-bit integers '
                                        "(numeric value out of range)")
            raise Unsupported(f'column "{f.name}" has a type tally cannot send ({name}).')
    columns = tuple((f.name, pgtypes.of_arrow(f.type)) for f in table.schema)
    schema = pa.schema([(n, _wire_arrow(t, f.type)) for (n, t), f in zip(columns, table.schema,
                                                                         strict=True)])
    return SqlResult(columns, table, _schema=schema)


def _wire_arrow(pg: PgType, arrow: pa.DataType) -> pa.DataType:
    if pa.types.is_decimal(arrow) or pa.types.is_list(arrow):
        return arrow
    try:
        return pg.arrow()
    except KeyError:
        return arrow


def _function_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Dot):
        return _function_name(node.expression)
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        try:
            return node.sql_name().lower()
        except Exception:
            return None
    return None


def _function_args(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    if isinstance(node, exp.Func):
        args = [node.this] if isinstance(node.this, exp.Expression) else []
        return args + list(node.expressions)
    return []


def _string_arg(node: exp.Expression) -> str:
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    if isinstance(node, exp.Cast):
        return _string_arg(node.this)
    raise InvalidParameter("This function takes a string literal.")


def _strip_comments(text: str) -> str:
    """The statement without leading comments (clients prefix statements with them)."""
    while True:
        stripped = text.lstrip()
        if stripped.startswith("--"):
            newline = stripped.find("\n")
            text = "" if newline < 0 else stripped[newline + 1:]
        elif stripped.startswith("/*"):
            end = stripped.find("*/")
            text = "" if end < 0 else stripped[end + 2:]
        else:
            return stripped


def _parse(text: str) -> exp.Expression:
    text = re.sub(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*+-]+)\s*\)", r"\1", text,
                  flags=re.IGNORECASE)
    try:
        statements = [s for s in sqlglot.parse(text, read="postgres") if s is not None]
    except (ParseError, TokenError) as e:
        message = str(e).splitlines()[0] if str(e) else "cannot parse"
        raise SqlSyntaxError(f"syntax error: {message[:300]}") from None
    except RecursionError:
        raise SqlSyntaxError("The statement nests too deeply.") from None
    if len(statements) != 1:
        raise SqlSyntaxError("Send one statement at a time.")
    statement = statements[0]
    if isinstance(statement, exp.Command):
        raise Unsupported(f"{statement.name.upper()} is not supported by tally's SQL.")
    return statement


def _parameter_index(node: exp.Expression) -> int | None:
    if isinstance(node, exp.Parameter | exp.Placeholder):
        text = node.name if isinstance(node, exp.Placeholder) else node.this.name
        return int(text) if text.isdigit() else None
    return None


def _compared_parameters(tree: exp.Expression) -> dict[int, str]:
    """$n -> the column it is compared with (=, <, IN, BETWEEN ...), by name."""
    found: dict[int, str] = {}
    for node in tree.walk():
        if isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
            pairs = [(node.this, node.expression), (node.expression, node.this)]
        elif isinstance(node, exp.In):
            pairs = [(node.this, e) for e in node.expressions]
        elif isinstance(node, exp.Between):
            pairs = [(node.this, node.args.get("low")), (node.this, node.args.get("high"))]
        else:
            continue
        for column, other in pairs:
            index = _parameter_index(other) if other is not None else None
            if isinstance(column, exp.Column) and index is not None:
                found.setdefault(index, identifier(column))
    return found


def _parameter_types(compared: dict[int, str], tree: exp.Expression,
                     catalog: SqlCatalog) -> dict[int, PgType]:
    tables = [catalog.table(table_name(t)[1]) for t in tree.find_all(exp.Table)]
    types: dict[int, PgType] = {}
    for index, name in compared.items():
        for table in tables:
            column = table.column(name) if table is not None else None
            if column is not None:
                types[index] = column.type
                break
    return types


def _bind(tree: exp.Expression, params: Sequence[Any]) -> exp.Expression:
    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Parameter | exp.Placeholder):
            text = node.name if isinstance(node, exp.Placeholder) else node.this.name
            if not text.isdigit():
                raise InvalidParameter(f"Unknown parameter {node.sql()}.")
            index = int(text) - 1
            if not 0 <= index < len(params):
                raise InvalidParameter(f"The statement uses ${index + 1} but {len(params)} "
                                       "parameter(s) were bound.")
            return literal(params[index])
        return node

    return tree.transform(visit, copy=True)


def literal(value: Any) -> exp.Expression:
    """A bound parameter as a literal node (never spliced into text)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise InvalidParameter(f"A parameter {value} is not a number a metric can equal.")
        text = format(value, "f")
        return exp.Neg(this=exp.Literal.number(text[1:])) if text.startswith("-") else \
            exp.Literal.number(text)
    if isinstance(value, float) and value != value:
        raise InvalidParameter("A NaN parameter cannot be compared (it equals nothing).")
    if isinstance(value, int | float):
        node = exp.Literal.number(value)
        return exp.Neg(this=exp.Literal.number(-value)) if value < 0 else node
    if isinstance(value, dt.datetime):
        return exp.Cast(this=exp.Literal.string(value.isoformat(sep=" ")),
                        to=exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()),
                        to=exp.DataType.build("DATE"))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return exp.Literal.string(str(value))


def _duckdb_error(e: duckdb.Error) -> Exception:
    message = str(e).splitlines()[0]
    message = re.sub(r"__(pg|is)_", "", message).replace("__tally_types", "pg_type")
    message = re.sub(r"__tally_q\d+_[0-9a-f]+", "the metric query", message)
    if isinstance(e, duckdb.PermissionException):
        return Unsupported("tally's SQL reads its own tables only (no files, no network).")
    if isinstance(e, duckdb.CatalogException):
        if "Function" in message or "function" in message:
            return UndefinedFunction(message)
        if "Table" in message:
            return UndefinedTable(message)
        return UndefinedObject(message)
    if isinstance(e, duckdb.BinderException):
        return UndefinedColumn(message) if "column" in message.lower() else SqlError(message)
    if isinstance(e, duckdb.ParserException):
        return SqlSyntaxError(message)
    if isinstance(e, duckdb.ConversionException | duckdb.InvalidInputException):
        return InvalidParameter(message)
    if isinstance(e, duckdb.InterruptException):
        return QueryCancelled("canceling statement due to user request")
    return Unsupported(f"tally cannot answer this statement: {message}")
