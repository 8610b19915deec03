from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tally.cache.single_flight import SingleFlight


def test_concurrent_callers_share_one_computation():
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    joined = threading.Semaphore(0)

    def work() -> int:
        nonlocal calls
        calls += 1
        # Still running until the 49 others have joined, however slowly their threads start.
        for _ in range(49):
            assert joined.acquire(timeout=30), "the other callers never joined"
        return 42

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: flight.do("k", work, joined.release), range(50)))
    assert calls == 1
    assert all(value == 42 for value, _ in results)
    assert sum(shared for _, shared in results) == 49
    assert flight.in_flight() == 0


def test_errors_are_shared_and_the_next_call_retries():
    flight: SingleFlight[int] = SingleFlight()
    joined = threading.Semaphore(0)
    runs = 0

    def boom() -> int:
        nonlocal runs
        runs += 1
        for _ in range(4):  # fail only once the four others wait on this computation
            assert joined.acquire(timeout=30), "the other callers never joined"
        raise ValueError("warehouse down")

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(flight.do, "k", boom, joined.release) for _ in range(5)]
        for f in futures:
            with pytest.raises(ValueError, match="warehouse down"):
                f.result()
    assert runs == 1
    assert flight.do("k", lambda: 7) == (7, False)


def test_different_keys_do_not_wait_on_each_other():
    flight: SingleFlight[str] = SingleFlight()
    a_may_finish = threading.Event()

    def slow_a() -> str:
        assert a_may_finish.wait(30)
        return "a"

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(flight.do, "a", slow_a)
        b = pool.submit(flight.do, "b", lambda: "b")
        # b answers while a is still computing (a ends only after b's answer)
        assert b.result(timeout=30) == ("b", False)
        assert not a.done()
        a_may_finish.set()
        assert a.result() == ("a", False)


@pytest.mark.anyio
async def test_async_waiters_hold_no_thread_and_a_cancelled_caller_cancels_nothing():
    import asyncio

    from tally.cache.single_flight import AsyncSingleFlight

    flight: AsyncSingleFlight[int] = AsyncSingleFlight()
    runs = 0
    joined = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return 42

    def on_join() -> None:
        nonlocal joined
        joined += 1

    threads = threading.active_count()
    callers = [asyncio.create_task(flight.do("k", work, on_join)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert flight.in_flight() == 1 and joined == 19 and threading.active_count() == threads
    callers[0].cancel()  # the leader's client goes away: the others still get the value
    gate.set()
    results = await asyncio.gather(*callers[1:])
    assert runs == 1 and all(value == 42 for value, _ in results)
    assert sum(shared for _, shared in results) == 19
    assert flight.in_flight() == 0
    assert await flight.do("k", work) == (42, False)  # a later call runs again


@pytest.mark.anyio
async def test_async_errors_are_shared_and_the_next_call_retries():
    import asyncio

    from tally.cache.single_flight import AsyncSingleFlight

    flight: AsyncSingleFlight[int] = AsyncSingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("warehouse down")

    outcomes = await asyncio.gather(*(flight.do("k", boom) for _ in range(5)),
                                    return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes)

    async def seven() -> int:
        return 7

    assert await flight.do("k", seven) == (7, False)
