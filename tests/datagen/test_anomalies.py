"""The generator's anomaly injection: each anomaly changes exactly what it says, against the
same data generated without it; bad specs are one clear error before anything is written."""

from __future__ import annotations

import datetime as dt
import subprocess

import duckdb
import pytest

from tally.datagen import generate
from tally.datagen.anomalies import inject, parse_anomalies
from tests.support.paths import TALLY

DAY = dt.date(2025, 6, 15)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(clean, anomalous): one generation, copied, the copy given every anomaly."""
    import shutil

    root = tmp_path_factory.mktemp("anomalies")
    clean, bad = root / "clean.duckdb", root / "bad.duckdb"
    generate(clean, seed=3, scale=0.3)
    shutil.copy(clean, bad)
    inject(bad, parse_anomalies(["half_day,country_stops:US:10", "stale:customers:4"]),
           DAY.isoformat())
    return clean, bad


def q(path, sql: str):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_half_day_keeps_the_odd_half_of_that_days_orders(pair):
    clean, bad = pair
    day_orders = (f"select order_id from raw.orders o join raw.customers c using (customer_id) "
                  f"where order_date = date '{DAY}' and c.country <> 'US' order by 1")
    kept = {r[0] for r in q(bad, day_orders)}
    assert kept == {r[0] for r in q(clean, day_orders) if r[0] % 2 == 1}
    assert len(kept) > 0
    # Their lines went with them: no line points to a missing order.
    assert q(bad, "select count(*) from raw.order_items i anti join raw.orders o "
                  "using (order_id)") == [(0,)]


def test_country_stops_only_in_its_window(pair):
    clean, bad = pair
    first = DAY - dt.timedelta(days=9)
    count = ("select count(*) from raw.orders o join raw.customers c using (customer_id) "
             "where c.country = 'US' and order_date between date '{}' and date '{}'")
    assert q(bad, count.format(first, DAY)) == [(0,)]
    assert q(clean, count.format(first, DAY))[0][0] > 0
    before = first - dt.timedelta(days=30), first - dt.timedelta(days=1)
    after = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=30)
    for lo, hi in (before, after):
        assert q(bad, count.format(lo, hi)) == q(clean, count.format(lo, hi))


def test_stale_table_never_updates_past_the_cutoff(pair):
    clean, bad = pair
    cutoff = dt.datetime.combine(DAY, dt.time(23, 59, 59)) - dt.timedelta(days=4)
    assert q(bad, "select max(updated_at) from raw.customers") == [(cutoff,)]
    assert q(clean, "select max(updated_at) from raw.customers")[0][0] > cutoff
    assert q(bad, "select count(*) from raw.customers") == q(clean,
                                                              "select count(*) from raw.customers")


@pytest.mark.parametrize(("spec", "message"), [
    ("half_dya", "unknown anomaly 'half_dya'"),
    ("country_stops", "needs an argument"),
    ("stale:products", "must be one of customers, orders"),
    ("half_day:2025-13-01", "month must be"),
])  # fmt: skip
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_anomalies([spec])


def test_the_command_line_option(tmp_path):
    out = tmp_path / "w.duckdb"
    done = subprocess.run([str(TALLY), "generate", "--scale", "0.05", "--out", str(out),
                           "--anomalies", "half_day", "--anomaly-day", "2025-12-01"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "anomaly half_day" in done.stdout
    bad = subprocess.run([str(TALLY), "generate", "--out", str(tmp_path / "x.duckdb"),
                          "--anomalies", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown anomaly" in bad.stderr
    assert not (tmp_path / "x.duckdb").exists()  # refused before generating
