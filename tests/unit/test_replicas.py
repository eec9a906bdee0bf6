"""The choice of replica within an arm: affinity, least in flight, out and back."""

import time

from deploy.monitor import parse_metrics, replica_rows
from deploy.replicas import FIRST_PROBE, ReplicaPool


def test_a_conversation_stays_on_its_replica_and_new_ones_go_to_the_least_busy():
    pool = ReplicaPool(("http://a", "http://b", "http://c"))
    first = pool.pick("chat-1")
    first.in_flight += 1
    second = pool.pick("chat-2")
    second.in_flight += 1
    third = pool.pick("chat-3")
    assert len({first.url, second.url, third.url}) == 3  # each new one on an idle replica
    third.in_flight += 5
    first.in_flight -= 1  # chat-1's turn is over: its replica is the least busy again
    assert pool.pick("chat-4") is first
    assert pool.pick("chat-3") is third  # busy, but its conversation stays


def test_a_failed_replica_is_out_its_conversations_move_and_it_is_probed_with_backoff():
    pool = ReplicaPool(("http://a", "http://b"), probe_interval=2.0)
    a = pool.pick("chat-1")
    pool.failed(a)
    moved = pool.pick("chat-1")
    assert moved is not a and moved.healthy
    assert pool.pick("chat-1") is moved  # and it stays where it moved
    assert pool.pick("new", exclude=(moved,)) is None  # nothing healthy left but the one excluded
    assert pool.due() == []  # not yet: the first probe waits FIRST_PROBE
    a.probe_at = time.monotonic() - 1
    assert pool.due() == [a]
    before = time.monotonic()
    for failures in range(1, 6):
        pool.probed(a, answered=False)
        wait = a.probe_at - before
        assert min(FIRST_PROBE * 2**failures, 2.0) <= wait < min(FIRST_PROBE * 2**failures, 2.0) + 1
    pool.probed(a, answered=True)
    assert a.healthy and a.failed_probes == 0
    a.in_flight, moved.in_flight = 0, 3
    assert pool.pick("another") is a  # back, and the least busy


class Recorded:
    """The gateway's Recorder, in memory."""

    def __init__(self):
        self.exchanges = []

    def assignments(self):
        return {}

    def assign(self, user, arm):
        pass

    def record(self, exchange):
        self.exchanges.append(exchange)

    def feedback(self, feedback):
        return None


def test_a_request_a_dead_replica_refuses_is_answered_by_another_and_it_is_taken_out():
    from fastapi.testclient import TestClient
    from openai_standin import StandIn

    from deploy.gateway import Arm, create_app
    from deploy.process import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    with StandIn(lambda body: "多喝水。", model="m") as alive:
        recorder = Recorded()
        app = create_app([Arm("r", f"{dead}+{alive.url}", "m")], recorder)
        with TestClient(app) as client:
            body = {"user": "u1", "messages": [{"role": "user", "content": "头痛"}]}
            first = client.post("/v1/chat/completions", json=body)
            second = client.post("/v1/chat/completions", json=body | {"user": "u2"})
            metrics = client.get("/metrics").text
    assert first.status_code == second.status_code == 200
    assert first.json()["choices"][0]["message"]["content"] == "多喝水。"
    assert [e.replica for e in recorder.exchanges] == [alive.url, alive.url]
    assert all(e.error is None for e in recorder.exchanges)
    assert len(alive.requests) == 2
    labels = f'arm="r",replica="{dead}"'
    assert f"medfactory_gateway_replica_errors_total{{{labels}}} 1.0" in metrics
    assert f"medfactory_gateway_replica_healthy{{{labels}}} 0.0" in metrics
    assert f"medfactory_gateway_replica_requests_total{{{labels}}} 1.0" in metrics
    assert 'medfactory_gateway_errors_total{arm="r"} 0.0' in metrics

    # `monitor` shows a row per replica: the dead one out, with its failed attempt.
    rows = {row.name: row for row in replica_rows(parse_metrics(metrics), {}, seconds=1.0)}
    assert set(rows) == {f"r {dead}", f"r {alive.url}"}
    assert rows[f"r {dead}"].values["healthy"] is False
    assert rows[f"r {dead}"].values["error_rate"] == 1.0
    assert rows[f"r {alive.url}"].values["healthy"] is True
    assert rows[f"r {alive.url}"].values["requests_per_s"] == 2.0
    assert rows[f"r {alive.url}"].values["running"] == 0
