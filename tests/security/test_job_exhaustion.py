"""Attack class: one tenant exhausting what the server holds for everyone: asynchronous queries.

The job table was server-wide: one tenant's jobs (REST, or GraphQL createQuery) filled its 1,000
places and every other caller got 429 for the retention time; finished results sat outside any
memory bound. Now a caller holds at most its quota, a full table costs the largest holder's
finished jobs, results count against per-caller and global byte budgets, and one caller's
backlog waits behind other callers' queries."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tally.core.caller import Caller
from tally.errors import QueryExpired, TooManyQueries
from tally.service.jobs import JobManager, JobStatus

QUERY = {"metrics": ["order_count"], "group_by": ["metric_time__day", "customer__country"]}


class Session:
    """One event loop for a whole scenario (jobs run on the app's loop between requests)."""

    def __init__(self, app) -> None:
        self.app = app

    def run(self, scenario) -> None:
        async def main():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                self.http = c
                await scenario(self)

        asyncio.run(main())

    async def request(self, method: str, url: str, token: str, **kw) -> httpx.Response:
        return await self.http.request(method, url, headers={"authorization": f"Bearer {token}"},
                                       **kw)

    async def submit(self, token: str, body: dict) -> httpx.Response:
        return await self.request("POST", "/api/v1/queries", token, json=body)

    async def done(self, token: str, job_id: str) -> dict:
        for _ in range(3000):
            body = (await self.request("GET", f"/api/v1/queries/{job_id}", token)).json()
            if body["status"] in ("SUCCESSFUL", "FAILED"):
                return body
            await asyncio.sleep(0.01)
        raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def session_with(secured):
    return lambda **overrides: Session(secured.app_factory(rate_limit_per_minute=0, **overrides))


def test_one_tenant_cannot_fill_the_job_table_for_the_others(session_with, secured):
    flooder, other = secured.tenant("DE"), secured.tenant("FR")

    async def scenario(s):
        accepted = 0
        for i in range(40):
            r = await s.submit(flooder, {**QUERY, "limit": i + 1})
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "too_many_queries"
                assert "TALLY_JOB_MAX_PER_CALLER" in r.json()["error"]["message"]
                break
            assert r.status_code == 202, r.text
            accepted += 1
        assert accepted == 10
        r = await s.submit(other, QUERY)
        assert r.status_code == 202, r.text
        assert (await s.done(other, r.json()["id"]))["status"] == "SUCCESSFUL"

    session_with(job_max_held=30, job_max_per_caller=10).run(scenario)


def test_graphql_aliases_cannot_fill_the_job_table_either(session_with, secured):
    flooder, other = secured.tenant("DE"), secured.tenant("FR")
    fields = " ".join(f'q{i}: createQuery(environmentId: 1, metrics: [{{name: "order_count"}}], '
                      f"limit: {i + 1}) {{ queryId }}" for i in range(30))

    async def scenario(s):
        r = await s.request("POST", "/api/graphql", flooder,
                            json={"query": f"mutation {{ {fields} }}"})
        body = r.json()
        created = [v for v in (body.get("data") or {}).values() if v]
        assert len(created) <= 10
        assert body.get("errors"), body
        mine = await s.submit(other, QUERY)
        assert mine.status_code == 202, mine.text

    session_with(job_max_held=30, job_max_per_caller=10).run(scenario)


def test_results_count_against_the_callers_budget_and_the_oldest_go_first(session_with,
                                                                           secured):
    """Each result is ~37 kB (2,000 rows of a day x country grid); a budget of 100 kB keeps its
    newest results, forgets its oldest (query_expired, saying why) and another caller's
    results are untouched."""
    admin, other = secured.keys["admin"], secured.tenant("FR")

    async def scenario(s):
        theirs = (await s.submit(other, QUERY)).json()["id"]
        assert (await s.done(other, theirs))["status"] == "SUCCESSFUL"
        ids = []
        for i in range(6):
            ids.append((await s.submit(admin, {**QUERY, "limit": 2000 + i})).json()["id"])
            assert (await s.done(admin, ids[-1]))["status"] == "SUCCESSFUL"
        statuses = [await s.request("GET", f"/api/v1/queries/{i}", admin) for i in ids]
        codes = [r.status_code for r in statuses]
        assert set(codes) == {200, 410}, codes
        assert codes == sorted(codes, reverse=True)  # the oldest went first, the newest kept
        gone = next(r for r in statuses if r.status_code == 410)
        assert "memory budget" in gone.json()["error"]["message"]
        assert (await s.request("GET", f"/api/v1/queries/{theirs}", other)).status_code == 200

    session_with(cache_enabled=False, job_results_max_bytes_per_caller=100_000).run(scenario)


def test_a_result_larger_than_the_budget_fails_clearly(session_with, secured):
    admin = secured.keys["admin"]

    async def scenario(s):
        job = (await s.submit(admin, QUERY)).json()["id"]
        done = await s.done(admin, job)
        assert done["status"] == "FAILED"
        assert done["error"]["code"] == "result_too_large"
        assert "/api/v1/exports" in done["error"]["message"]

    session_with(cache_enabled=False, job_results_max_bytes_per_caller=20_000).run(scenario)


# The manager's fair shares, step by step (scheduling is the manager's own logic) ---------------

ALICE = Caller.of("test", subject="alice")
BOB = Caller.of("test", subject="bob")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class Result:
    """Stands for a QueryResult of a given size."""

    def __init__(self, nbytes: int) -> None:
        self.table = type("T", (), {"nbytes": nbytes, "num_rows": 1})()
        self.sql = ""


def test_a_full_table_costs_the_largest_holder_not_a_small_one():
    async def scenario():
        jobs = JobManager(max_running=4, retention_seconds=600, max_jobs=4, clock=Clock(),
                          max_per_caller=4)

        async def quick(job):
            return Result(10)

        held = [jobs.submit(ALICE, "query", quick) for _ in range(4)]
        await asyncio.gather(*(j.task for j in held))
        bob = jobs.submit(BOB, "query", quick)  # full, but alice holds more: her oldest goes
        await bob.task
        with pytest.raises(QueryExpired, match="held the most"):
            jobs.get(held[0].id, ALICE)
        with pytest.raises(TooManyQueries):  # alice (3) holds more than bob (1): no room
            jobs.submit(ALICE, "query", quick)

    asyncio.run(scenario())


def test_one_callers_backlog_waits_behind_another_callers_query():
    async def scenario():
        jobs = JobManager(max_running=2, retention_seconds=600, max_jobs=100, clock=Clock(),
                          max_running_per_caller=1)
        gate = asyncio.Event()
        order = []

        async def slow(job):
            order.append(job.caller.subject)
            await gate.wait()
            return Result(1)

        backlog = [jobs.submit(ALICE, "query", slow) for _ in range(5)]
        await asyncio.sleep(0.01)
        bobs = jobs.submit(BOB, "query", slow)
        await asyncio.sleep(0.01)
        assert bobs.status is JobStatus.RUNNING  # not behind alice's four waiting
        assert order == ["alice", "bob"]
        gate.set()
        await asyncio.gather(*(j.task for j in [*backlog, bobs]))
        assert not jobs._own_slots  # nothing left over per caller

    asyncio.run(scenario())


def test_the_global_byte_budget_trims_the_largest_holder():
    async def scenario():
        jobs = JobManager(max_running=4, retention_seconds=600, max_jobs=100, clock=Clock(),
                          max_bytes=1000, max_bytes_per_caller=800)

        def sized(n):
            async def work(job):
                return Result(n)
            return work

        small = jobs.submit(BOB, "query", sized(200))
        await small.task
        alice = []
        for _ in range(4):
            alice.append(jobs.submit(ALICE, "query", sized(300)))
            await alice[-1].task
        assert jobs.result_bytes <= 1000
        assert jobs.get(small.id, BOB).status is JobStatus.SUCCESSFUL  # bob's is kept
        assert jobs.get(alice[-1].id, ALICE).status is JobStatus.SUCCESSFUL
        with pytest.raises(QueryExpired):
            jobs.get(alice[0].id, ALICE)

    asyncio.run(scenario())


def test_a_jobs_result_keeps_no_encoded_text(session_with, secured):
    """A job holds its result without the cache entry's memo (where encoders keep a result's
    JSON text, several times its Arrow bytes, outside every job budget once the cache lets the
    entry go)."""
    admin = secured.keys["admin"]

    async def scenario(s):
        job = (await s.submit(admin, QUERY)).json()["id"]
        assert (await s.done(admin, job))["status"] == "SUCCESSFUL"
        for _ in range(2):
            r = await s.request("GET", f"/api/v1/queries/{job}/result", admin)
            assert r.status_code == 200 and r.json()["row_count"] > 1000
        held = s.app.state.service.jobs.get(job, s.app.state.service.authenticate(
            admin, transport="rest"))
        assert held.result.memo is None

    session_with().run(scenario)
