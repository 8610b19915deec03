"""The query history over a real service: shapes counted with their cache hits and durations,
never results or credentials; persistent across restarts; bounded; the last 24 hours' most
frequent unrestricted shapes are what warming replays."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.history import QueryHistory, request_of
from tally.refresh.warming import HistorySource, warm


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def history(tmp_path):
    clock = Clock()
    h = QueryHistory(tmp_path / "history.sqlite", max_shapes=10, flush_seconds=0, clock=clock)
    h.clock_ref = clock  # type: ignore[attr-defined]
    yield h
    h.close()


@pytest.fixture
def service(services, history):
    svc = services.service()
    svc.telemetry.observers.append(history.observe)
    return svc


YEARLY = QueryRequest.create(metrics=["order_count"], group_by=["metric_time__year"])
MONTHLY = QueryRequest.create(metrics=["revenue"], group_by=["metric_time__month"],
                              where=[{"dimension": "customer__country", "op": "=",
                                      "values": ["US"]}])  # fmt: skip


def test_counts_hits_and_durations_per_shape(service, history):
    for _ in range(4):
        service.query(YEARLY, Caller(transport="rest"))
    service.query(MONTHLY, Caller(transport="graphql"))
    shapes = {s.request["metrics"][0]: s for s in history.shapes(limit=10)}
    yearly, monthly = shapes["order_count"], shapes["revenue"]
    assert (yearly.count, yearly.cache_hit_ratio) == (4, 0.75)  # one miss, then hits
    assert (monthly.count, monthly.cache_hit_ratio) == (1, 0.0)
    assert [s.request["metrics"][0] for s in history.shapes(limit=10)] == ["order_count",
                                                                          "revenue"]
    assert yearly.p95_ms >= yearly.median_ms > 0
    # The shape replays as the same request; the file holds no result values.
    assert request_of(monthly.request) == MONTHLY
    assert request_of(yearly.request) == YEARLY


def test_no_credentials_or_results_are_stored(service, history, tmp_path):
    caller = Caller(transport="rest", subject="key-secret-name",
                    claims={"token": "very-secret-claim"})  # fmt: skip
    service.query(YEARLY, caller)
    history.flush()
    raw = (tmp_path / "history.sqlite").read_bytes()
    assert b'"order_count"' in raw  # the shape is there...
    assert b"very-secret-claim" not in raw and b"key-secret-name" not in raw  # ...no one's keys
    [shape] = history.shapes()
    assert set(shape.to_dict()) == {"key", "request", "restricted", "count", "count_24h",
                                    "last_seen", "median_ms", "p95_ms", "cache_hit_ratio",
                                    "rollup_candidate"}


def test_restricted_shapes_are_never_warmed(service, history):
    restricted = Caller(transport="rest", access=(("tenant", "t1"),))
    service.query(MONTHLY, restricted)
    service.query(YEARLY, Caller(transport="rest"))
    [shape] = history.shapes(hours=24, unrestricted_only=True)
    assert shape.request["metrics"] == ["order_count"]
    assert {s.restricted for s in history.shapes()} == {True, False}


def test_warming_from_history_makes_the_next_ask_a_hit(services, service, history):
    for _ in range(2):
        service.query(YEARLY, Caller(transport="rest"))
    fresh = services.service()  # a new server: empty cache
    report = warm(fresh, [HistorySource(history, limit=5)], say=lambda _: None)
    assert report.warmed == 1 and report.by_source == {"query_history": 1}
    assert fresh.query(YEARLY, Caller(transport="rest")).cache.hit


def test_only_the_last_24_hours_count_for_warming(service, history):
    service.query(MONTHLY, Caller(transport="rest"))
    history.flush()
    history.clock_ref.now += 25 * 3600  # a day and an hour later
    service.query(YEARLY, Caller(transport="rest"))
    recent = history.shapes(hours=24)
    assert [s.request["metrics"] for s in recent] == [["order_count"]]
    assert len(history.shapes()) == 2  # still remembered, just not recent


def test_bounded_and_persistent(tmp_path, services):
    clock = Clock()
    path = tmp_path / "h.sqlite"
    h = QueryHistory(path, max_shapes=10, flush_seconds=0, clock=clock)
    svc = services.service()
    svc.telemetry.observers.append(h.observe)
    for limit in range(1, 13):  # twelve shapes, one second apart
        svc.query(dataclasses.replace(YEARLY, limit=limit), Caller(transport="rest"))
        clock.now += 1
    h.close()
    reopened = QueryHistory(path, max_shapes=10, flush_seconds=0, clock=clock)
    try:
        limits = sorted(s.request["limit"] for s in reopened.shapes(limit=100))
        assert limits == list(range(3, 13))  # the two least recently seen were dropped
    finally:
        reopened.close()


def test_slowest_first(history):
    from types import SimpleNamespace

    def result(ms: float, hit: bool = False):
        return SimpleNamespace(cache=SimpleNamespace(outcome="hit" if hit else "miss"),
                               timing=SimpleNamespace(total_ms=ms))  # fmt: skip

    history.observe(YEARLY, Caller(), result(5.0))
    history.observe(MONTHLY, Caller(), result(50.0))
    history.observe(MONTHLY, Caller(), result(1.0, hit=True))
    slow = history.shapes("slow", limit=10)
    assert [s.request["metrics"][0] for s in slow] == ["revenue", "order_count"]
    assert slow[0].p95_ms == 50.0 and slow[0].median_ms == 25.5
    assert json.dumps(slow[0].to_dict())  # JSON-able for the API


def test_frequent_slow_saved_queries_are_rollup_candidates(history):
    from types import SimpleNamespace

    def result(ms: float, hit: bool):
        return SimpleNamespace(cache=SimpleNamespace(outcome="hit" if hit else "miss"),
                               timing=SimpleNamespace(total_ms=ms))  # fmt: skip

    slow = QueryRequest.create(saved_query="slow_one")
    cached = QueryRequest.create(saved_query="cached_one")
    rare = QueryRequest.create(saved_query="rare_one")
    for i in range(10):
        history.observe(slow, Caller(), result(400.0, hit=i % 2 == 0))
        history.observe(cached, Caller(), result(2.0, hit=i > 0))
        history.observe(YEARLY, Caller(), result(900.0, hit=False))  # not a saved query
    history.observe(rare, Caller(), result(900.0, hit=False))
    hints = {s.request["saved_query"] or s.request["metrics"][0]: s.rollup_candidate
             for s in history.shapes(limit=10)}
    assert hints == {"slow_one": True, "cached_one": False, "order_count": False,
                     "rare_one": False}
