"""The refresh pipeline end to end, with real parts: a project copy served by a real `tally
serve` process, `tally build` run as a command (real dbt builds), webhooks to a receiver on
loopback. A build whose dbt tests fail leaves the served numbers unchanged and sends
`build.failed` with dbt's summary; a good build swaps in, the server is refreshed, and the
saved queries marked for warming are cache hits on their first ask, with the new numbers
(checked against SQL written by hand over the new raw data)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pytest

from tally.core.dashboards import dashboard_requests
from tests.support.hand_sql import expected_rows
from tests.support.paths import TALLY
from tests.support.processes import start_server, stop_server
from tests.support.project_copies import Copy, make_copy
from tests.support.receivers import WebhookReceiver, webhook_receiver
from tests.support.transports import rest_body

pytestmark = [pytest.mark.xdist_group("refresh"), pytest.mark.slow]
ADMIN = "refresh-test-admin-token"
SAVED = "revenue_by_country_by_month"  # marked `warm: true` in the demo's saved queries


class Setup:
    def __init__(self, copy: Copy, receiver: WebhookReceiver, base: str, env: dict) -> None:
        self.copy, self.receiver, self.base, self.env = copy, receiver, base, env

    @property
    def served(self) -> Path:
        return self.copy.project_dir / "warehouse.duckdb"

    def build(self, raw: Path, server: bool = True) -> subprocess.CompletedProcess:
        env = {**self.env, **({"TALLY_SERVER_URL": self.base} if server else {})}
        return subprocess.run([str(TALLY), "build", "--project-dir", str(self.copy.project_dir),
                               "--from", str(raw)], env=env, capture_output=True, text=True,
                              timeout=900)  # fmt: skip

    def query(self, body: dict, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.base}/api/v1/query", json=body, headers=headers, timeout=60)


def generate(path: Path, seed: int) -> Path:
    from tally.datagen import generate as make

    make(path, seed=seed, scale=0.3)
    return path


def hand_revenue_by_country_month(path: Path) -> dict[tuple, Decimal]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = expected_rows(con, "select date_trunc('month', order_date) as m, "
                             "customer__country as c, sum(net_amount) as revenue "
                             "from enriched_orders where order_status = 'completed' "
                             "group by all")  # fmt: skip
    finally:
        con.close()
    return {(r["m"].date() if isinstance(r["m"], dt.datetime) else r["m"], r["c"]): r["revenue"]
            for r in rows}  # fmt: skip


def served_revenue(body: dict) -> dict[tuple, Decimal]:
    return {(dt.date.fromisoformat(r["metric_time__month"][:10]), r["customer__country"]):
            Decimal(str(r["revenue"])) for r in body["data"]
            if r["revenue"] not in (None, 0)}  # a month without completed orders: 0, no row


@pytest.fixture(scope="module")
def setup(warehouse, tmp_path_factory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("refresh")
    copy = make_copy(root)
    # Served to start with: the session's warehouse and its dbt target (no build needed).
    shutil.copy(warehouse.duckdb_path, copy.project_dir / "warehouse.duckdb")
    shutil.copytree(warehouse.target_dir, copy.project_dir / "target")
    (copy.path("semantic/monitors") / "monitors.yml").write_text(
        "monitors:\n  - {name: orders_fresh, type: freshness, source: raw.orders}\n")
    with webhook_receiver() as receiver:
        tally_yml = copy.project_dir / "tally.yml"
        tally_yml.write_text(tally_yml.read_text() + f"\nwebhooks:\n  - url: {receiver.url}\n")
        env = {**os.environ, "TALLY_WEBHOOK_SECRET": receiver.secret.decode(),
               "TALLY_ADMIN_TOKEN": ADMIN, "TALLY_WEBHOOK_BACKOFF_SECONDS": "0.1"}
        env.pop("TALLY_DUCKDB_PATH", None)
        server = start_server(root / "server.log", env, flight=False, clean_env=True,
                              args=("--project-dir", str(copy.project_dir)), ready_timeout=90)
        try:
            yield Setup(copy, receiver, server.http, env)
        finally:
            stop_server(server, check_log=False)


@pytest.fixture(scope="module")
def before(setup) -> dict:
    answer = setup.query({"saved_query": SAVED})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_served_numbers_match_hand_sql_before_any_refresh(setup, before):
    assert served_revenue(before) == hand_revenue_by_country_month(setup.served)


def test_a_build_failing_its_dbt_tests_changes_nothing_served(setup, before, tmp_path):
    bad = generate(tmp_path / "bad.duckdb", seed=8)
    con = duckdb.connect(str(bad))
    con.execute("INSERT INTO raw.orders SELECT * FROM raw.orders ORDER BY order_id LIMIT 1")
    con.close()  # a duplicated order id: the `unique` test on raw.orders.order_id fails
    served_before = setup.served.stat().st_ino
    done = setup.build(bad)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "unique_" in done.stdout and "nothing served was changed" in done.stderr
    assert "refresh: build failed in" in done.stdout
    assert setup.served.stat().st_ino == served_before
    after = setup.query({"saved_query": SAVED}).json()
    assert after["data"] == before["data"]
    assert served_revenue(after) == hand_revenue_by_country_month(setup.served)
    failed = [d for d in setup.receiver.accepted("build.failed")]
    assert len(failed) == 1 and failed[0].signature_ok
    summary = failed[0].payload["data"]["summary"]
    assert "dbt build failed" in summary and "ERROR=1" in summary
    assert "tally build failed" in failed[0].payload["text"]


def test_a_good_build_swaps_in_refreshes_the_server_and_warms_it(setup, before, tmp_path):
    new_raw = generate(tmp_path / "new.duckdb", seed=9)
    expected = hand_revenue_by_country_month(new_raw)
    assert expected != served_revenue(before)  # other data: a stale answer would show
    seen = len(setup.receiver.accepted())
    done = setup.build(new_raw)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for stage in ("build", "invalidate"):
        assert f"refresh: {stage} ok in" in done.stdout
    assert "server warm" in done.stdout and "server monitor" in done.stdout
    # The first ask after the refresh: a cache hit, with the new numbers.
    answer = setup.query({"saved_query": SAVED})
    body = answer.json()
    assert body["cache"]["hit"] is True, body["cache"]
    assert served_revenue(body) == expected == hand_revenue_by_country_month(setup.served)
    events = [d.event for d in setup.receiver.accepted()[seen:]]
    assert events[:2] == ["build.succeeded", "cache.warmed"], events
    warmed = setup.receiver.accepted("cache.warmed")[-1].payload["data"]
    assert warmed["by_source"]["saved_queries"] == 2 and warmed["failed"] == 0
    assert all(d.signature_ok for d in setup.receiver.accepted())
    # Every tile of the project's dashboards, as the dashboard page asks for it: a hit too.
    tiles = dashboard_requests(setup.copy.project_dir)
    assert tiles and warmed["by_source"]["dashboards"] >= 1
    for dashboard, tile, request in tiles:
        tile_answer = setup.query(rest_body(request))
        assert tile_answer.status_code == 200, tile_answer.text
        assert tile_answer.json()["cache"]["hit"] is True, (dashboard, tile)


def test_refresh_is_an_admin_route_with_the_one_error_shape(setup):
    no_token = httpx.post(f"{setup.base}/api/v1/refresh", json={"build": False}, timeout=30)
    assert no_token.status_code == 401
    assert set(no_token.json()["error"]) >= {"code", "message"}
    bad = httpx.post(f"{setup.base}/api/v1/refresh", json={"select": 5},
                     headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    sneaky = httpx.post(f"{setup.base}/api/v1/refresh", json={"select": ["--target-path=/x"]},
                        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert sneaky.status_code == 400 and "not a dbt selector" in sneaky.json()["error"]["message"]
    ok = httpx.post(f"{setup.base}/api/v1/refresh", json={"build": False},
                    headers={"Authorization": f"Bearer {ADMIN}"}, timeout=300)
    assert ok.status_code == 200, ok.text
    names = [s["name"] for s in ok.json()["stages"]]
    assert names == ["build", "invalidate", "warm", "monitor"]
    assert all(s["seconds"] >= 0 for s in ok.json()["stages"])


def test_query_history_records_shapes_and_feeds_warming(setup):
    body = {"metrics": ["order_count"], "group_by": ["metric_time__year"]}
    for _ in range(3):
        assert setup.query(body).status_code == 200
    history = httpx.get(f"{setup.base}/api/v1/query-history", params={"limit": 50},
                        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).json()
    shapes = [s for s in history["shapes"] if s["request"]["metrics"] == ["order_count"]
              and s["request"]["group_by"] == ["metric_time__year"]]
    assert len(shapes) == 1, shapes
    [shape] = shapes
    assert shape["count"] == 3 and shape["cache_hit_ratio"] == round(2 / 3, 3)
    assert shape["p95_ms"] >= shape["median_ms"] > 0
    refreshed = httpx.post(f"{setup.base}/api/v1/refresh", json={"build": False},
                           headers={"Authorization": f"Bearer {ADMIN}"}, timeout=300).json()
    assert refreshed["warm"]["by_source"]["query_history"] >= 1
    again = setup.query(body).json()
    assert again["cache"]["hit"] is True  # warmed from the history
    cli = subprocess.run([str(TALLY), "history", "--project-dir", str(setup.copy.project_dir),
                          "--format", "json"], env=setup.env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert any(s["request"]["metrics"] == ["order_count"] for s in __import__("json").loads(
        cli.stdout))


def test_the_server_builds_itself_on_post_refresh(setup):
    """POST /api/v1/refresh with a dbt selection: the server runs the whole pipeline itself."""
    seen = len(setup.receiver.accepted())
    done = httpx.post(f"{setup.base}/api/v1/refresh",
                      json={"build": True, "select": ["stg_customers"]},
                      headers={"Authorization": f"Bearer {ADMIN}"}, timeout=600)  # fmt: skip
    assert done.status_code == 200, done.text[-3000:]
    stages = {s["name"]: s for s in done.json()["stages"]}
    assert [s["status"] for s in stages.values()] == ["ok"] * 4
    assert stages["build"]["seconds"] > 0
    assert setup.query({"saved_query": SAVED}).json()["cache"]["hit"] is True
    events = [d.event for d in setup.receiver.accepted()[seen:]]
    assert events[:2] == ["build.succeeded", "cache.warmed"], events
