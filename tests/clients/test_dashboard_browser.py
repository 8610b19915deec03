"""The embedded dashboard in headless Chromium (Debian's package, driven by Playwright), one
browser for the module, against the real server: every tile renders; the numbers the page
shows equal the API's answer for the same query and hand-written SQL over raw.*; controls
re-query; a tenant's embed token sees only its country; a broken tile shows its error; a phone's
width fits; a screenshot is written to test-artifacts/."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tally.core.dashboards import Choices, load_dashboards, tile_request
from tests.support.hand_dashboards import margin_by_category, order_metric, retention
from tests.support.hand_sql import FLOAT_TOL, assert_rows_match
from tests.support.paths import PROJECT_DIR, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
SETTLED = """() => {
  const tiles = [...document.querySelectorAll('[data-tile]')];
  const done = ['ready', 'empty', 'error'];
  return tiles.length > 0 && tiles.every(t => done.includes(t.dataset.state));
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make browser` installs it (make test does)")
        pytest.skip("no chromium: `make browser` installs Debian's package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, errors  # no uncaught script error on any page


@pytest.fixture(scope="module")
def overview():
    return load_dashboards(PROJECT_DIR)["overview"]


def open_dashboard(page, url: str) -> dict[str, dict[str, Any]]:
    page.goto(url)
    page.wait_for_function(SETTLED, timeout=60_000)
    return tiles(page)


def tiles(page) -> dict[str, dict[str, Any]]:
    """Each tile's state and what it shows (data attributes)."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-tile]')]
      .map(t => [t.dataset.tile, {state: t.dataset.state,
        rows: JSON.parse(t.dataset.rows || 'null'),
        value: t.dataset.value ?? null, previous: t.dataset.previous ?? null,
        error: t.dataset.errorCode ?? null, text: t.innerText}]))""")


def wait_for_change(page, tile: str, attribute: str, before: str | None) -> None:
    page.wait_for_function(
        """([tile, attr, before]) => { const t = document.querySelector(`[data-tile="${tile}"]`);
           return t.dataset.state !== 'loading' && (t.dataset[attr] ?? null) !== before; }""",
        arg=[tile, attribute, before], timeout=30_000)  # fmt: skip
    page.wait_for_function(SETTLED, timeout=30_000)


def api_rows(server, dashboard, tile: str, choices: Choices | None = None,
             token: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    request = tile_request(dashboard, dashboard.tile(tile), choices)
    body = {"metrics": list(request.metrics), "group_by": list(request.group_by),
            "where": [w if isinstance(w, str) else
                      {"dimension": w.dimension, "op": w.op, "values": list(w.values)}
                      for w in request.where],
            "order_by": list(request.order_by), "limit": request.limit,
            "start": request.start.date().isoformat() if request.start else None,
            "end": request.end.date().isoformat() if request.end else None}  # fmt: skip
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(f"{server.http}/api/v1/query", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hand rows as the page holds them: dates as ISO strings, numbers as floats."""
    def value(v: Any) -> Any:
        if isinstance(v, dt.date):
            return v.isoformat()
        return float(v) if isinstance(v, Decimal) else v
    return [{k: value(v) for k, v in r.items()} for r in rows]


def test_every_tile_renders_with_the_numbers_of_the_api_and_of_hand_sql(
    page, tally_server, overview, raw
):
    shown = open_dashboard(page, f"{tally_server.http}/dashboards/overview")
    assert set(shown) == {t.name for t in overview.tiles}
    assert {name: t["state"] for name, t in shown.items()} == dict.fromkeys(shown, "ready")
    # The page asked what the API answers for the dashboard's own tile queries.
    for t in overview.tiles:
        assert shown[t.name]["rows"] == api_rows(tally_server, overview, t.name), t.name

    start, end = "2025-01-01", "2025-12-31"
    for tile, metric in (("revenue", "revenue"), ("orders", "order_count")):
        expected = order_metric(raw, metric, (), start, end)[0][metric]
        before = order_metric(raw, metric, (), "2024-01-01", "2024-12-31")[0][metric]
        assert float(shown[tile]["value"]) == pytest.approx(float(expected), rel=FLOAT_TOL)
        assert float(shown[tile]["previous"]) == pytest.approx(float(before), rel=FLOAT_TOL)
    assert "$" in shown["revenue"]["text"]  # the metric's format: currency
    assert_rows_match(shown["revenue_by_month"]["rows"], as_json(order_metric(
        raw, "revenue", ["metric_time__month"], start, end)), ["metric_time__month"], "revenue",
        tol=FLOAT_TOL, min_rows=12)  # fmt: skip
    by_country = sorted(as_json(order_metric(raw, "revenue", ["customer__country"], start, end)),
                        key=lambda r: -r["revenue"])[:10]  # fmt: skip
    assert [r["customer__country"] for r in shown["revenue_by_country"]["rows"]] == [
        r["customer__country"] for r in by_country]
    assert_rows_match(shown["revenue_by_country"]["rows"], by_country, ["customer__country"],
                      "revenue", tol=FLOAT_TOL, min_rows=10)  # fmt: skip
    assert_rows_match(shown["margin_by_category"]["rows"], as_json(margin_by_category(
        raw, start, end)), ["product__category"], "gross_margin", tol=FLOAT_TOL)  # fmt: skip
    assert_rows_match(shown["cohort_retention"]["rows"], as_json(retention(raw, 11)),
                      ["cohort__cohort_month__month", "cohort__period_number"], "retention_rate",
                      tol=FLOAT_TOL, min_rows=100)  # fmt: skip
    assert "%" in page.locator('[data-tile="cohort_retention"] table').text_content()


def test_controls_requery_the_tiles_they_affect(page, tally_server, overview, raw):
    shown = open_dashboard(page, f"{tally_server.http}/dashboards/overview")
    margin_before = shown["margin_by_category"]["rows"]

    page.fill('input[data-control="start"]', "2025-07-01")
    page.dispatch_event('input[data-control="start"]', "change")
    wait_for_change(page, "revenue", "value", shown["revenue"]["value"])
    now = tiles(page)
    expected = order_metric(raw, "revenue", (), "2025-07-01", "2025-12-31")[0]["revenue"]
    assert float(now["revenue"]["value"]) == pytest.approx(float(expected), rel=FLOAT_TOL)
    assert len(now["revenue_by_month"]["rows"]) == 6
    assert now["cohort_retention"]["rows"] == shown["cohort_retention"]["rows"]  # no date range

    select = page.locator('select[data-picker="customer__country"]')
    page.wait_for_function("() => document.querySelector('select[data-picker]').dataset.loaded")
    assert "DE" in select.locator("option").all_inner_texts()
    select.select_option("DE")
    wait_for_change(page, "revenue", "value", now["revenue"]["value"])
    picked = tiles(page)
    expected = order_metric(raw, "revenue", (), "2025-07-01", "2025-12-31", ["DE"])[0]["revenue"]
    assert float(picked["revenue"]["value"]) == pytest.approx(float(expected), rel=FLOAT_TOL)
    assert {r["customer__country"] for r in picked["revenue_by_country"]["rows"]} == {"DE"}
    # the picker does not apply to the margin tile (applies_to), the date range does
    margin_now = margin_by_category(raw, "2025-07-01", "2025-12-31")
    assert picked["margin_by_category"]["rows"] != margin_before
    assert_rows_match(picked["margin_by_category"]["rows"], as_json(margin_now),
                      ["product__category"], "gross_margin", tol=FLOAT_TOL)  # fmt: skip

    page.select_option('select[data-control="grain"]', "quarter")
    wait_for_change(page, "revenue_by_month", "rows", json.dumps(picked["revenue_by_month"]["rows"],
                                                                 separators=(",", ":")))
    quarters = tiles(page)["revenue_by_month"]["rows"]
    assert_rows_match(quarters, as_json(order_metric(
        raw, "revenue", ["metric_time__quarter"], "2025-07-01", "2025-12-31", ["DE"])),
        ["metric_time__quarter"], "revenue", tol=FLOAT_TOL, min_rows=2)  # fmt: skip


@pytest.mark.parametrize("state", ["cold", "warm_after_admin", "warm_after_other_tenant"])
def test_a_tenant_token_sees_only_its_country(browser, page, tally_server, overview, mint, raw,
                                             admin_token, state):
    """The tenant matrix's dashboard page (tests/security/test_tenant_matrix.py has the other
    protocols): the tenant's numbers from an empty cache, after an admin opened the same
    dashboard (in a browser of their own), and after another tenant did."""
    invalidated = httpx.post(f"{tally_server.http}/api/v1/cache/invalidate",
                             headers={"authorization": f"Bearer {admin_token}"}, timeout=30)
    assert invalidated.status_code == 200, invalidated.text
    if state != "cold":
        first = admin_token if state == "warm_after_admin" else mint(
            ["DE"], metrics=["revenue", "order_count"])
        elsewhere = browser.new_context(viewport={"width": 1280, "height": 900})
        before = open_dashboard(elsewhere.new_page(),
                                f"{tally_server.http}/dashboards/overview#token={first}")
        elsewhere.close()
        countries = {r["customer__country"] for r in before["revenue_by_country"]["rows"]}
        if state == "warm_after_admin":
            assert {"DE", "FR"} < countries  # every country, in the cache before the tenant
        else:
            assert countries == {"DE"}
    token = mint(["FR"], metrics=["revenue", "order_count"])
    shown = open_dashboard(page, f"{tally_server.http}/dashboards/overview#token={token}")
    expected = order_metric(raw, "revenue", (), "2025-01-01", "2025-12-31", ["FR"])[0]["revenue"]
    assert float(shown["revenue"]["value"]) == pytest.approx(float(expected), rel=FLOAT_TOL)
    assert {r["customer__country"] for r in shown["revenue_by_country"]["rows"]} == {"FR"}
    orders = order_metric(raw, "order_count", (), "2025-01-01", "2025-12-31", ["FR"])
    assert int(shown["orders"]["value"]) == orders[0]["order_count"]
    assert shown["revenue_by_month"]["rows"] == api_rows(tally_server, overview,
                                                         "revenue_by_month", token=token)
    # a metric the token does not pin: its tile is not in the dashboard the tenant is served
    # (not even its name), and the page still renders
    assert "margin_by_category" not in shown
    # the picker lists only the tenant's values
    page.wait_for_function("() => document.querySelector('select[data-picker]').dataset.loaded")
    options = page.locator('select[data-picker="customer__country"] option').all_inner_texts()
    assert options == ["All", "FR"]
    if state == "cold":  # the host hands the same page another user's token: their view
        page.evaluate(f"location.hash = 'token={mint(['DE'], metrics=['revenue'])}'")
        page.wait_for_function("""() => {
          const t = document.querySelector('[data-tile="revenue_by_country"]');
          const rows = t && t.dataset.state === 'ready' ? JSON.parse(t.dataset.rows) : [];
          return rows.length > 0 && rows.every(r => r.customer__country === 'DE'); }""",
                               timeout=30_000)
        page.wait_for_function(SETTLED, timeout=30_000)
        again = tiles(page)
        assert {r["customer__country"] for r in again["revenue_by_country"]["rows"]} == {"DE"}
        assert "orders" not in again  # the new token does not pin order_count


def _host_page(page, server, body: str) -> None:
    """A page of a product app on the server's origin (so the module loads without CORS)."""
    html = (f'<!doctype html><html><head><script type="module" '
            f'src="{server.http}/dashboards/assets/tally-dashboard.js"></script></head>'
            f"<body>{body}</body></html>")  # fmt: skip
    page.route(f"{server.http}/host-app", lambda route: route.fulfill(
        status=200, content_type="text/html", body=html))  # fmt: skip
    page.goto(f"{server.http}/host-app")


def test_a_bad_metric_shows_the_error_state_not_a_blank_page(page, tally_server):
    _host_page(page, tally_server, f"""
      <tally-chart data-tile="bad" metrics="revenu" group-by="metric_time__month"
                   base-url="{tally_server.http}"></tally-chart>
      <tally-kpi data-tile="good" metrics="order_count" base-url="{tally_server.http}"></tally-kpi>
      <tally-dashboard name="overveiw" base-url="{tally_server.http}"></tally-dashboard>""")
    page.wait_for_function(SETTLED)
    shown = tiles(page)
    assert shown["bad"]["state"] == "error" and shown["bad"]["error"] == "unknown_metric"
    assert "Did you mean 'revenue'?" in shown["bad"]["text"]
    assert page.locator('[data-tile="bad"] [role="alert"]').count() == 1
    assert shown["good"]["state"] == "ready" and int(shown["good"]["value"]) > 0
    page.wait_for_function(
        "() => document.querySelector('tally-dashboard').dataset.state === 'error'")
    assert "Did you mean 'overview'?" in page.locator("tally-dashboard").inner_text()


def test_single_tiles_by_attributes_and_empty_state(page, tally_server, raw):
    _host_page(page, tally_server, f"""
      <tally-table data-tile="table" metrics="revenue" group-by="customer__country"
                   order-by="customer__country" start="2025-01-01" end="2025-03-31"
                   base-url="{tally_server.http}"></tally-table>
      <tally-chart data-tile="empty" type="bar" metrics="revenue" group-by="customer__country"
                   start="2030-01-01" end="2030-12-31"
                   base-url="{tally_server.http}"></tally-chart>""")
    page.wait_for_function(SETTLED)
    shown = tiles(page)
    assert_rows_match(shown["table"]["rows"], as_json(order_metric(
        raw, "revenue", ["customer__country"], "2025-01-01", "2025-03-31")),
        ["customer__country"], "revenue", tol=FLOAT_TOL)  # fmt: skip
    assert shown["empty"]["state"] == "empty" and "No data" in shown["empty"]["text"]


def test_keyboard_and_text_alternatives(page, tally_server):
    open_dashboard(page, f"{tally_server.http}/dashboards/overview")
    focused = []
    for _ in range(12):  # a date input is three stops (month, day, year)
        page.keyboard.press("Tab")
        focused.append(page.evaluate("() => document.activeElement.dataset.control || "
                                     "document.activeElement.dataset.picker || ''"))
    assert {"start", "end", "grain", "customer__country"} <= set(focused)
    charts = page.locator("tally-chart [role=img]")
    assert charts.count() == 4
    for i in range(charts.count()):
        assert "chart of" in charts.nth(i).get_attribute("aria-label")
    page.locator('[data-tile="revenue_by_country"] summary').focus()
    page.keyboard.press("Enter")
    assert page.locator('[data-tile="revenue_by_country"] table').is_visible()


def test_a_phone_width_fits_and_screenshots_are_written(browser, tally_server):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, width in (("dashboard-overview.png", 1280), ("dashboard-overview-phone.png", 375)):
        context = browser.new_context(viewport={"width": width, "height": 800})
        pg = context.new_page()
        open_dashboard(pg, f"{tally_server.http}/dashboards/overview")
        overflow = pg.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= width + 1, f"{width}px wide viewport scrolls sideways ({overflow}px)"
        pg.screenshot(path=str(ARTIFACTS / name), full_page=True)
        assert (ARTIFACTS / name).stat().st_size > 10_000
        context.close()


def test_the_example_product_app_embeds_one_tenant_from_another_origin(
    page, tally_server, raw, admin_token, product_port
):
    """clients/dashboard/example/app.py, run as it is: its backend mints the tenant's token,
    its page (another origin, so CORS is real) has one script tag and one element."""
    env = {**os.environ, "TALLY_URL": tally_server.http, "TALLY_ADMIN_TOKEN": admin_token}
    app = subprocess.Popen([sys.executable, str(ROOT / "clients" / "dashboard" / "example" /
                                                "app.py"), "--port", str(product_port),
                            "--country", "DE"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "product page on" in app.stdout.readline()
        shown = open_dashboard(page, f"http://127.0.0.1:{product_port}/")
    finally:
        app.terminate()
        app.wait(timeout=10)
    # the cohort grid cannot be filtered to a tenant: the example does not pin its metric, so
    # the tenant's dashboard does not have that tile at all
    assert "cohort_retention" not in shown
    assert {name: t["state"] for name, t in shown.items()} == dict.fromkeys(shown, "ready")
    for tile, metric in (("revenue", "revenue"), ("orders", "order_count")):
        expected = order_metric(raw, metric, (), "2025-01-01", "2025-12-31", ["DE"])[0][metric]
        assert float(shown[tile]["value"]) == pytest.approx(float(expected), rel=FLOAT_TOL)
    assert {r["customer__country"] for r in shown["revenue_by_country"]["rows"]} == {"DE"}
