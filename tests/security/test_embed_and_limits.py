"""Embed tokens (minted for a browser, pinning a tenant's claims and metrics), rate and
concurrency limits (429 with Retry-After), and stale answers when the warehouse fails."""

from __future__ import annotations

import time

import jwt

from tests.support.clock import FakeClock

QUERY = {"metrics": ["revenue"], "group_by": ["customer__country"]}


def _mint(client, token, **body):
    return client.request("POST", "/api/v1/embed-tokens", token, json=body)


def test_admin_mints_a_token_that_pins_the_tenant(client, secured):
    r = _mint(client, secured.keys["admin"], claims={"roles": ["tenant"], "countries": ["DE"]},
              metrics=["revenue", "order_count"], ttl_seconds=300)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    rows = client.query(QUERY, token).json()["data"]
    assert [row["customer__country"] for row in rows] == ["DE"]
    # only the metrics it pins, and no admin or sql powers
    assert client.query({"metrics": ["order_count"]}, token).status_code == 200
    assert client.query({"metrics": ["cancellation_rate"]}, token).status_code == 403
    assert client.request("GET", "/api/v1/cache", token).status_code == 403
    assert client.query(QUERY, token).json()["sql"] == ""
    listed = {m["name"] for m in client.request("GET", "/api/v1/metrics", token).json()["metrics"]}
    assert listed == {"revenue", "order_count"}


def test_a_browser_cannot_widen_an_embed_token(client, secured):
    token = _mint(client, secured.keys["admin"], claims={"roles": ["tenant"],
                                                          "countries": ["DE"]}).json()["token"]
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["tally"]["claims"]["countries"] = ["DE", "US", "FR"]
    forged = jwt.encode(payload, "a-guess-at-the-embed-secret-of-32-bytes", algorithm="HS256",
                        headers={"kid": "tally-embed"})
    r = client.query(QUERY, forged)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_an_expired_embed_token_is_refused(client, secured):
    token = _mint(client, secured.keys["admin"], claims={"roles": ["tenant"], "countries": ["DE"]},
                  ttl_seconds=1).json()["token"]
    time.sleep(7)  # the expiry plus the embed leeway; no clock to move inside PyJWT
    r = client.query(QUERY, token)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_a_scoped_key_mints_only_its_own_claims(client, secured):
    key = secured.keys["acme-backend"]  # embed scope, claims: tenant of DE
    own = _mint(client, key)
    assert own.status_code == 200, own.text
    rows = client.query(QUERY, own.json()["token"]).json()["data"]
    assert [row["customer__country"] for row in rows] == ["DE"]
    wider = _mint(client, key, claims={"countries": ["DE", "FR"]})
    assert wider.status_code == 403 and "countries" in wider.json()["error"]["message"]
    assert _mint(client, secured.keys["reader"]).status_code == 403  # no embed scope
    assert _mint(client, None).status_code == 401
    assert _mint(client, secured.keys["admin"], ttl_seconds=10**9).status_code == 400


def test_rate_limit_per_key_is_429_with_retry_after(client_with, secured):
    client = client_with(rate_limit_per_minute=60, clock=FakeClock())  # bursts of 10
    token = secured.keys["reader"]
    statuses = [client.request("GET", "/api/v1/metrics", token).status_code for _ in range(14)]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]
    r = client.request("GET", "/api/v1/metrics", token)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(r.headers["retry-after"]) <= 2
    # another key has its own bucket
    assert client.request("GET", "/api/v1/metrics", secured.keys["sql-reader"]).status_code == 200


def test_stale_answers_when_the_warehouse_is_down(secured, tmp_path, warehouse):
    import shutil

    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse.duckdb_path, copy)
    settings = Settings(project_dir=secured.project_dir, manifest_path=warehouse.manifest_path,
                        jwt_secret="x" * 40)
    service = TallyService(settings, warehouse=DuckDBWarehouse(copy, idle_release_seconds=0))
    app = create_app(settings, service=service)
    import asyncio

    import httpx

    async def ask():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            token = secured.keys["reader"]
            fresh = await c.post("/api/v1/query", json=QUERY,
                                 headers={"authorization": f"Bearer {token}"})
            service.invalidate_cache()  # the next ask must go to the warehouse...
            service.warehouse.close()
            copy.unlink()  # ...which is gone
            stale = await c.post("/api/v1/query", json=QUERY,
                                 headers={"authorization": f"Bearer {token}"})
            other = await c.post("/api/v1/query", json={"metrics": ["order_count"]},
                                 headers={"authorization": f"Bearer {token}"})
            return fresh, stale, other

    fresh, stale, other = asyncio.run(ask())
    assert stale.status_code == 200, stale.text
    assert stale.json()["data"] == fresh.json()["data"]
    assert stale.json()["cache"]["stale"] is True
    assert stale.headers["x-tally-stale"] == "true" and stale.headers["x-tally-cache"] == "stale"
    assert other.status_code == 503  # never answered before: nothing to fall back on
    assert other.json()["error"]["code"] == "warehouse_unavailable"
