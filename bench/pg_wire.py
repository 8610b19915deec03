"""tally's PostgreSQL wire protocol (`tally serve --pg-port`), measured on a real server process,
side by side in one run:

(a) a cached metric query through psycopg 3 vs the same question through REST (JSON), on the
    same server, interleaved: median of N, ratio;
(b) a result of about a million rows streamed to psycopg (day x customer revenue on a bigger
    warehouse: `--scale 35` of the demo's shop, generated into a temporary copy of the project,
    or `--big-project DIR` to reuse one) vs DuckDB's own `.to_arrow_table()` of MetricFlow's SQL
    for the same query on the same file: rows/s, and the server's resident memory (VmRSS) before
    and after, with its peak (VmHWM);
(c) 50 concurrent psycopg connections, each running a mix of queries (a cached metric query, a
    saved query, a CTE over a metric query, a catalog query as psql's \\dt sends, a refused
    write): unexpected errors, p50/p95/p99 latency.

    .venv/bin/python bench/pg_wire.py [--requests 300] [--clients 50] [--rounds 20]
        [--scale 35] [--big-project DIR] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import psycopg
from serving import ROOT, TALLY, free_port

MIB = 1024 * 1024
VARS = '{"as_of_date": "2025-12-31", "time_spine_start": "2022-01-01"}'
REST = {"metrics": ["revenue", "order_count", "average_order_value"],
        "group_by": ["metric_time__month"]}
SQL = ("SELECT metric_time__month, revenue, order_count, average_order_value FROM metrics "
       "GROUP BY 1")
BIG_REST = {"metrics": ["revenue"], "group_by": ["metric_time__day", "customer"]}
BIG_SQL = "SELECT metric_time__day, customer, revenue FROM metrics GROUP BY 1, 2"
MIX = [
    ("cached metric query", SQL, False),
    ("saved query", "SELECT * FROM customer_segments ORDER BY customers DESC LIMIT 5", False),
    ("CTE over a metric query",
     "WITH m AS (SELECT customer__country AS c, revenue AS r FROM metrics GROUP BY 1) "
     "SELECT c, r / SUM(r) OVER () AS share FROM m ORDER BY share DESC LIMIT 3", False),
    ("catalog (psql \\dt)",
     "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace"
     " n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m') AND "
     "pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1, 2", False),
    ("refused write (25006)", "DELETE FROM metrics", True),
]


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@contextmanager
def server(env: dict[str, str] | None = None) -> Iterator[tuple[str, str, int]]:
    """A real `tally serve --pg-port`: (REST base URL, psycopg conninfo, pid) once ready."""
    port, pg_port = free_port(), free_port()
    environment = {**os.environ, "TALLY_PROJECT_DIR": str(ROOT / "dbt_project"), **(env or {})}
    proc = subprocess.Popen([str(TALLY), "serve", "--port", str(port), "--pg-port", str(pg_port),
                             "--log-level", "warning"], cwd=ROOT, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    dsn = f"host=127.0.0.1 port={pg_port} user=tally dbname=tally"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    psycopg.connect(dsn, connect_timeout=2).close()
                    break
            except (httpx.TransportError, psycopg.OperationalError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tally serve did not become ready (exit code {proc.poll()})")
            time.sleep(0.1)
        yield base, dsn, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def ms(xs: list[float], q: float) -> float:
    if q == 0.5:
        return statistics.median(xs) * 1000
    return statistics.quantiles(xs, n=100)[round(q * 100) - 1] * 1000


# (a) ------------------------------------------------------------------------------------------


def cached_query(base: str, dsn: str, n: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client, psycopg.connect(dsn) as conn:
        r = client.post("/api/v1/query", json=REST)  # warm: engine, compiled SQL, cache
        rows = conn.execute(SQL).fetchall()
        assert len(rows) == r.json()["row_count"], (len(rows), r.json()["row_count"])
        pg, rest = [], []
        for _ in range(n):
            t = time.perf_counter()
            conn.execute(SQL).fetchall()
            pg.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = client.post("/api/v1/query", json=REST)
            r.json()
            rest.append(time.perf_counter() - t)
            assert r.headers["x-tally-cache"] == "hit"
    print(f"\n(a) a cached metric query ({len(rows)} rows x 4 columns), {n} each, interleaved")
    print(f"{'':30}{'median ms':>10}{'p95 ms':>10}")
    for name, xs in (("psycopg 3 (pg wire)", pg), ("REST POST /query (JSON)", rest)):
        print(f"{name:30}{ms(xs, 0.5):10.3f}{ms(xs, 0.95):10.3f}")
    print(f"pg wire / REST (median): {ms(pg, 0.5) / ms(rest, 0.5):.2f}x  (target <= 1.5x)")


# (b) ------------------------------------------------------------------------------------------


def big_project(scale: float, keep: bool) -> tuple[Path, Path | None]:
    """A copy of the demo project whose warehouse has `scale` times the demo's shop."""
    from compile_many import copy_project

    tmp = Path(tempfile.mkdtemp(prefix="tally-pg-wire-"))
    project = copy_project(ROOT / "dbt_project", tmp)
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(project / "warehouse.duckdb")}
    print(f"generating a warehouse at scale {scale} in {project} ...", file=sys.stderr)
    subprocess.run([str(TALLY), "generate", "--seed", "42", "--scale", str(scale), "--start",
                    "2022-01-01", "--end", "2025-12-31", "--out", str(tmp / "generated.duckdb")],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([str(TALLY), "build", "--project-dir", str(project), "--from",
                    str(tmp / "generated.duckdb"), "--vars", VARS], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return project, (None if keep else tmp)


def big_result(project: Path, repeat: int) -> None:
    env = {"TALLY_PROJECT_DIR": str(project),
           "TALLY_DUCKDB_PATH": str(project / "warehouse.duckdb"),
           "TALLY_MAX_ROWS": "5000000"}
    with server(env) as (base, dsn, pid):
        sql = httpx.post(f"{base}/api/v1/compile", json=BIG_REST, timeout=60).json()["sql"]
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT revenue FROM metrics").fetchall()  # warm the engine
            before = status(pid)
            times, rows = [], 0
            for i in range(repeat):
                if i:
                    httpx.post(f"{base}/api/v1/cache/invalidate", timeout=30)
                t = time.perf_counter()
                cur = conn.execute(BIG_SQL)
                rows = sum(1 for _ in cur)
                times.append(time.perf_counter() - t)
            after = status(pid)
            t = time.perf_counter()
            hit_rows = len(conn.execute(BIG_SQL).fetchall())
            hit = time.perf_counter() - t
    duck = []
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as db:
        for _ in range(repeat):
            t = time.perf_counter()
            table = db.sql(sql).to_arrow_table()
            duck.append(time.perf_counter() - t)
    assert table.num_rows == rows == hit_rows, (table.num_rows, rows, hit_rows)
    pg_s, duck_s = statistics.median(times), statistics.median(duck)
    print(f"\n(b) {rows:,} rows x 3 columns ({BIG_SQL}), median of {repeat}")
    print(f"{'':44}{'seconds':>9}{'rows/s':>14}")
    print(f"{'psycopg 3 over pg wire (cache miss)':44}{pg_s:9.2f}{rows / pg_s:14,.0f}")
    print(f"{'psycopg 3 over pg wire (cache hit)':44}{hit:9.2f}{rows / hit:14,.0f}")
    print(f"{'DuckDB .to_arrow_table() of the same SQL':44}{duck_s:9.2f}{rows / duck_s:14,.0f}")
    print(f"pg wire (miss) / DuckDB: {pg_s / duck_s:.1f}x")
    print(f"server resident memory: before {before['VmRSS'] / MIB:.0f} MiB, after "
          f"{after['VmRSS'] / MIB:.0f} MiB, peak {after['VmHWM'] / MIB:.0f} MiB (peak before "
          f"the big queries {before['VmHWM'] / MIB:.0f} MiB)")


# (c) ------------------------------------------------------------------------------------------


async def herd(dsn: str, clients: int, rounds: int) -> None:
    times: dict[str, list[float]] = {name: [] for name, _, _ in MIX}
    every: list[float] = []
    unexpected: Counter[str] = Counter()
    refused: Counter[str] = Counter()

    async def client(k: int) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        except psycopg.Error as e:
            unexpected[f"connect: {type(e).__name__}"] += 1
            return
        async with conn:
            for r in range(rounds):
                name, sql, refusal = MIX[(k + r) % len(MIX)]
                t = time.perf_counter()
                try:
                    cur = await conn.execute(sql)
                    if cur.description is not None:
                        await cur.fetchall()
                    if refusal:
                        unexpected[f"{name}: answered"] += 1
                except psycopg.Error as e:
                    if refusal and e.sqlstate == "25006":
                        refused[e.sqlstate] += 1
                    else:
                        unexpected[f"{name}: {e.sqlstate} {str(e)[:60]}"] += 1
                elapsed = time.perf_counter() - t
                times[name].append(elapsed)
                every.append(elapsed)

    t = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    wall = time.perf_counter() - t
    print(f"\n(c) {clients} concurrent connections x {rounds} statements ({len(every)} in "
          f"{wall:.1f} s, {len(every) / wall:.0f} statements/s)")
    print(f"{'':28}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name, xs in (*times.items(), ("all", every)):
        if len(xs) > 1:
            print(f"{name:28}{len(xs):6}{ms(xs, 0.5):9.1f}{ms(xs, 0.95):9.1f}{ms(xs, 0.99):9.1f}")
    print(f"unexpected errors: {sum(unexpected.values())} {dict(unexpected) or ''}; "
          f"refusals as expected: {dict(refused)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=35)
    parser.add_argument("--big-project", type=Path,
                        help="a project copy with a bigger warehouse (from an earlier --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the generated project copy")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    with server({"TALLY_PG_MAX_CONNECTIONS": str(args.clients + 10)}) as (base, dsn, _):
        cached_query(base, dsn, args.requests)
        asyncio.run(herd(dsn, args.clients, args.rounds))
    if not args.skip_big:
        remove = None
        project = args.big_project
        if project is None:
            project, remove = big_project(args.scale, args.keep)
        try:
            big_result(project.resolve(), args.repeat)
        finally:
            if remove is not None:
                shutil.rmtree(remove, ignore_errors=True)
            elif args.big_project is None:
                print(f"kept {project}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
