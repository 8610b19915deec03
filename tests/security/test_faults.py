"""Attack class: input that made the server fault (500, internal_error, a traceback), found by
the adversarial pass. Each is now the caller's error, with a clear message."""

from __future__ import annotations

import json
import time

import jwt
import pytest

QUERY = {"metrics": ["revenue"], "group_by": ["metric_time__year"]}


@pytest.mark.parametrize(("start", "end"), [("0001-01-01T00:00:00+14:00", None),
                                            (None, "9999-12-31T23:59:59-14:00")])
def test_an_instant_out_of_range_in_utc_is_a_400(client, secured, start, end):
    token = secured.keys["admin"]
    r = client.query({**QUERY, "start": start, "end": end}, token)
    assert r.status_code == 400, r.text
    assert "out of range" in r.json()["error"]["message"]
    r = client.request("GET", "/api/v1/dimension-values", token, params={
        "dimension": "customer__country", **({"start": start} if start else {"end": end})})
    assert r.status_code == 400, r.text
    g = client.graphql('query($s: String, $e: String) { query(metrics: ["revenue"], '
                       'start: $s, end: $e) { rows } }', token, s=start, e=end).json()
    assert g["errors"][0]["extensions"]["code"] == "invalid_request", g


def _raw_json(client, path: str, token: str, body: str):
    """JSON text as a client may send it: `\\ud800` escapes a lone surrogate, which no UTF-8
    (and so no Python json.dumps a test would call) can carry."""
    return client.request("POST", path, token, content=body.encode(),
                          headers={"content-type": "application/json"})


@pytest.mark.parametrize("where", [
    '"{{ Dimension(\'customer__country\') }} = \'\\ud800\'"',
    '{"dimension": "customer__country", "op": "=", "value": "x\\ud800"}',
])
def test_a_lone_surrogate_in_a_filter_is_a_400(client, secured, where):
    r = _raw_json(client, "/api/v1/query", secured.keys["admin"],
                  f'{{"metrics": ["revenue"], "where": [{where}]}}')
    assert r.status_code == 400, r.text
    assert "lone surrogate" in r.json()["error"]["message"]


def test_error_messages_echoing_odd_text_are_still_json(client, secured):
    r = _raw_json(client, "/api/v1/query", secured.keys["admin"],
                  '{"metrics": ["reven\\ud800ue"]}')
    assert r.status_code == 400
    assert json.loads(r.text)["error"]["code"] in ("invalid_request", "unknown_metric")


@pytest.mark.parametrize("metrics", [
    '[{name: "revenue", alias: "metric_time__year"}]',  # an alias that names a group-by
    '[{name: "revenue", alias: "x"}, {name: "order_count", alias: "x"}]',  # two alike
    '[{name: "revenue", alias: "order_count"}, {name: "order_count"}]',  # another metric
])
def test_dbt_sl_aliases_that_would_collide_are_a_400(client, secured, metrics):
    mutation = ("mutation { createSynchronousQuery(environmentId: 1, metrics: " + metrics +
                ', groupBy: [{name: "metric_time", grain: YEAR}]) { status error '
                "jsonResult(orient: RECORDS) } }")
    body = client.request("POST", "/api/graphql", secured.keys["admin"],
                          json={"query": mutation}).json()
    assert body["errors"][0]["extensions"]["code"] == "invalid_request", body
    assert "Alias" in body["errors"][0]["message"]


def test_a_jwt_whose_exp_is_text_is_a_401(client, secured):
    now = int(time.time())
    token = jwt.encode({"iss": "https://auth.example.test", "aud": "tally-tests",
                        "sub": "carol", "iat": now, "exp": str(now + 600)},
                       secured.jwt_secret, algorithm="HS256")
    r = client.query(QUERY, token)
    assert r.status_code == 401, r.text
    assert "'exp' claim must be a number" in r.json()["error"]["message"]
