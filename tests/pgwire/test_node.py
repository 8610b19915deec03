"""node-postgres (`pg`, a devDependency of clients/: `npm ci` there installs it) against a real
server: a plain query, a parameterized one (the extended protocol), and information_schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.pgwire.cases import CASES, MONTHLY, check, placeholders
from tests.support.paths import ROOT

CLIENTS = ROOT / "clients"

SCRIPT = r"""
const { Client, types } = require("pg");
types.setTypeParser(1082, (s) => s);  // dates as written, not as local midnight
const [port, password, casesJson, monthly] = process.argv.slice(2);
(async () => {
  const client = new Client({ host: "127.0.0.1", port: Number(port), user: "tally",
                              database: "tally", password });
  await client.connect();
  const out = { cases: {} };
  for (const [name, sql] of JSON.parse(casesJson)) {
    const r = await client.query(sql);
    out.cases[name] = { columns: r.fields.map((f) => f.name), rows: r.rows.map((row) =>
      r.fields.map((f) => row[f.name])) };
  }
  const p = await client.query({ text: monthly, values: ["2025-01-01", "2025-07-01"],
                                 rowMode: "array" });
  out.prepared = { columns: p.fields.map((f) => f.name), rows: p.rows };
  const t = await client.query("SELECT table_name FROM information_schema.tables ORDER BY 1");
  out.tables = t.rows.map((r) => r.table_name);
  try { await client.query("SELECT SUM(average_order_value) FROM metrics"); }
  catch (e) { out.refused = e.code; }
  out.after = (await client.query("SELECT SUM(order_count) AS n FROM metrics")).rows[0].n;
  await client.end();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_out(pg, tmp_path_factory) -> dict:
    if shutil.which("node") is None or not (CLIENTS / "node_modules" / "pg").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node or clients/node_modules/pg is missing: `npm ci` in clients/ "
                        "(make dashboard-build, which make test runs) installs it")
        pytest.skip("no clients/node_modules/pg: run `npm ci` in clients/")
    script = CLIENTS / "node_modules" / ".pgwire-test.cjs"  # resolves `pg` from clients/
    script.write_text(SCRIPT)
    cases = json.dumps([[c.name, c.sql] for c in CASES])
    ran = subprocess.run(["node", str(script), str(pg.port), pg.key, cases,
                          placeholders(MONTHLY.template, "$")],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-4000:]
    return json.loads(ran.stdout)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_query(node_out, raw, case):
    got = node_out["cases"][case.name]
    assert check(case, raw, got["rows"], got["columns"]) > 0


def test_parameterized_query(node_out, raw):
    check(MONTHLY, raw, node_out["prepared"]["rows"], node_out["prepared"]["columns"])


def test_catalog_and_errors(node_out):
    assert "metrics" in node_out["tables"]
    assert node_out["refused"] == "42803"
    assert int(node_out["after"]) > 0
