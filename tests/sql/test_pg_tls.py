"""The PostgreSQL endpoint's transport security, with psycopg against a real `tally serve`:
TLS from TALLY_PG_TLS_CERT / TALLY_PG_TLS_KEY (sslmode=require), a password refused over an
unencrypted connection from another address, a bad password (28P01), and a tenant's JWT as the
password: only its rows (numbers against hand SQL, cold and warm) and only its metrics, in the
catalog too; and each metric statement counts against the caller's rate limit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import psycopg
import pytest

from tests.support.hand_sql import expected_rows
from tests.support.mcp_clients import tally_env
from tests.support.paths import PROJECT_DIR
from tests.support.processes import Server, free_port, start_server, stop_server

SECRET = "pg-tls-test-jwt-secret-long-enough-for-hs256"
TALLY_YML = """
policies:
  - role: tenant
    row_filters:
      - {dimension: customer__country, op: in, values: "{{ claims.countries }}"}
    metrics: {deny: [gross_margin, gross_margin_pct]}
"""


def token(*countries: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": f"tenant-{'-'.join(countries)}", "roles": ["tenant"],
                       "countries": list(countries), "iat": now, "exp": now + 3600},
                      SECRET, algorithm="HS256")


def other_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: it picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def server(warehouse, tmp_path_factory) -> Iterator[tuple[Server, int]]:
    root: Path = tmp_path_factory.mktemp("pg-tls")
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    (project / "tally.yml").write_text(TALLY_YML)
    cert, key = root / "server.crt", root / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    pg_port = free_port()
    env = tally_env(warehouse, project, TALLY_JWT_SECRET=SECRET, TALLY_PG_TLS_CERT=str(cert),
                    TALLY_PG_TLS_KEY=str(key), TALLY_RATE_LIMIT_PER_MINUTE="120")
    served = start_server(root / "serve.log", env, flight=False,
                          args=("--pg-port", str(pg_port), "--host", "0.0.0.0"))
    yield served, pg_port
    stop_server(served)


def connect(port: int, password: str, host: str = "127.0.0.1",
            sslmode: str = "require") -> psycopg.Connection:
    return psycopg.connect(host=host, port=port, user="analyst", dbname="tally",
                           password=password, sslmode=sslmode, connect_timeout=10)


def test_tls_with_sslmode_require_and_a_tenants_rows_cold_and_warm(server, raw):
    _, port = server
    expected = expected_rows(raw, """
        select customer__country, sum(net_amount) as revenue from enriched_orders
        where order_status = 'completed' and customer__country in ('FR', 'US')
        group by 1 order by 1""")
    assert [r["customer__country"] for r in expected] == ["FR", "US"]
    with connect(port, token("FR", "US")) as conn:
        assert conn.info.pgconn.ssl_in_use
        for _ in range(2):  # cold, then from the cache
            rows = conn.execute("SELECT customer__country, SUM(revenue) FROM metrics "
                                "GROUP BY 1 ORDER BY 1").fetchall()
            assert rows == [(r["customer__country"], r["revenue"]) for r in expected]


def test_a_member_policy_hides_metrics_from_the_catalog_and_the_queries(server):
    _, port = server
    with connect(port, token("FR")) as conn:
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'metrics'")}
        assert "revenue" in columns and "gross_margin" not in columns
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT MEASURE(gross_margin) FROM metrics")
        assert caught.value.sqlstate == "42703"
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


def test_a_bad_password_is_28P01(server):
    _, port = server
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(port, "not-a-token")
    assert "password authentication failed" in str(caught.value)
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(port, token("FR")[:-4] + "AAAA")  # a JWT whose signature does not hold
    assert "password authentication failed" in str(caught.value)


def test_a_password_from_another_address_needs_tls(server):
    _, port = server
    address = other_address()
    if address is None:
        message = "this machine has no non-loopback address to connect from"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI runs every test: a machine without one cannot say
        pytest.skip(message)
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(port, token("FR"), host=address, sslmode="disable")
    assert "sslmode=require" in str(caught.value)
    with connect(port, token("FR"), host=address, sslmode="require") as conn:
        assert conn.execute("SELECT customer__country FROM metrics GROUP BY 1").fetchall() == \
            [("FR",)]


def test_each_metric_statement_takes_from_the_callers_rate_limit(server):
    # 120 a minute, bursts of 12: one connection cannot run more metric queries than its
    # caller may (session commands and catalog queries, a BI tool's chatter, do not count).
    _, port = server
    with connect(port, token("DE")) as conn:
        conn.autocommit = True
        states = []
        for _ in range(5):
            conn.execute("SET application_name = 'probe'")
            conn.execute("SELECT count(*) FROM information_schema.tables")
        for _ in range(30):
            try:
                conn.execute("SELECT MEASURE(revenue) FROM metrics")
                states.append("ok")
            except psycopg.Error as e:
                states.append(e.sqlstate)
        assert "53300" in states and states[0] == "ok", states
    with connect(port, token("FR", "US")) as other:  # another caller is not held back
        assert other.execute("SELECT 1").fetchone() == (1,)
