"""A clock that moves only when the test moves it: cache ages and TTLs without sleeping."""

from __future__ import annotations


class FakeClock:
    """Callable like time.monotonic; `advance` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a monotonic clock never goes back"
        self.now += seconds
