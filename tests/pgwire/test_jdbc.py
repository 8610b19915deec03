"""pgjdbc (Debian's libpostgresql-jdbc-java, `make jdbc`): a Java program written here, compiled
with javac and run against a real server: DatabaseMetaData.getTables/getColumns, a Statement and
a PreparedStatement with parameters. Its standard output is parsed and checked against hand SQL."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pgwire.cases import CASES, MONTHLY, YEARLY_BY_COUNTRY, check, placeholders

JAR = Path("/usr/share/java/postgresql.jar")

PROGRAM = r"""
import java.sql.*;

public class TallyJdbc {
    static void dump(String name, ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        StringBuilder head = new StringBuilder("Q\t" + name);
        for (int i = 1; i <= md.getColumnCount(); i++) {
            head.append('\t').append(md.getColumnLabel(i));
        }
        System.out.println(head);
        while (rs.next()) {
            StringBuilder row = new StringBuilder("R");
            for (int i = 1; i <= md.getColumnCount(); i++) {
                String v = rs.getString(i);
                row.append('\t').append(v == null ? "\\N" : v);
            }
            System.out.println(row);
        }
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], "tally", args[1])) {
            DatabaseMetaData meta = c.getMetaData();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) System.out.println("T\t" + rs.getString("TABLE_NAME"));
            }
            String saved = "revenue_by_country_by_month";
            try (ResultSet rs = meta.getColumns(null, "public", saved, "%")) {
                while (rs.next()) System.out.println("C\t" + rs.getString("COLUMN_NAME") + "\t"
                    + rs.getString("TYPE_NAME") + "\t" + rs.getInt("DATA_TYPE"));
            }
            for (int i = 2; i < args.length; i += 2) {
                try (Statement s = c.createStatement()) {
                    try (ResultSet rs = s.executeQuery(args[i + 1])) { dump(args[i], rs); }
                }
            }
            try (PreparedStatement p = c.prepareStatement(System.getenv("MONTHLY"))) {
                p.setDate(1, Date.valueOf("2025-01-01"));
                p.setDate(2, Date.valueOf("2025-07-01"));
                for (int round = 0; round < 6; round++) {  // past prepareThreshold: server-side
                    try (ResultSet rs = p.executeQuery()) { dump("monthly-prepared-" + round, rs); }
                }
            }
            try (PreparedStatement p = c.prepareStatement(System.getenv("YEARLY"))) {
                p.setString(1, "DE"); p.setString(2, "FR"); p.setString(3, "JP");
                try (ResultSet rs = p.executeQuery()) { dump("yearly-prepared", rs); }
            }
        }
    }
}
"""


def _parse(out: str) -> dict[str, tuple[list[str], list[list[str | None]]]]:
    results: dict[str, tuple[list[str], list[list[str | None]]]] = {}
    current = None
    for line in out.splitlines():
        kind, *fields = line.split("\t")
        if kind == "Q":
            current = fields[0]
            results[current] = (fields[1:], [])
        elif kind == "R":
            assert current is not None
            results[current][1].append([None if f == "\\N" else f for f in fields])
    return results


@pytest.fixture(scope="module")
def jdbc_out(pg, tmp_path_factory) -> str:
    if not JAR.exists() or shutil.which("javac") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{JAR} or javac is missing: `make jdbc` installs pgjdbc (make test does)")
        pytest.skip(f"no {JAR}: `make jdbc` installs Debian's libpostgresql-jdbc-java")
    folder = tmp_path_factory.mktemp("jdbc")
    (folder / "TallyJdbc.java").write_text(PROGRAM)
    made = subprocess.run(["javac", "-cp", str(JAR), "TallyJdbc.java"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    url = f"jdbc:postgresql://127.0.0.1:{pg.port}/tally?sslmode=disable"
    argv = ["java", "-cp", f"{JAR}:{folder}", "TallyJdbc", url, pg.key]
    for case in CASES:
        argv += [case.name, case.sql]
    env = {**os.environ, "MONTHLY": placeholders(MONTHLY.template, "?"),
           "YEARLY": placeholders(YEARLY_BY_COUNTRY.template, "?")}
    ran = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-4000:]
    return ran.stdout


def test_metadata(jdbc_out):
    tables = [line.split("\t")[1] for line in jdbc_out.splitlines() if line.startswith("T\t")]
    assert "metrics" in tables and "revenue_by_country_by_month" in tables
    columns = [line.split("\t")[1:] for line in jdbc_out.splitlines() if line.startswith("C\t")]
    assert [c[0] for c in columns] == ["metric_time__month", "customer__country", "revenue",
                                       "completed_orders"]
    assert columns[0][2] == "91" and columns[2][2] == "2"  # java.sql.Types.DATE, NUMERIC


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_statement(jdbc_out, raw, case):
    columns, rows = _parse(jdbc_out)[case.name]
    assert check(case, raw, rows, columns) > 0


def test_prepared_statements(jdbc_out, raw):
    results = _parse(jdbc_out)
    for round_ in range(6):
        columns, rows = results[f"monthly-prepared-{round_}"]
        check(MONTHLY, raw, rows, columns)
    columns, rows = results["yearly-prepared"]
    check(YEARLY_BY_COUNTRY, raw, rows, columns)
    assert dt.date.fromisoformat(rows[0][0][:10]).year == 2022
