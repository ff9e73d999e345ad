"""A clock for tests: time passes only when the code under test sleeps."""

from __future__ import annotations


class FakeClock:
    """``time()`` and ``sleep()`` for injection; sleeping is recorded and costs no real time."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
