"""The PostgreSQL endpoint's limits, with psycopg against a real `tally serve`: a cap on
connections (53300, and room again once one closes), an idle timeout (57P05), and a statement
timeout that stops a long statement (57014) with the connection still usable."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.support.mcp_clients import tally_env
from tests.support.processes import free_port, start_server, stop_server

# A statement that runs for minutes in the sandbox that reshapes metric results: four daily
# series crossed (tens of billions of pairs), each a cheap metric query.
_DAYS = "(SELECT metric_time__day AS d, SUM({m}) AS v FROM metrics GROUP BY 1) {a}"
SLOW = ("SELECT count(*) FROM " + " CROSS JOIN ".join(
    _DAYS.format(m=m, a=a) for m, a in (("order_count", "a"), ("revenue", "b"),
                                        ("revenue", "c"), ("order_count", "e")))
        + " WHERE a.v * b.v > c.v * e.v * 1000000")


@pytest.fixture(scope="module")
def port(warehouse, tmp_path_factory) -> Iterator[int]:
    pg_port = free_port()
    env = tally_env(warehouse, TALLY_PG_MAX_CONNECTIONS="2", TALLY_PG_IDLE_TIMEOUT_SECONDS="3",
                    TALLY_PG_STATEMENT_TIMEOUT_SECONDS="8")
    served = start_server(tmp_path_factory.mktemp("pg-limits") / "serve.log", env,
                          flight=False, args=("--pg-port", str(pg_port)))
    yield pg_port
    stop_server(served)


def connect(port: int) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port, user="tally", dbname="tally",
                           autocommit=True, connect_timeout=10)


def test_a_cap_on_connections(port):
    first, second = connect(port), connect(port)
    # The first statement of a caller builds its catalog: done here, outside the timeouts.
    assert first.execute("SELECT 1").fetchone() == (1,)
    try:
        with pytest.raises(psycopg.OperationalError) as caught:
            connect(port)
        assert "too many clients" in str(caught.value)
        second.close()
        time.sleep(0.3)
        with connect(port) as third:
            assert third.execute("SELECT 1").fetchone() == (1,)
    finally:
        first.close()
        second.close()


def test_a_statement_timeout_stops_a_long_statement(port):
    with connect(port) as conn:
        started = time.perf_counter()
        with pytest.raises(errors.QueryCanceled) as caught:
            conn.execute(SLOW)
        assert time.perf_counter() - started < 25
        assert "statement timeout" in str(caught.value)
        assert conn.execute("SELECT SUM(order_count) FROM metrics").fetchone()[0] > 0


def test_an_idle_connection_is_closed(port):
    conn = connect(port)
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        time.sleep(4.5)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
