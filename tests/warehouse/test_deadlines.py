"""The one watchdog thread behind query time limits: an action runs when its time passes, never
after its block has ended, in deadline order whatever order they were set in."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from tally.warehouse.deadlines import Watchdog
from tests.support.waiting import wait_until


def test_the_action_runs_when_the_time_passes_and_the_event_says_so():
    fired = threading.Event()
    with Watchdog().limit(0.05, fired.set) as timed_out:
        assert fired.wait(5)
        assert timed_out.is_set()


def test_no_action_after_the_block_has_ended():
    calls: list[str] = []
    dog = Watchdog()
    with dog.limit(0.05, lambda: calls.append("late")) as timed_out:
        pass
    done = threading.Event()
    with dog.limit(0.1, done.set):  # a later deadline: once it fires, the first one has passed
        assert done.wait(5)
    assert calls == [] and not timed_out.is_set()


def test_once_the_block_has_ended_the_action_has_run_or_never_will():
    """What lets a query's cursor be reused: a limit that did not fire before the block ended
    can no longer fire. Limits about as long as their blocks, so both orders happen."""
    dog = Watchdog()
    called: list[int] = []
    fired: set[int] = set()
    for i in range(300):
        with dog.limit(0.001, lambda i=i: called.append(i)) as timed_out:
            time.sleep(0.001)
        if timed_out.is_set():
            fired.add(i)
    last = threading.Event()
    with dog.limit(0.05, last.set):  # the watchdog has passed every earlier deadline after it
        assert last.wait(5)
    assert set(called) == fired


def test_no_limit_never_runs_the_action():
    with Watchdog().limit(None, lambda: (_ for _ in ()).throw(AssertionError)) as timed_out:
        time.sleep(0.01)
    assert not timed_out.is_set()


def test_a_shorter_deadline_set_later_fires_first():
    order: list[str] = []
    both = threading.Barrier(3)
    dog = Watchdog()

    def limited(name: str, seconds: float) -> None:
        fired = threading.Event()
        with dog.limit(seconds, lambda: (order.append(name), fired.set())):
            fired.wait(5)
        both.wait(5)

    slow = threading.Thread(target=limited, args=("slow", 0.5))
    slow.start()
    time.sleep(0.05)  # the long deadline is the one the watchdog is waiting for
    fast = threading.Thread(target=limited, args=("fast", 0.05))
    fast.start()
    both.wait(5)
    assert order == ["fast", "slow"]


def test_an_action_that_fails_does_not_stop_the_watchdog(caplog):
    dog = Watchdog()

    def broken() -> None:
        raise RuntimeError("cursor already closed")

    with dog.limit(0.02, broken) as timed_out:
        wait_until(timed_out.is_set, timeout=5)
    fired = threading.Event()
    with dog.limit(0.02, fired.set):
        assert fired.wait(5)
    assert "could not interrupt" in caplog.text


def test_a_cancel_that_blocks_does_not_delay_another_querys_limit():
    """A driver's cancel may block (it opens a connection to send it): it runs on a thread of
    its own, and the next deadline still fires on time."""
    dog = Watchdog()
    release = threading.Event()
    with dog.limit(0.01, lambda: release.wait(10)) as first:
        wait_until(first.is_set, timeout=5)
    fired = threading.Event()
    started = time.monotonic()
    with dog.limit(0.05, fired.set):
        assert fired.wait(5)
    assert time.monotonic() - started < 2
    release.set()


def test_an_ended_limit_lets_go_of_what_its_action_holds():
    """A cancelled deadline waits in the heap until its time (a minute, say): it must not keep
    the cursor or connection its action refers to alive meanwhile."""

    class Cursor:
        def interrupt(self) -> None:
            raise AssertionError("never called")

    dog = Watchdog()
    cursor = Cursor()
    ref = weakref.ref(cursor)
    with dog.limit(60, cursor.interrupt):
        pass
    del cursor
    gc.collect()
    assert ref() is None
    for _ in range(500):  # many ended limits: still nothing fires and nothing is held
        with dog.limit(60, Cursor().interrupt):
            pass
