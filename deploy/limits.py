"""Per-user limits at the gateway: requests per period and answers in flight at once.

One script behind one name must not take the GPU from every ward. Each user
has a sliding window of the times of their accepted requests (`--rate-limit
N/min`: at most N in any minute) and a count of their answers in flight
(`--max-concurrent-per-user K`). A refused request is not counted against the
window, so a client that waits the `Retry-After` it was given is served.
Everything runs on the gateway's one event loop: no locks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
RATE_FORM = "N/s, N/min or N/h, e.g. 30/min"


class LimitError(ValueError):
    """A limit as written cannot be read; the message says the form."""


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}[self.seconds]
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    """`30/min` -> Rate(30, 60.0); also /s and /h."""
    count, sep, unit = text.strip().partition("/")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise LimitError(f"{text!r}: expected {RATE_FORM} (N a whole number, 1 or more)")
    seconds = PERIODS.get(unit.strip().lower())
    if seconds is None:
        raise LimitError(f"{text!r}: the period is s, min or h ({RATE_FORM})")
    return Rate(int(count), seconds)


class UserLimits:
    """The limits of every user; `admit(user)` -> None when served, else the seconds the
    user should wait (for Retry-After). Every admitted request calls `release(user)` once
    when its answer is over."""

    def __init__(self, rate: Rate | None = None, concurrent: int | None = None, clock=None):
        self.rate = rate
        self.concurrent = concurrent
        self.clock = clock or time.monotonic
        self.recent: dict[str, deque] = {}  # user -> times of their last accepted requests
        self.in_flight: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.rate is not None or self.concurrent is not None

    def admit(self, user: str) -> int | None:
        now = self.clock()
        if self.concurrent is not None and self.in_flight.get(user, 0) >= self.concurrent:
            return 1  # an answer in flight ends when it ends: try again shortly
        if self.rate is not None:
            times = self.recent.setdefault(user, deque())
            while times and times[0] <= now - self.rate.seconds:
                times.popleft()
            if len(times) >= self.rate.count:
                return max(1, math.ceil(times[0] + self.rate.seconds - now))
            times.append(now)
        if self.concurrent is not None:
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
        return None

    def release(self, user: str) -> None:
        if self.concurrent is None:
            return
        left = self.in_flight.get(user, 0) - 1
        if left > 0:
            self.in_flight[user] = left
        else:
            self.in_flight.pop(user, None)
