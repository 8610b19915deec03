r"""psql (Debian's postgresql-client) against a real server, an API key as its password: \dt,
\d metrics, a query checked against hand SQL, a tenant's \d without its denied columns."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.pgwire.cases import CASES, check
from tests.pgwire.conftest import DENIED_DIMENSION, DENIED_METRIC


def psql(pg, *commands: str, password: str | None = None, unaligned: bool = False) -> str:
    if shutil.which("psql") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("psql is missing (Debian's postgresql-client)")
        pytest.skip("no psql")
    argv = ["psql", f"host=127.0.0.1 port={pg.port} user=tally dbname=tally sslmode=disable",
            "-X", "-v", "ON_ERROR_STOP=1"]
    if unaligned:
        argv += ["-A", "-F", "\t", "-P", "footer=off", "-P", "null=\\N"]
    for command in commands:
        argv += ["-c", command]
    env = {**os.environ, "PGPASSWORD": pg.key if password is None else password}
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_dt_and_d(pg):
    out = psql(pg, r"\dt", r"\d metrics")
    assert "revenue_by_country_by_month" in out and " metrics " in out
    assert 'Table "public.metrics"' in out
    assert "metric_time" in out and "average_order_value" in out and DENIED_METRIC in out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_query(pg, raw, case):
    lines = psql(pg, case.sql, unaligned=True).splitlines()
    columns = lines[0].split("\t")
    rows = [[None if v == "\\N" else v for v in line.split("\t")] for line in lines[1:]]
    assert check(case, raw, rows, columns) > 0


def test_tenant_d_hides_denied_columns(pg):
    out = psql(pg, r"\d metrics", password=pg.tenant_key)
    assert "customer__country" in out and "revenue" in out
    assert DENIED_METRIC not in out and DENIED_DIMENSION not in out


def test_bad_password(pg):
    ran = subprocess.run(["psql", f"host=127.0.0.1 port={pg.port} user=tally dbname=tally "
                          "sslmode=disable", "-X", "-c", "SELECT 1"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PGPASSWORD": "tk_wrong"})
    assert ran.returncode != 0 and "password authentication failed" in ran.stderr
