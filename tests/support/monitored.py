"""Warehouses for the monitors' tests, built once per run like the session warehouse: the same
generated shop at a scale where a day holds a few hundred orders (so a 20% row-count check
means something), once clean and once with anomalies injected a week before the end of
history (the generator's last days hold more orders than the days before; see
tally.datagen.anomalies), then `dbt build` and `dbt parse` for real."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.support import shared
from tests.support.builds import BuiltWarehouse, run_dbt

MONITOR_SCALE = 3.0
MONITOR_SEED = 7
ANOMALY_DAY = dt.date(2025, 12, 20)
ANOMALY_COUNTRY = "US"
ANOMALIES = ("half_day", f"country_stops:{ANOMALY_COUNTRY}", "stale:customers")

# The monitors the tests declare (semantic/monitors/ of a project copy), with what each one
# must say on the anomalous data; on clean data every one is quiet.
MONITORS_YML = """\
monitors:
  - name: customers_fresh
    type: freshness
    source: raw.customers            # thresholds: dbt's source freshness (24 h warn, 72 h error)
  - name: orders_fresh
    type: freshness
    source: raw.orders
  - name: daily_orders
    type: row_count
    source: raw.orders
    date_column: order_date
    lookback_days: 7
    threshold_percent: 20
  - name: weekly_orders_by_country
    type: metric
    metric: order_count
    grain: week
    by: customer__country
    lookback: 8
    threshold: 3.5
    min_change_percent: 30
    min_volume: 30
"""
EXPECTED_ALERTS = {"customers_fresh", "daily_orders",
                   f"weekly_orders_by_country[{ANOMALY_COUNTRY}]"}  # fmt: skip


def _builder(anomalies: tuple[str, ...]):
    def build(root: Path) -> dict[str, str]:
        from tally.datagen import generate
        from tally.datagen.anomalies import inject, parse_anomalies

        db = root / "warehouse.duckdb"  # dbt names the catalog after the file
        generate(db, seed=MONITOR_SEED, scale=MONITOR_SCALE)
        if anomalies:
            inject(db, parse_anomalies(anomalies), ANOMALY_DAY.isoformat())
        env = {**os.environ, "TALLY_DUCKDB_PATH": str(db),
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}  # fmt: skip
        for command in ("build", "parse"):
            done = run_dbt([command, "--log-path", str(root / "logs")], root / "target", env)
            if done.returncode != 0:
                pytest.fail(f"dbt {command} failed:\n{done.stdout[-6000:]}")
        return {"root": str(root)}

    return build


def monitored_warehouse(config: pytest.Config, anomalous: bool) -> BuiltWarehouse:
    import json

    name = "monitored_anomalous" if anomalous else "monitored_clean"
    root = Path(shared.build_once(config, name, _builder(ANOMALIES if anomalous else ()))["root"])
    target = root / "target"
    return BuiltWarehouse(root=root, duckdb_path=root / "warehouse.duckdb", target_dir=target,
                          manifest_path=target / "semantic_manifest.json",
                          run_results=json.loads((target / "run_results.json").read_text()))
