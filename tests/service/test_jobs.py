"""Asynchronous query jobs: statuses from PENDING to SUCCESSFUL or FAILED, a bounded number
running at once, results kept for the retention time (then `query_expired`), ids private to
their caller, cancellation; and through the real service, the same cache as any query."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.errors import QueryExpired, TooManyQueries, UnknownMetric, UnknownQuery
from tally.service import TallyService
from tally.service.jobs import JobManager, JobStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ALICE = Caller.of("test", subject="alice")
BOB = Caller.of("test", subject="bob")


def manager(clock: Clock, **kw) -> JobManager:
    return JobManager(max_running=kw.get("max_running", 1),
                      retention_seconds=kw.get("retention", 60),
                      max_jobs=kw.get("max_jobs", 10), clock=clock)


def test_bounded_running_pending_cancel_and_expiry():
    async def scenario():
        clock = Clock()
        jobs = manager(clock)
        gate = asyncio.Event()
        results = []

        async def slow(job):
            job.compiled("select 1")
            await gate.wait()
            results.append(job.id)
            return "result"  # stands for a QueryResult

        first = jobs.submit(ALICE, "query", slow)
        second = jobs.submit(ALICE, "query", slow)
        third = jobs.submit(ALICE, "query", slow)
        await asyncio.sleep(0.01)
        assert first.status is JobStatus.COMPILED and first.sql == "select 1"
        assert second.status is JobStatus.PENDING and third.status is JobStatus.PENDING
        cancelled = jobs.cancel(third.id, ALICE)
        assert cancelled.status is JobStatus.FAILED
        assert cancelled.error.code == "query_cancelled"
        gate.set()
        await asyncio.gather(first.task, second.task, third.task, return_exceptions=True)
        assert first.status is JobStatus.SUCCESSFUL and second.status is JobStatus.SUCCESSFUL
        assert results == [first.id, second.id]  # one at a time, the cancelled one never ran
        assert jobs.get(first.id, ALICE).result == "result"

        with pytest.raises(UnknownQuery):  # another caller's id is nobody's
            jobs.get(first.id, BOB)
        with pytest.raises(UnknownQuery, match="never created"):
            jobs.get("nope", ALICE)
        clock.now += 61
        with pytest.raises(QueryExpired, match="kept 60 s"):
            jobs.get(first.id, ALICE)
        assert len(jobs) == 0

    asyncio.run(scenario())


def test_failed_job_keeps_its_error_and_the_count_is_bounded():
    async def scenario():
        jobs = manager(Clock(), max_jobs=2)

        async def fails(job):
            raise UnknownMetric("Unknown metric 'x'.")

        async def boom(job):
            raise RuntimeError("not for the caller's eyes")

        failed = jobs.submit(ALICE, "query", fails)
        internal = jobs.submit(ALICE, "query", boom)
        with pytest.raises(TooManyQueries):
            jobs.submit(ALICE, "query", fails)
        await asyncio.gather(failed.task, internal.task)
        assert failed.status is JobStatus.FAILED and failed.error.code == "unknown_metric"
        assert internal.error.code == "internal_error"
        assert "caller's eyes" not in internal.error.message

    asyncio.run(scenario())


@pytest.fixture
def svc(warehouse, service):
    """A fresh service over the session warehouse (its own cache and jobs)."""
    return TallyService(service.settings, warehouse=service.warehouse)


def test_jobs_run_through_the_service_and_its_cache(svc):
    async def scenario():
        request = QueryRequest.create(metrics=["order_count"], group_by=["metric_time__year"])
        first = svc.submit_query(request, ALICE)
        await first.task
        second = svc.submit_query(request, ALICE)
        await second.task
        uncached = svc.submit_query(request, ALICE, read_cache=False)
        await uncached.task
        return first, second, uncached

    first, second, uncached = asyncio.run(scenario())
    assert first.status is JobStatus.SUCCESSFUL and first.sql
    assert first.result.cache.outcome == "miss" and second.result.cache.outcome == "hit"
    assert uncached.result.cache.outcome == "miss"
    assert first.result.table.equals(second.result.table)
    assert svc.cache_stats()["warehouse_executions"] == 2


def test_a_job_runs_as_its_caller(svc):
    """The caller's access context is part of the cache key: two callers never share."""
    async def scenario():
        request = QueryRequest.create(metrics=["order_count"])
        one = svc.submit_query(request, replace(ALICE, access=(("tenant", "a"),)))
        await one.task
        two = svc.submit_query(request, replace(BOB, access=(("tenant", "b"),)))
        await two.task
        return one, two

    one, two = asyncio.run(scenario())
    assert one.result.cache.outcome == two.result.cache.outcome == "miss"
    assert one.caller.subject == "alice" and two.caller.subject == "bob"
