"""Fuzzing the SQL endpoint (hypothesis).

In process: hostile and malformed SQL (random token soup, deep nesting, huge literals, file and
network functions, COPY/ATTACH/PRAGMA/INSTALL, several statements, unicode, NUL bytes, and the
same spliced into real metric queries) through `SqlSession.execute` over a service on the test
warehouse. Every outcome is a result or a tally error, within a time limit; no answer shows the
contents of /etc/passwd or the environment; and every SQL the warehouse ran is SQL tally's
compiler wrote (the warehouse and the compiler record what they saw).

Over a socket: random bytes, truncated and oversized frames, wrong message types at every stage
of a real `tally serve --pg-port` process's protocol; afterwards the process is up and a fresh
psycopg connection is answered."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally import errors
from tally.core.caller import ANONYMOUS
from tally.core.compiler import Compiler
from tally.core.semantic_manifest import load_manifest
from tally.service import TallyService
from tally.sql.session import SqlEngine
from tally.warehouse.duckdb import ENGINE, DuckDBWarehouse
from tests.support.paths import PROJECT_DIR, ROOT
from tests.support.processes import Server, free_port, start_server, stop_server

TIME_LIMIT = 20.0  # seconds for one statement: more is a hang
PASSWD_LINE = "root:x:0:0"
OUTCOMES: Counter[str] = Counter()


class RecordingWarehouse(DuckDBWarehouse):
    """The test warehouse, noting every SQL it is given (run or streamed)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[str] = []
        self._seen_lock = threading.Lock()

    def execute(self, sql: str, timeout_seconds: float | None = None):
        with self._seen_lock:
            self.seen.append(sql)
        return super().execute(sql, timeout_seconds)

    def stream(self, sql: str, batch_rows: int = 65_536):
        with self._seen_lock:
            self.seen.append(sql)
        return super().stream(sql, batch_rows)


class RecordingCompiler(Compiler):
    """MetricFlow's compiler, noting every SQL it wrote."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.written: set[str] = set()
        self._written_lock = threading.Lock()

    def compile(self, request, limit=None):
        compiled = super().compile(request, limit=limit)
        with self._written_lock:
            self.written.add(compiled.sql)
        return compiled


@pytest.fixture(scope="module")
def fuzzed(warehouse, session_services) -> Iterator[tuple[SqlEngine, RecordingWarehouse,
                                                          RecordingCompiler]]:
    recorder = RecordingWarehouse(warehouse.duckdb_path)
    compiler = RecordingCompiler(load_manifest(warehouse.manifest_path), ENGINE)
    # No rollup routing: every warehouse SQL then comes from compile() itself.
    service = TallyService(session_services.settings(rollups_enabled=False), recorder,
                           compiler=compiler)
    yield SqlEngine(service), recorder, compiler
    service.shutdown()
    print(f"\nSQL fuzz outcomes: {dict(OUTCOMES)}; warehouse SQL run: {len(recorder.seen)}")


def run_one(engine: SqlEngine, text: str, limit: float = TIME_LIMIT) -> str:
    """The kind of outcome: 'result' or the tally error's code; anything else fails."""
    session = engine.session(ANONYMOUS)
    late = []

    async def go():
        try:
            return await asyncio.wait_for(session.execute(text), limit)
        except TimeoutError:
            late.append(text)
            session.cancel()  # else asyncio.run waits for the statement's thread
            raise

    try:
        result = asyncio.run(go())
    except TimeoutError:
        pytest.fail(f"no answer within {limit} s to {text[:200]!r}")
    except errors.TallyError as e:
        if late:
            pytest.fail(f"no answer within {limit} s to {text[:200]!r} (then: {e.code})")
        assert isinstance(e.code, str) and e.code
        return f"error:{e.code}"
    if result.table is not None:
        for batch in result.batches():  # the wire encoders' input: casting must not fail
            text_of = str(batch.to_pydict())
            assert PASSWD_LINE not in text_of, text
            home = os.environ.get("HOME", "")
            assert len(home) < 4 or home not in text_of, text  # getenv('HOME') answered
    return "result"


def check_warehouse(recorder: RecordingWarehouse, compiler: RecordingCompiler) -> None:
    unchecked = [sql for sql in recorder.seen
                 if sql not in compiler.written and sql.strip().lower() != "select 1"]
    assert not unchecked, unchecked[:3]


# Strategies ------------------------------------------------------------------------------------

WORDS = ["SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "OFFSET", "HAVING", "WITH",
         "AS", "JOIN", "ON", "UNION", "ALL", "AND", "OR", "NOT", "IN", "IS", "NULL", "CASE",
         "WHEN", "THEN", "END", "metrics", "customer_segments", "revenue", "order_count",
         "customer__country", "metric_time", "metric_time__month", "MEASURE(revenue)",
         "AGG(order_count)", "SUM(revenue)", "COUNT(*)", "DATE_TRUNC('month', metric_time)",
         "EXTRACT(year FROM metric_time)", "pg_catalog.pg_class", "information_schema.tables",
         "(", ")", ",", ";", "*", "=", "<>", "'", '"', "$1", "::", "1", "-1", "1e308", "'x'",
         "COPY", "ATTACH", "PRAGMA", "INSTALL", "LOAD", "SET", "SHOW", "BEGIN", "COMMIT",
         "read_csv('/etc/passwd')", "getenv('HOME')", "\x00", "é", "\u202e", "😀", "--", "/*",
         "*/", "\\", "E'\\x00'", "$$", "$tag$"]
HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd', header=false)",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT content FROM read_blob('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'https://example.com/x.csv'",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM glob('/*')",
    "SELECT getenv('HOME')",
    "SELECT current_setting('home_directory')",
    "COPY metrics TO '/tmp/x.csv'",
    "COPY (SELECT 1) TO '/tmp/tally-fuzz.csv'",
    "ATTACH '/tmp/tally-fuzz.duckdb' AS x",
    "ATTACH 'dbname=postgres' AS p (TYPE postgres)",
    "PRAGMA database_list",
    "PRAGMA enable_profiling",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allow_unsigned_extensions = true",
    "SELECT 1; SELECT 2",
    "SELECT revenue FROM metrics; DROP TABLE metrics",
    "CREATE TABLE t AS SELECT 1",
    "CALL pragma_version()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM warehouse.analytics_marts.fct_orders",
    "SELECT * FROM analytics_marts.fct_orders",
    "SELECT * FROM raw.orders",
    "SELECT * FROM __pg_class",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "EXPLAIN SELECT revenue FROM metrics",
    "SELECT revenue FROM metrics WHERE customer__country = (SELECT content FROM "
    "read_text('/etc/passwd'))",
    "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
    "SELECT m.revenue, p.* FROM (SELECT revenue FROM metrics) m, read_csv('/etc/passwd') p",
    "SELECT revenue FROM metrics WHERE customer__country = 'x'' OR 1=1 --'",
    "SELECT revenue FROM metrics WHERE customer__country IN (SELECT getenv('HOME'))",
    "SELECT customer__country, revenue FROM metrics GROUP BY 1 UNION ALL "
    "SELECT column0, NULL FROM read_csv('/etc/passwd')",
    "SELECT * FROM metrics, metrics",
    "SELECT * FROM (SELECT * FROM metrics)",
    "SELECT query('SELECT 1')",
    "SELECT * FROM query_table('metrics')",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "SELECT \x00revenue FROM metrics",
    "SELECT 'a\x00b'",
    "SELECT revenue FROM metrics WHERE customer__country = 'é\u202e😀'",
    "SELECT \"rev\u0000enue\" FROM metrics",
    "\ufeffSELECT revenue FROM metrics",
    "SELECT revenue FROM metrics LIMIT -1",
    "SELECT revenue FROM metrics LIMIT 99999999999999999999999",
    "SELECT revenue FROM metrics OFFSET 1e400",
    "SELECT DATE_TRUNC('eon', metric_time), revenue FROM metrics GROUP BY 1",
    "SELECT revenue FROM metrics WHERE metric_time >= '999999-99-99'",
    "SELECT count(*) FROM range(100000000000) t",
    "SELECT * FROM generate_series(1, 100000000000)",
    "SELECT string_agg(repeat('x', 100000), ',') FROM generate_series(1, 100000)",
]


def nested(depth: int, kind: int) -> str:
    if kind == 0:
        return "SELECT " + "(" * depth + "1" + ")" * depth
    if kind == 1:
        return "SELECT * FROM " + "(SELECT * FROM " * depth + "metrics" + ") t" * depth
    if kind == 2:
        return "SELECT revenue FROM metrics WHERE " + "NOT " * depth + "revenue > 0"
    return "SELECT " + "-" * depth + "1"


