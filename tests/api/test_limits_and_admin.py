"""Request size limits, short echoes of a caller's input in error messages, and the admin
token that guards cache control."""

from __future__ import annotations

import json

import pytest

from tests.support.assertions import assert_error
from tests.support.clients import asgi_client

pytestmark = pytest.mark.anyio


async def test_a_body_over_the_limit_is_a_413(make_app):
    app = make_app(max_body_bytes=10_000)
    huge = {"metrics": ["revenue"], "group_by": ["x" * 20_000]}
    async with asgi_client(app) as c:
        declared = await c.post("/api/v1/query", json=huge)

        async def chunks():  # no Content-Length: the size shows only as the body streams in
            data = json.dumps(huge).encode()
            for i in range(0, len(data), 4096):
                yield data[i:i + 4096]

        streamed = await c.post("/api/v1/query", content=chunks(),
                                headers={"content-type": "application/json"})
        graphql = await c.post("/graphql", json={"query": "{ " + "x" * 20_000 + " }"})
        graphql_streamed = await c.post("/graphql", content=chunks(),
                                        headers={"content-type": "application/json"})
        fine = await c.post("/api/v1/query", json={"metrics": ["revenue"]})
    for r in (declared, streamed, graphql, graphql_streamed):
        assert_error(r, 413, "payload_too_large", "10000 bytes")
    assert len(declared.text) < 300
    assert fine.status_code == 200


async def test_the_default_limit_is_one_mebibyte(client):
    just_over = {"metrics": ["revenue"], "where": ["x" * (1024 * 1024)]}
    assert_error(await client.post("/api/v1/query", json=just_over), 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        {"metrics": ["revenue"], "group_by": ["y" * 200_000]},
        {"metrics": ["z" * 200_000]},
        {"metrics": ["revenue"], "order_by": ["-" + "w" * 200_000]},
        {"metrics": ["revenue"], "q" * 200_000: 1},
        {"metrics": ["revenue"], "where": [{"dimension": "v" * 200_000, "value": "US"}]},
        {"saved_query": "s" * 200_000},
    ],
    ids=["group_by", "metric", "order_by", "unknown_field", "filter_dimension", "saved_query"],
)
async def test_error_messages_echo_only_a_short_prefix(client, body):
    r = await client.post("/api/v1/query", json=body)
    assert 400 <= r.status_code < 500
    assert len(r.text) < 1000, r.text[:1500]


async def test_headers_and_paths_are_not_echoed_in_full(client):
    long = "a" * 5000
    for r in (
        await client.post("/api/v1/query", json={"metrics": ["revenue"]},
                          headers={"accept": f"application/{long}"}),
        await client.post("/api/v1/query", content="{}", headers={"content-type": f"text/{long}"}),
        await client.get(f"/api/v1/{long}"),
        await client.get(f"/api/v1/metrics/{long}"),
        await client.get(f"/api/v1/saved-queries/{long}"),
        await client.get(f"/api/v1/dimension-values?dimension={long}"),
    ):
        assert 400 <= r.status_code < 500 and len(r.text) < 1000, r.text[:1500]


ADMIN = [("post", "/api/v1/cache/invalidate"), ("get", "/api/v1/cache")]


@pytest.mark.parametrize("method,path", ADMIN)
async def test_admin_routes_need_the_token_when_one_is_set(make_app, method, path):
    app = make_app(admin_token="s3cret-token")
    async with asgi_client(app) as c:
        call = getattr(c, method)
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"},
                        {"authorization": "Basic s3cret-token"},
                        {"authorization": "Bearer s3cret-token-and-more"},
                        {"authorization": "Bearer ünïcode".encode()}):
            r = await call(path, headers=headers)
            assert_error(r, 401, "unauthorized", "Bearer")
            assert r.headers["www-authenticate"] == "Bearer"
            assert "s3cret" not in r.text
        ok = await call(path, headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        # Probes, scrapes and queries stay open.
        assert (await c.get("/health/live")).status_code == 200
        assert (await c.get("/health/ready")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200
        assert (await c.post("/api/v1/query", json={"metrics": ["revenue"]})).status_code == 200


async def test_a_refused_invalidate_forgets_nothing(make_app):
    app = make_app(admin_token="s3cret-token")
    body = {"metrics": ["revenue"]}
    async with asgi_client(app) as c:
        await c.post("/api/v1/query", json=body)
        assert (await c.post("/api/v1/cache/invalidate")).status_code == 401
        assert (await c.post("/api/v1/query", json=body)).headers["x-tally-cache"] == "hit"
        done = await c.post("/api/v1/cache/invalidate",
                            headers={"authorization": "bearer s3cret-token"})
        assert done.status_code == 200
        assert (await c.post("/api/v1/query", json=body)).headers["x-tally-cache"] == "miss"


@pytest.mark.parametrize("method,path", ADMIN)
async def test_admin_routes_are_open_without_a_token(client, method, path):
    assert (await getattr(client, method)(path)).status_code == 200
