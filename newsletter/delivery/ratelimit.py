"""Token buckets for messages per second and requests per second, shared by sender threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Provider


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``capacity``; a rate of 0 means no limit."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(rate, 1.0)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self, amount: float = 1.0) -> float:
        """Block until ``amount`` tokens are available; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            delay = self._take(amount)
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def _take(self, amount: float) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # A request larger than the bucket is let through once the bucket is full.
            need = min(amount, self.capacity)
            if self._tokens >= need:
                self._tokens -= amount
                return 0.0
            return (need - self._tokens) / self.rate


class Limiter(Protocol):
    def acquire(self, amount: float = 1.0) -> float: ...


#: Makes a rate limiter from ``(name, rate per second, burst capacity)``.
LimiterFactory = Callable[[str, float, float], Limiter]



def provider_limits(
    settings: Settings, provider: Provider, make: LimiterFactory
) -> tuple[Limiter, Limiter]:
    """The requests and messages limiters of ``provider``'s account: the publisher's own
    rates when set (0 = none), else the limits the provider documents for every account."""
    rps = _chosen(settings.rate_requests, provider.default_requests_per_second)
    mps = _chosen(settings.rate_messages, provider.default_messages_per_second)
    return (
        make(f"{provider.name}:requests", rps, max(rps, 1.0)),
        make(f"{provider.name}:messages", mps, max(mps, 1000.0)),
    )


def _chosen(configured: float | None, documented: float) -> float:
    return documented if configured is None else configured
