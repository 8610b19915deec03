"""@tally/client (clients/js) under Node's test runner against the real server: this test
computes the expected rows by hand-written SQL over raw.*, mints a tenant's embed token, and runs
`node --test clients/js/test/` with them (its output is shown when it fails)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.support.hand_dashboards import order_metric
from tests.support.paths import ROOT

JS = ROOT / "clients" / "js"


def _rows(rows):
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else float(v) if not isinstance(
        v, str | int) else v) for k, v in r.items()} for r in rows]  # fmt: skip


def test_typescript_client_against_the_server(tally_server, mint, raw, tmp_path):
    node = shutil.which("node")
    built = JS / "dist" / "index.js"
    if node is None or not built.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node or clients/js/dist is missing: `make dashboard-build` builds it")
        pytest.skip("no node or no built client: run `make dashboard-build`")
    expected = {
        "revenue_by_month": _rows(order_metric(raw, "revenue", ["metric_time__month"],
                                               "2025-01-01", "2025-12-31")),
        "orders_de_fr": _rows(order_metric(raw, "order_count", ["customer__country"],
                                           countries=["DE", "FR"])),
        "orders_fr": _rows(order_metric(raw, "order_count", ["customer__country"],
                                        countries=["FR"])),
    }  # fmt: skip
    path = tmp_path / "expected.json"
    path.write_text(json.dumps(expected))
    env = {**os.environ, "TALLY_URL": tally_server.http, "TALLY_EXPECTED": str(path),
           "TALLY_TENANT_TOKEN": mint(["FR"], metrics=["order_count", "revenue"])}  # fmt: skip
    run = subprocess.run([node, "--test", "test/"], cwd=JS, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# pass 8" in run.stdout and "# fail 0" in run.stdout, run.stdout[-3000:]


def test_the_dashboard_page_javascript_fits_its_budget():
    """The build's own measurement (dist/bundle-size.json), checked against the files it
    measured: the entry and the chunks it imports statically, gzipped."""
    import gzip
    import re

    dist = ROOT / "clients" / "dashboard" / "dist"
    if not (dist / "bundle-size.json").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("clients/dashboard/dist is missing: `make dashboard-build` builds it")
        pytest.skip("the dashboard is not built: run `make dashboard-build`")
    report = json.loads((dist / "bundle-size.json").read_text())
    entry = (dist / "tally-dashboard.js").read_bytes()
    statics = re.findall(rb'from"\./(chunks/[^"]+)"', entry)
    files = [entry, *((dist / s.decode()).read_bytes() for s in statics)]
    gzipped = sum(len(gzip.compress(f, 9)) for f in files)
    assert abs(gzipped - report["gzip_bytes"]) <= 0.02 * gzipped
    assert report["gzip_bytes"] <= report["budget_gzip_bytes"] == 250 * 1024
    # apache-arrow (for Arrow results only) is a chunk of its own, never loaded by the page
    assert any(p.name.startswith("Arrow") for p in (dist / "chunks").iterdir())
    assert not any(s.startswith(b"chunks/Arrow") for s in statics)
