from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.cache.single_flight import SingleFlight


def test_concurrent_callers_share_one_computation():
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    started = threading.Event()

    def work() -> int:
        nonlocal calls
        calls += 1
        started.set()
        time.sleep(0.2)
        return 42

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: flight.do("k", work), range(50)))
    assert calls == 1
    assert all(value == 42 for value, _ in results)
    assert sum(shared for _, shared in results) == 49
    assert flight.in_flight() == 0


def test_errors_are_shared_and_the_next_call_retries():
    flight: SingleFlight[int] = SingleFlight()
    gate = threading.Event()

    def boom() -> int:
        gate.wait(1)
        raise ValueError("warehouse down")

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(flight.do, "k", boom) for _ in range(5)]
        time.sleep(0.05)
        gate.set()
        for f in futures:
            with pytest.raises(ValueError, match="warehouse down"):
                f.result()
    assert flight.do("k", lambda: 7) == (7, False)


def test_different_keys_do_not_wait_on_each_other():
    flight: SingleFlight[str] = SingleFlight()
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(flight.do, "a", lambda: (time.sleep(0.1), "a")[1])
        b = pool.submit(flight.do, "b", lambda: "b")
        assert b.result(timeout=0.09) == ("b", False)
        assert a.result() == ("a", False)