def huge(size: int, kind: int) -> str:
    if kind == 0:
        return f"SELECT '{'x' * size}'"
    if kind == 1:
        return f"SELECT revenue FROM metrics WHERE customer__country = '{'é' * size}'"
    if kind == 2:  # within HUGEINT: beyond it, see test_an_integer_beyond_hugeint below
        return f"SELECT {'9' * min(size, 38)}, {'9' * size}.5"
    return "SELECT revenue FROM metrics WHERE customer__country IN (" + \
        ",".join(f"'{i}'" for i in range(size // 8)) + ")"


tokens = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join)
statements = st.one_of(
    tokens,
    st.sampled_from(HOSTILE),
    st.builds(lambda h, t: f"{h} {t}", st.sampled_from(HOSTILE), tokens),
    st.builds(nested, st.integers(1, 3000), st.integers(0, 3)),
    st.builds(huge, st.integers(1, 250_000), st.integers(0, 3)),
    st.text(max_size=200),
    st.builds(lambda t: f"SELECT revenue FROM metrics WHERE customer__country = '{t}'",
              st.text(max_size=50)),
    st.builds(lambda h, i: h[:i] + "\x00" + h[i:], st.sampled_from(HOSTILE), st.integers(0, 40)),
)


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(text=statements)
def test_hostile_sql_gets_a_result_or_a_tally_error(fuzzed, text):
    engine, recorder, compiler = fuzzed
    OUTCOMES[run_one(engine, text)] += 1
    check_warehouse(recorder, compiler)


def test_the_hostile_corpus_itself(fuzzed):
    """Every fixed hostile statement, once each (hypothesis may draw only some of them), with
    the refusals that must be refusals."""
    engine, recorder, compiler = fuzzed
    kinds = {text: run_one(engine, text) for text in HOSTILE}
    for text, kind in kinds.items():
        OUTCOMES[kind] += 1
        lowered = text.lower()
        if any(word in lowered for word in ("passwd", "getenv", "copy", "attach", "pragma",
                                            "install", "load ", "https:", "glob(", "raw.",
                                            "analytics_marts", "sqlite_scan", "query")):
            assert kind != "result", text
    check_warehouse(recorder, compiler)
    assert any(sql for sql in recorder.seen), "no metric query reached the warehouse at all"


def test_an_integer_beyond_hugeint_is_out_of_range(fuzzed):
    engine, _, _ = fuzzed
    assert run_one(engine, "SELECT 340300000000000000000000000000000000000") == \
        "error:sql_numeric_out_of_range"


def test_a_sleep_is_stopped_by_the_sessions_statement_timeout(fuzzed):
    engine, _, _ = fuzzed
    session = engine.session(ANONYMOUS)

    async def go() -> float:
        await session.execute("SET statement_timeout = '1s'")
        started = time.perf_counter()
        with pytest.raises(errors.QueryCancelled, match="statement timeout"):
            await session.execute("SELECT pg_sleep(100)")
        return time.perf_counter() - started

    assert asyncio.run(go()) < 10


# The wire ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_server(warehouse, tmp_path_factory) -> Iterator[tuple[Server, int]]:
    root = tmp_path_factory.mktemp("sql-fuzz")
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    shutil.copytree(ROOT / "semantic" / "dashboards", root / "semantic" / "dashboards")
    served = root / "served" / "warehouse.duckdb"
    served.parent.mkdir()
    shutil.copy(warehouse.duckdb_path, served)
    env = {"TALLY_PROJECT_DIR": str(project), "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_DUCKDB_PATH": str(served), "TALLY_PG_IDLE_TIMEOUT_SECONDS": "5"}
    port = free_port()
    server = start_server(root / "serve.log", env, flight=False, clean_env=True,
                          args=("--pg-port", str(port)))
    yield server, port
    stop_server(server)


def frame(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


_PARAMS = struct.pack("!i", 196608) + b"user\x00tally\x00database\x00tally\x00\x00"
STARTUP = struct.pack("!i", len(_PARAMS) + 4) + _PARAMS
TYPES = b"QPBDEHSCXFdcfpZ\x00\xff"
wire_messages = st.one_of(
    st.binary(max_size=300),
    st.builds(frame, st.sampled_from([bytes([c]) for c in TYPES]), st.binary(max_size=200)),
    st.builds(lambda k, n, b: k + struct.pack("!i", n) + b,
              st.sampled_from([bytes([c]) for c in TYPES]),
              st.sampled_from([-1, 0, 3, 4, 5, 2**31 - 1, 1 << 30, 10_000_000]),
              st.binary(max_size=50)),
    st.builds(lambda sql, cut: frame(b"Q", sql.encode() + b"\x00")[:cut],
              st.sampled_from(HOSTILE), st.integers(0, 60)),
)


def converse(port: int, startup: bool, ssl_first: bool, messages: list[bytes]) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(3)
        if ssl_first:
            s.sendall(struct.pack("!ii", 8, 80877103))
            s.recv(1)
        if startup:
            s.sendall(STARTUP)
        try:
            for m in messages:
                s.sendall(m)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    return "closed" if not got else "answered, closed"
                got += chunk
        except TimeoutError:
            return "waiting"
        except OSError:
            return "reset"
    return "answered"


def test_random_protocol_messages_leave_the_server_up(pg_server):
    """Random conversations, then a fresh psycopg connection (in this test, so that no
    scheduling of tests separates the two)."""
    server, port = pg_server
    outcomes: Counter[str] = Counter()

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(startup=st.booleans(), ssl_first=st.booleans(),
           messages=st.lists(wire_messages, min_size=1, max_size=5))
    def conversation(startup, ssl_first, messages):
        outcomes[converse(port, startup, ssl_first, messages)] += 1
        assert server.process.poll() is None, server.log.read_text()[-3000:]

    conversation()
    with psycopg.connect(f"host=127.0.0.1 port={port} user=tally dbname=tally",
                         connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        rows = conn.execute("SELECT customer__country, revenue FROM metrics GROUP BY 1 "
                            "ORDER BY 1 LIMIT 2").fetchall()
        assert len(rows) == 2
    assert server.alive()
    print(f"\nwire fuzz outcomes: {dict(outcomes)}")
