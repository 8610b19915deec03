"""The dashboards' HTTP routes in process: definitions (with each metric's label and format
for the caller), the standalone page, the built assets, and the error shape for unknown names."""

from __future__ import annotations

import pytest

from tests.support.assertions import assert_error

pytestmark = pytest.mark.anyio


async def test_list_and_one_dashboard_with_metric_formats(client):
    listed = (await client.get("/api/v1/dashboards")).json()["dashboards"]
    assert {"name": "overview", "title": "Overview"}.items() <= listed[0].items()
    r = await client.get("/api/v1/dashboards/overview")
    assert r.status_code == 200
    d = r.json()
    assert [t["name"] for t in d["tiles"]][:2] == ["revenue", "orders"]
    assert d["controls"]["start"] == "2025-01-01" and d["controls"]["grain"] == "month"
    assert d["metrics"]["revenue"]["format"] == "currency"
    assert d["metrics"]["retention_rate"]["format"] == "percent"
    assert d["metrics"]["order_count"]["label"] == "Orders"


async def test_unknown_dashboard_is_a_404_with_a_suggestion(client):
    for url in ("/api/v1/dashboards/overveiw", "/dashboards/overveiw"):
        body = assert_error(await client.get(url), 404, "unknown_dashboard",
                            "Did you mean 'overview'?")  # fmt: skip
        assert body["details"]["suggestion"] == "overview"


async def test_the_standalone_page_loads_the_components(client):
    r = await client.get("/dashboards/overview")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<tally-dashboard name="overview"' in r.text
    assert "/dashboards/assets/tally-dashboard.js" in r.text
    assert "location.hash" in r.text  # the token comes in the fragment, never to a server


async def test_assets_are_served_and_nothing_outside_their_folder(make_app, tmp_path):
    from tests.support.clients import asgi_client

    (tmp_path / "tally-dashboard.js").write_text("export {};")
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "a.js").write_text("export const a = 1;")
    (tmp_path.parent / "secret.txt").write_text("no")
    async with asgi_client(make_app(dashboard_assets_dir=tmp_path)) as c:
        r = await c.get("/dashboards/assets/tally-dashboard.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert (await c.get("/dashboards/assets/chunks/a.js")).status_code == 200
        assert_error(await c.get("/dashboards/assets/..%2Fsecret.txt"), 404, "not_found")
        assert_error(await c.get("/dashboards/assets/nope.js"), 404, "not_found")
    async with asgi_client(make_app(dashboard_assets_dir=tmp_path / "unbuilt")) as c:
        assert_error(await c.get("/dashboards/assets/tally-dashboard.js"), 404, "not_found",
                     "make dashboard-build")  # fmt: skip


async def test_the_page_names_no_host_it_was_asked_for(client):
    """The page's links are paths: a Host header a client sets is not written into it."""
    r = await client.get("/dashboards/overview", headers={"host": "evil.example"})
    assert r.status_code == 200 and "evil.example" not in r.text
    assert 'src="/dashboards/assets/tally-dashboard.js"' in r.text
