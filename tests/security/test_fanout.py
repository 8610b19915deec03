"""Attack class: one key multiplying its share by minting subjects.

Embed tokens have a subject each (minter/whom), so that one tenant's token never spends
another's limits (test_embed_fairness). The adversarial pass minted thirty subjects from one
embed-scoped key and held 1,005 asynchronous queries in 10 s (the per-caller quota is 100),
keeping the job workers busy for minutes. The tokens of one minter now share, beyond each
token's own limits, TALLY_EMBED_FANOUT times each per-caller limit: requests a minute, queries
at once, asynchronous queries held and their result bytes, and at most half the job workers."""

from __future__ import annotations

import asyncio

import pytest

from tally.core.caller import Caller
from tally.errors import TooManyQueries
from tally.service.jobs import JobManager, JobStatus
from tally.service.limits import Limits, TooManyRequests
from tests.support.clock import FakeClock

QUERY = {"metrics": ["order_count"]}


def _mint(client, minter: str, subject: str) -> str:
    r = client.request("POST", "/api/v1/embed-tokens", minter,
                       json={"claims": {"roles": ["tenant"], "countries": ["DE"]},
                             "subject": subject})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_minted_subjects_share_their_minters_rate(client_with, secured):
    """Rate 60 a minute: bursts of 10 per token, 20 for a minter's tokens together (fanout
    2): the third token of one minter is refused at once, another minter's is not."""
    client = client_with(rate_limit_per_minute=60, embed_fanout=2, clock=FakeClock())
    minter = secured.keys["acme-backend"]
    tokens = [_mint(client, minter, f"user-{i}") for i in range(3)]
    codes = [[client.request("GET", "/api/v1/metrics", t).status_code for _ in range(10)]
             for t in tokens]
    assert codes[0] == [200] * 10 and codes[1] == [200] * 10  # each within its own burst
    assert codes[2][0] == 429  # ...but the minter's tokens together have spent theirs
    other = _mint(client, secured.keys["admin"], "someone")
    assert client.request("GET", "/api/v1/metrics", other).status_code == 200


def _embed(minter: str, whom: str) -> Caller:
    return Caller(subject=f"embed:{minter}/{whom}", extra={"group": f"embed:{minter}"})


def test_a_minters_tokens_hold_at_most_fanout_times_a_callers_jobs():
    async def scenario():
        jobs = JobManager(max_running=4, retention_seconds=600, max_jobs=1000,
                          max_per_caller=5, fanout=3)
        gate = asyncio.Event()

        async def wait(job):
            await gate.wait()
            return None

        held = 0
        with pytest.raises(TooManyQueries, match="minting key"):
            for i in range(30):  # thirty subjects of one minter, two jobs each
                for _ in range(2):
                    jobs.submit(_embed("key:acme", f"u{i}"), "query", wait)
                    held += 1
        assert held == 15  # 5 x fanout 3
        alone = jobs.submit(_embed("key:other", "u0"), "query", wait)  # another minter: room
        await asyncio.sleep(0.05)
        running = [j for j in jobs._jobs.values() if j.status is not JobStatus.PENDING]
        acme = [j for j in running if j.caller.group == "embed:key:acme"]
        assert len(acme) <= 2 and alone in running  # at most half the workers for one group
        gate.set()
        await asyncio.gather(*(j.task for j in jobs._jobs.values()))

    asyncio.run(scenario())


def test_a_minters_tokens_run_at_most_fanout_times_a_callers_queries():
    limits = Limits(0, 2, clock=lambda: 0.0, pool_size=16, fanout=2)
    releases = [limits.acquire(_embed("key:acme", f"u{i}")) for i in range(2) for _ in range(2)]
    with pytest.raises(TooManyRequests, match="group:embed:key:acme"):
        limits.acquire(_embed("key:acme", "u9"))
    limits.acquire(_embed("key:other", "u0"))()  # another minter
    for release in releases:
        release()
    limits.acquire(_embed("key:acme", "u9"))()
