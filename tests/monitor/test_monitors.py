"""Monitors on real warehouses (generated, built by dbt): on data with injected anomalies (half
a day's orders missing, a country that stops ordering, a table that stops updating) they catch
exactly those; on the same data without them they stay quiet. Values are checked against SQL
written by hand over raw.*; `tally monitor` exits 1 naming each alert, 0 on clean data; alerts
and recoveries go out once per change of state, by webhook and by email; the server exposes
the state at GET /api/v1/monitors and as Prometheus gauges."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
from collections.abc import Iterator

import duckdb
import pytest
from prometheus_client import CollectorRegistry

from tally.errors import ConfigurationError
from tally.monitor import MonitorState, load_monitors, run_monitors
from tally.monitor.runner import MonitorRunner, reference_day
from tally.notify import Notifier, NotifyConfig
from tally.notify.config import EmailRoute, Webhook
from tally.warehouse.duckdb import DuckDBWarehouse
from tests.support.builds import BuiltWarehouse
from tests.support.clients import SyncASGIClient
from tests.support.hand_sql import VALID_ORDERS, scalar
from tests.support.monitored import (
    ANOMALY_COUNTRY,
    ANOMALY_DAY,
    EXPECTED_ALERTS,
    MONITORS_YML,
    monitored_warehouse,
)
from tests.support.paths import TALLY
from tests.support.project_copies import Copy, make_copy
from tests.support.receivers import smtp_server, webhook_receiver
from tests.support.services import ServiceFactory, SharedEngines

pytestmark = pytest.mark.xdist_group("monitors")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Copy:
    copy = make_copy(tmp_path_factory.mktemp("monitored"))
    folder = copy.path("semantic/monitors")
    for f in folder.glob("*.yml"):
        f.unlink()
    (folder / "monitors.yml").write_text(MONITORS_YML)
    return copy


@pytest.fixture(scope="module")
def anomalous(request) -> BuiltWarehouse:
    return monitored_warehouse(request.config, anomalous=True)


@pytest.fixture(scope="module")
def clean(request) -> BuiltWarehouse:
    return monitored_warehouse(request.config, anomalous=False)


def factory(built: BuiltWarehouse, project: Copy, engines: SharedEngines) -> ServiceFactory:
    return ServiceFactory(engines, built.manifest_path, lambda: DuckDBWarehouse(built.duckdb_path),
                          project_dir=project.project_dir, as_of_date=ANOMALY_DAY)  # fmt: skip


@pytest.fixture(scope="module")
def services(anomalous, clean, project, engines) -> Iterator[dict[str, ServiceFactory]]:
    made = {"anomalous": factory(anomalous, project, engines),
            "clean": factory(clean, project, engines)}  # fmt: skip
    yield made
    for f in made.values():
        f.close()


@pytest.fixture(scope="module")
def results(services) -> dict[str, dict]:
    out = {}
    for name, f in services.items():
        service = f.service()
        monitors = load_monitors(project_dir := service.settings.resolved_project_dir())
        assert project_dir.exists()
        out[name] = {r.key: r for r in run_monitors(service, monitors)}
    return out


def alerting(results: dict) -> set[str]:
    return {k for k, r in results.items() if r.status == "alert"}


def test_clean_data_is_quiet(results):
    clean = results["clean"]
    assert {r.status for r in clean.values()} == {"ok"}, [r.message for r in clean.values()
                                                          if r.status != "ok"]
    # Every country with volume was checked, not skipped: quiet because nothing is wrong.
    checked = [r for k, r in clean.items() if k.startswith("weekly_orders_by_country[")
               and not r.details.get("skipped")]  # fmt: skip
    assert len(checked) >= 3


def test_injected_anomalies_are_caught_exactly(results):
    got = results["anomalous"]
    assert alerting(got) == EXPECTED_ALERTS
    assert not [r for r in got.values() if r.status == "error"]
    assert "raw.customers" in got["customers_fresh"].message


def hand_orders(path, body: str):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return scalar(con, body)
    finally:
        con.close()


def test_row_count_values_against_hand_sql(results, anomalous, clean):
    for name, built in (("anomalous", anomalous), ("clean", clean)):
        r = results[name]["daily_orders"]
        con = duckdb.connect(str(built.duckdb_path), read_only=True)
        try:
            per_day = dict(con.execute(
                "select order_date, count(*) from raw.orders where order_date between ? and ? "
                "group by 1", [ANOMALY_DAY - dt.timedelta(days=7), ANOMALY_DAY]).fetchall())
        finally:
            con.close()
        assert r.value == per_day[ANOMALY_DAY]
        baseline = [per_day.get(ANOMALY_DAY - dt.timedelta(days=i), 0) for i in range(1, 8)]
        assert r.expected == statistics.median(baseline)
    # Half of the day's orders are gone: about -50% against the clean day's own baseline.
    assert results["anomalous"]["daily_orders"].details["change_percent"] < -40


def test_metric_values_against_hand_sql(results, anomalous, clean):
    week = ANOMALY_DAY - dt.timedelta(days=ANOMALY_DAY.weekday() + 7)  # last complete week
    weeks = [week - dt.timedelta(weeks=i) for i in range(8, -1, -1)]

    def weekly(path, country):
        return [hand_orders(path, f"select count(*) from enriched_orders where "
                            f"customer__country = '{country}' and order_date between "
                            f"date '{w}' and date '{w + dt.timedelta(days=6)}'") for w in weeks]

    for name, built in (("anomalous", anomalous), ("clean", clean)):
        for country in (ANOMALY_COUNTRY, "DE"):
            series = weekly(built.duckdb_path, country)
            r = results[name][f"weekly_orders_by_country[{country}]"]
            assert r.value == series[-1], (name, country)
            assert r.expected == statistics.median(series[:-1]), (name, country)
    assert results["anomalous"][f"weekly_orders_by_country[{ANOMALY_COUNTRY}]"].value == 0
    assert VALID_ORDERS  # the hand SQL's definitions (docs/data.md) are the ones above


def test_freshness_uses_dbt_source_thresholds_and_the_as_of_date(results, anomalous):
    r = results["anomalous"]["customers_fresh"]
    newest = hand_orders(anomalous.duckdb_path, "select max(updated_at) from raw.customers")
    reference = dt.datetime.combine(ANOMALY_DAY + dt.timedelta(days=1), dt.time())
    assert r.value == round((reference - newest).total_seconds() / 3600, 2)
    assert r.expected == 72  # dbt's error_after: {count: 72, period: hour} in _sources.yml
    assert results["clean"]["customers_fresh"].status == "ok"


def run_cli(built: BuiltWarehouse, project: Copy, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(built.duckdb_path),
           "TALLY_MANIFEST_PATH": str(built.manifest_path),
           "TALLY_AS_OF_DATE": ANOMALY_DAY.isoformat()}  # fmt: skip
    return subprocess.run([str(TALLY), "monitor", "--project-dir", str(project.project_dir),
                           *args], env=env, capture_output=True, text=True, timeout=300)


def test_tally_monitor_exits_1_naming_each_anomaly_and_0_on_clean_data(anomalous, clean,
                                                                       project):
    bad = run_cli(anomalous, project)
    assert bad.returncode == 1, bad.stderr
    alert_lines = [line for line in bad.stdout.splitlines() if line.startswith("ALERT")]
    assert {line.split()[1] for line in alert_lines} == EXPECTED_ALERTS
    good = run_cli(clean, project, "--format", "json")
    assert good.returncode == 0, good.stderr
    assert {r["status"] for r in json.loads(good.stdout)} == {"ok"}


def test_alerts_and_recoveries_once_per_change_by_webhook_and_email(services, tmp_path,
                                                                    monkeypatch):
    with webhook_receiver() as receiver, smtp_server() as box:
        monkeypatch.setenv("TALLY_WEBHOOK_SECRET", receiver.secret.decode())
        config = NotifyConfig(
            webhooks=(Webhook(receiver.url, ("monitor.alert", "monitor.recovered")),),
            email=EmailRoute(("oncall@example.com",), ("monitor.alert", "monitor.recovered")),
        )
        state = MonitorState(tmp_path / "state.json")

        def run(which: str) -> None:
            service = services[which].service(smtp_host=box.host, smtp_port=box.port,
                                              webhook_backoff_seconds=0.05)  # fmt: skip
            notifier = Notifier(config, service.settings, CollectorRegistry())
            MonitorRunner(service, notifier, state).run()
            notifier.close(10)

        run("anomalous")
        run("anomalous")  # still alerting: no new page
        alerts = receiver.accepted("monitor.alert")
        assert sorted(d.payload["data"]["result"]["monitor"]
                      + (f"[{g}]" if (g := d.payload["data"]["result"]["group"]) else "")
                      for d in alerts) == sorted(EXPECTED_ALERTS)  # fmt: skip
        assert all(d.signature_ok for d in receiver.accepted())
        run("clean")
        recovered = receiver.accepted("monitor.recovered")
        assert len(recovered) == len(EXPECTED_ALERTS)
        assert receiver.events() == ["monitor.alert"] * 3 + ["monitor.recovered"] * 3
        run("clean")  # still fine: nothing more
        assert len(receiver.accepted()) == 2 * len(EXPECTED_ALERTS)
        assert len(box.messages) == 2 * len(EXPECTED_ALERTS)
        assert sum("ALERT" in s for s in box.subjects()) == len(EXPECTED_ALERTS)


def test_server_exposes_monitor_state_and_prometheus_gauges(services):
    f = services["anomalous"]
    app = f.app()
    client = SyncASGIClient(app)
    body = client.get("/api/v1/monitors").json()
    assert body["alerting"] == len(EXPECTED_ALERTS)
    keys = {(m["monitor"], m["group"]) for m in body["monitors"] if m["status"] == "alert"}
    assert keys == {("customers_fresh", None), ("daily_orders", None),
                    ("weekly_orders_by_country", ANOMALY_COUNTRY)}  # fmt: skip
    metrics = client.get("/metrics").text
    assert 'tally_monitor_status{group="",monitor="daily_orders"} 2.0' in metrics
    assert 'tally_monitor_status{group="",monitor="orders_fresh"} 0.0' in metrics
    assert "tally_monitors_alerting 3.0" in metrics


def test_reference_day_is_the_projects_as_of_date(project):
    day, now = reference_day(project.project_dir)
    assert day == dt.date(2025, 12, 31)  # dbt_project.yml's vars: as_of_date
    assert now == dt.datetime(2026, 1, 1)


@pytest.mark.parametrize(("yml", "message"), [
    ("monitors:\n  - {name: a, type: freshnes, source: raw.orders}\n", "Did you mean 'freshness'"),
    ("monitors:\n  - {name: a, type: row_count, source: raw.orders, date_column: d, "
     "treshold_percent: 5}\n", "Did you mean 'threshold_percent'"),
    ("monitors:\n  - {name: a, type: metric}\n", "needs metric"),
    ("monitors:\n  - {name: a, type: freshness, model: x, source: raw.y}\n", "exactly one"),
    ("other: 1\n", "one key"),
])  # fmt: skip
def test_monitor_yaml_mistakes_name_the_file_and_the_fix(tmp_path, project, yml, message):
    copy = make_copy(tmp_path)
    (copy.path("semantic/monitors") / "monitors.yml").write_text(yml)
    with pytest.raises(ConfigurationError, match=message) as e:
        load_monitors(copy.project_dir)
    assert "monitors.yml" in e.value.message


def test_an_unknown_source_is_an_error_result_with_a_suggestion(services, tmp_path):
    copy = make_copy(tmp_path)
    (copy.path("semantic/monitors") / "monitors.yml").write_text(
        "monitors:\n  - {name: a, type: freshness, source: raw.order}\n")
    service = services["clean"].service(project_dir=copy.project_dir)
    [r] = run_monitors(service, load_monitors(copy.project_dir))
    assert r.status == "error" and "Did you mean 'raw.orders'" in r.message


def test_the_server_runs_the_monitors_on_a_schedule(services):
    from tally.refresh.runtime import RefreshRuntime
    from tests.support.waiting import wait_until

    service = services["anomalous"].service(monitor_interval=0.2)
    runtime = RefreshRuntime(service, history=False)
    runtime.start(warm_at_start=False)
    try:
        wait_until(lambda: runtime.monitors.last_run is not None, timeout=60)
        first = runtime.monitors.last_run
        assert {r.key for r in runtime.monitors.results if r.status == "alert"} \
            == EXPECTED_ALERTS  # fmt: skip
        wait_until(lambda: runtime.monitors.last_run != first, timeout=60)  # and again
    finally:
        runtime.stop()
