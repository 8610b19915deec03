"""The second project's CI and operations: `tally validate` is green on a project MetricFlow
accepts and red on a broken metric; `tally diff` against a git ref with the project at the root
of its repository; `tally build` while a real `tally serve` answers; a manifest whose relations
carry no database name."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tally.core.caller import ANONYMOUS


def test_validate_is_green_on_a_project_metricflow_accepts(bikeshare):
    out = bikeshare.tally("validate", "--skip-dw", "--format", "json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    report = json.loads(out.stdout)
    findings = report["findings"]
    assert findings and all(f["severity"] == "warning" for f in findings)
    assert {"dimension_label", "dimension_description"} & {f["rule"] for f in findings}
    strict = bikeshare.tally("validate", "--skip-dw", "--strict")
    assert strict.returncode == 1  # the same warnings fail the build with --strict


def test_validate_is_red_on_a_broken_metric(bikeshare_copy):
    metrics = bikeshare_copy.root / "models" / "semantic" / "metrics.yml"
    metrics.write_text(metrics.read_text().replace("measure: rental_minutes",
                                                   "measure: rental_minutess"))
    out = bikeshare_copy.tally("validate", "--skip-dw", "--format", "json")
    assert out.returncode == 1, out.stdout[-2000:]
    errors = [f for f in json.loads(out.stdout)["findings"] if f["severity"] == "error"]
    assert errors and any("rental_minutess" in f["message"] for f in errors)


def test_diff_against_a_git_ref_at_the_repository_root(bikeshare_copy):
    metrics = bikeshare_copy.root / "models" / "semantic" / "metrics.yml"
    text = metrics.read_text()
    metrics.write_text(text.replace(
        "expr: (rentals - rentals_prev) / nullif(rentals_prev, 0)",
        "expr: (rentals - rentals_prev) / rentals_prev"))
    parsed = bikeshare_copy.tally("validate", "--skip-dw", "--parse", "--target-path", "build")
    assert parsed.returncode == 0, parsed.stdout[-2000:]
    out = bikeshare_copy.tally("diff", "HEAD", "build")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "metric rentals_growth_mom" in out.stdout and "changed" in out.stdout
    folder = bikeshare_copy.tally("diff", "HEAD", ".")  # a folder: the project's target path
    assert folder.returncode == 0 and "rentals_growth_mom" in folder.stdout


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_build_while_serving(bikeshare_copy, tally_command, tmp_path):
    """A real server keeps answering while `tally build` rebuilds; afterwards it serves the
    new numbers (new seed rows), and a failed build changes nothing it serves."""
    port = _port()
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [str(tally_command), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=bikeshare_copy.root, env=bikeshare_copy.env(), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    body = {"metrics": ["rentals"], "group_by": ["bike__station__city_name"]}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            before = {r["bike__station__city_name"]: r["rentals"]
                      for r in client.post("/api/v1/query", json=body).json()["data"]}
            # two more rentals on a Riverside (Lowmoor) bike, the city that had none
            seed = bikeshare_copy.root / "seeds" / "raw_rentals.csv"
            seed.write_text(seed.read_text()
                            + "26,18,109,2025-06-29 09:00:00,10,2.00,completed\n"
                            + "27,18,108,2025-06-29 10:00:00,12,2.50,completed\n")
            statuses: list[int] = []
            stop = threading.Event()

            def poll() -> None:
                with httpx.Client(base_url=base, timeout=30) as c:
                    while not stop.is_set():
                        statuses.append(c.post("/api/v1/query", json=body).status_code)
                        time.sleep(0.05)

            poller = threading.Thread(target=poll)
            poller.start()
            built = bikeshare_copy.tally("build")
            stop.set()
            poller.join()
            assert built.returncode == 0, built.stdout[-3000:]
            assert "tally build: dbt build done" in built.stdout  # progress, stage by stage
            assert statuses and set(statuses) == {200}, statuses
            after = {r["bike__station__city_name"]: r["rentals"]
                     for r in client.post("/api/v1/query", json=body).json()["data"]}
            assert after == {**before, "Lowmoor": 2}
            # a build that fails its data tests: nothing served changes
            seed.write_text(seed.read_text() + "27,18,108,2025-06-30 10:00:00,12,2.50,completed\n")
            failed = bikeshare_copy.tally("build")
            assert failed.returncode == 1 and "nothing served was changed" in failed.stderr
            again = {r["bike__station__city_name"]: r["rentals"]
                     for r in client.post("/api/v1/query", json=body).json()["data"]}
            assert again == after
    finally:
        server.terminate()
        server.wait(20)
        log.close()


def test_a_manifest_without_database_names_works(bikeshare, bike_service, tmp_path):
    from tally.core.request import QueryRequest
    from tally.service import TallyService
    from tally.settings import Settings

    manifest = json.loads((bikeshare.root / "build" / "semantic_manifest.json").read_text())
    for model in manifest["semantic_models"]:
        relation = model["node_relation"]
        relation["database"] = None
        relation["relation_name"] = f'"{relation["schema_name"]}"."{relation["alias"]}"'
    for spine in manifest.get("project_configuration", {}).get("time_spines", []):
        spine["node_relation"]["database"] = None
        spine["node_relation"]["relation_name"] = (
            f'"{spine["node_relation"]["schema_name"]}"."{spine["node_relation"]["alias"]}"')
    path = tmp_path / "semantic_manifest.json"
    path.write_text(json.dumps(manifest))
    service = TallyService(Settings(project_dir=bikeshare.root,
                                    profiles_dir=bikeshare.profiles_dir, manifest_path=path))
    request = QueryRequest.create(metrics=["revenue"], group_by=["bike__station__city_name"])
    assert '"bikeshare".' not in service.compile(request, ANONYMOUS).sql
    assert service.query(request, ANONYMOUS).table.to_pylist() == \
        bike_service.query(request, ANONYMOUS).table.to_pylist()



def test_dbt_build_run_directly_on_the_served_file(bikeshare_copy):
    """The server lets the file go when idle, so dbt run directly gets its write lock; while a
    writer holds the file, a query that needs the warehouse is a 503 naming `tally build`."""
    from tally.core.request import QueryRequest
    from tally.errors import WarehouseUnavailable
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    warehouse = DuckDBWarehouse(bikeshare_copy.db, idle_release_seconds=0.2)
    service = TallyService(Settings(project_dir=bikeshare_copy.root,
                                    profiles_dir=bikeshare_copy.profiles_dir),
                           warehouse=warehouse)
    rentals = QueryRequest.create(metrics=["rentals"])
    [[before]] = [list(r.values()) for r in service.query(rentals, ANONYMOUS).table.to_pylist()]
    time.sleep(0.6)  # idle: the server has let the file go
    seed = bikeshare_copy.root / "seeds" / "raw_rentals.csv"
    seed.write_text(seed.read_text() + "26,18,109,2025-06-29 09:00:00,10,2.00,completed\n")
    dbt = subprocess.run([str(bikeshare_copy.dbt), "build"], cwd=bikeshare_copy.root,
                         env=bikeshare_copy.env(), capture_output=True, text=True, timeout=600)
    assert dbt.returncode == 0, dbt.stdout[-3000:]
    [[after]] = [list(r.values()) for r in service.query(rentals, ANONYMOUS).table.to_pylist()]
    assert after == before + 1
    # A writer in another process, as dbt is while it builds (once the server let go).
    time.sleep(0.6)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(bikeshare_copy.db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseUnavailable, match="tally build"):
            service.query(QueryRequest.create(metrics=["revenue"]), ANONYMOUS)
    finally:
        writer.kill()
        writer.wait()
