"""The replicas of one gateway arm: which one answers, and which are out.

A conversation stays on the replica that answered its first turn while that
replica is healthy, so vLLM's prefix cache holds its history on every turn; a
new conversation goes to the healthy replica with the fewest requests in
flight. A replica that fails is taken out and probed on `/health` with a
backoff that doubles up to the probe interval, so it is back within one
interval of answering again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

FIRST_PROBE = 0.5  # seconds after a failure; doubled on each failed probe
AFFINITY_LIMIT = 100_000  # conversations remembered per arm, the oldest forgotten first


@dataclass
class Replica:
    url: str
    in_flight: int = 0
    healthy: bool = True
    failed_probes: int = 0
    probe_at: float = 0.0  # when to probe it next, while it is out


class ReplicaPool:
    """One arm's replicas; not thread-safe (the gateway's event loop is its only user)."""

    def __init__(self, urls: tuple[str, ...], probe_interval: float = 5.0):
        self.replicas = [Replica(url) for url in urls]
        self.probe_interval = probe_interval
        self._affinity: OrderedDict[str, Replica] = OrderedDict()

    def pick(self, conversation: str, exclude: tuple[Replica, ...] = ()) -> Replica | None:
        """The conversation's replica if it is healthy, else the least busy healthy one
        (which the conversation then keeps); None when every replica is out."""
        kept = self._affinity.get(conversation)
        if kept is not None and kept.healthy and kept not in exclude:
            self._affinity.move_to_end(conversation)
            return kept
        healthy = [r for r in self.replicas if r.healthy and r not in exclude]
        if not healthy:
            return None
        chosen = min(healthy, key=lambda r: r.in_flight)  # the first of equals: stable
        self._affinity[conversation] = chosen
        self._affinity.move_to_end(conversation)
        if len(self._affinity) > AFFINITY_LIMIT:
            self._affinity.popitem(last=False)
        return chosen

    def failed(self, replica: Replica) -> None:
        if replica.healthy:
            replica.healthy, replica.failed_probes = False, 0
            replica.probe_at = time.monotonic() + self._backoff(0)

    def probed(self, replica: Replica, answered: bool) -> None:
        if answered:
            replica.healthy, replica.failed_probes = True, 0
        else:
            replica.failed_probes += 1
            replica.probe_at = time.monotonic() + self._backoff(replica.failed_probes)

    def due(self) -> list[Replica]:
        """The replicas out whose next probe is due."""
        now = time.monotonic()
        return [r for r in self.replicas if not r.healthy and r.probe_at <= now]

    def _backoff(self, failed_probes: int) -> float:
        return min(FIRST_PROBE * 2**failed_probes, self.probe_interval)
