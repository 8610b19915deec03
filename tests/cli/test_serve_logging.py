"""`tally serve` is quiet by default: its log holds tally's own lines, not MetricFlow's (which
plans every query aloud at INFO) nor dbt's; TALLY_LOG_LEVEL=debug shows them all."""

from __future__ import annotations

import httpx
import pytest

from tests.support.paths import PROJECT_DIR
from tests.support.processes import start_server, stop_server

QUERIES = [{"metrics": ["revenue"], "group_by": ["metric_time__month"]},
           {"metrics": ["cumulative_revenue"], "group_by": ["metric_time__month"]}]
LIBRARIES = ("metricflow", "dbt_semantic_interfaces", "dbt.")


@pytest.mark.parametrize("level", ["default", "debug"])
def test_serve_logs_only_tallys_own_lines_unless_debug(warehouse, tmp_path, level):
    env = {"TALLY_PROJECT_DIR": str(PROJECT_DIR), "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path)}
    if level == "debug":
        env["TALLY_LOG_LEVEL"] = "debug"
    server = start_server(tmp_path / "serve.log", env, flight=False, clean_env=True)
    try:
        for body in QUERIES:
            assert httpx.post(f"{server.http}/api/v1/query", json=body, timeout=60
                              ).status_code == 200
    finally:
        stop_server(server)
    lines = server.log.read_text().splitlines()
    library = [ln for ln in lines if any(f" {name}" in ln for name in LIBRARIES)
               and not ln.startswith(("WARNING", "ERROR", "CRITICAL"))]
    assert any(" tally" in ln for ln in lines)  # tally's own lines are there
    if level == "default":
        assert library == [], library[:5]
        assert len(lines) < 40, len(lines)
    else:
        assert len(library) > 10  # MetricFlow's planning, for whoever debugs it
