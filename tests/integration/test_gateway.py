"""The A/B gateway in front of a real vLLM serving two versions (base and LoRA)."""

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from ab_helpers import BACKEND_KEY, REPO, Gateway, ask
from scipy.stats import binom

from deploy.gateway import Arm, assign
from deploy.monitor import gateway_rows, scrape, vllm_rows
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.ab.recorder import exchanges_since
from medfactory.store.db import ExchangeFeedback, open_store


def question(user: str, turn: int) -> list[dict]:
    return [{"role": "user", "content": f"{user} 第{turn}问：头痛三天，需要做什么检查？"}]


def metric(url: str, name: str, **labels: str) -> float:
    samples = scrape(url, "gw-key")
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# Whole, streamed with usage asked for, streamed without.
TURNS = [{}, {"stream": True, "stream_options": {"include_usage": True}}, {"stream": True}]


def test_forty_users_keep_their_arm_the_split_follows_the_weights_and_nothing_is_lost(
    ab_server, store_url, tmp_path
):
    backend = ab_server.spec.base_url
    arms = [f"base={backend},model=tiny,weight=1", f"lora={backend},model=lora,weight=3"]
    expected_arms = [Arm("base", backend, "tiny", 1), Arm("lora", backend, "lora", 3)]
    users = [f"clinician-{i:02d}" for i in range(40)]
    jobs = [(user, turn) for turn in range(3) for user in users]
    with Gateway(arms, store_url, tmp_path / "gateway.log") as gateway:
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(
                    lambda job: (
                        ask(gateway.url, job[0], question(*job), **TURNS[job[1]]) | {"user": job[0]}
                    ),
                    jobs,
                )
            )
        by_arm = {"base": 0, "lora": 0}
        for result in results:
            by_arm[result["arm"]] += 1
        requests_per_arm = {
            arm: metric(gateway.url, "medfactory_gateway_requests_total", arm=arm)
            for arm in ("base", "lora")
        }
    assert all(r["status"] == 200 and "error" not in r for r in results)

    # Every user stayed on the arm the stable hash gives, and got its served model.
    for user in users:
        mine = {r["arm"] for r in results if r["user"] == user}
        assert mine == {assign("ab", user, expected_arms).name}
    served = {"base": "tiny", "lora": "lora"}
    assert all(r["model"] == served[r["arm"]] for r in results)
    lora_users = sum(1 for u in users if assign("ab", u, expected_arms).name == "lora")
    low, high = binom.interval(0.99, 40, 0.75)
    assert low <= lora_users <= high

    # Every exchange is in the store, as the client saw it.
    rows = exchanges_since(open_store(store_url), "ab")
    assert len(rows) == 120
    recorded = {row["completion_id"]: row for row in rows}
    for result in results:
        row = recorded[result["id"]]
        assert (row["user"], row["arm"], row["answer"]) == (
            result["user"], result["arm"], result["text"],
        )  # fmt: skip
        if "usage" in result:
            assert row["completion_tokens"] == result["usage"]["completion_tokens"] > 0
        else:  # the usage the gateway asked for on its own account stays with the gateway
            assert row["stream"] and not any('"usage"' in e for e in result["events"])
            assert 0 < row["completion_tokens"] <= 8  # counted from the backend's usage
        assert row["error"] is None and row["finish_reason"] in ("stop", "length")
        if row["stream"]:
            assert 0 < row["ttft"] <= row["latency"]
    assert requests_per_arm == {arm: float(count) for arm, count in by_arm.items()}

    # A restart with other weights keeps everyone where they were.
    flipped = [f"base={backend},model=tiny,weight=3", f"lora={backend},model=lora,weight=1"]
    with Gateway(flipped, store_url, tmp_path / "gateway2.log") as gateway:
        for user in users[:10]:
            again = ask(gateway.url, user, question(user, 9))
            assert again["arm"] == assign("ab", user, expected_arms).name


def test_feedback_only_from_its_user_one_current_rating_history_kept_no_text_in_logs(
    ab_server, tmp_path
):
    backend = ab_server.spec.base_url
    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    arms = [f"v1={backend},model=tiny", f"v2={backend},model=lora"]
    log = tmp_path / "gateway.log"
    with Gateway(arms, store_url, log, "--api-key", "gw-key", "--experiment", "trial") as gateway:
        url = gateway.url
        models = requests.get(f"{url}/v1/models", headers={"Authorization": "Bearer gw-key"})
        assert [m["id"] for m in models.json()["data"]] == ["trial"]
        refused = requests.post(f"{url}/v1/chat/completions", json={"messages": [], "user": "a"})
        assert refused.status_code == 401
        nobody = requests.post(
            f"{url}/v1/chat/completions", headers={"Authorization": "Bearer gw-key"},
            json={"model": "x", "messages": question("x", 1)},
        )  # fmt: skip
        assert nobody.status_code == 400 and nobody.json()["error"]["param"] == "user"

        answer = ask(url, "alice", question("alice", 1), key="gw-key")

        def feedback(**body) -> requests.Response:
            return requests.post(
                f"{url}/v1/feedback", json=body, headers={"Authorization": "Bearer gw-key"}
            )

        assert feedback(id=answer["id"], user="bob", rating=1).status_code == 404
        assert feedback(id="chatcmpl-none", user="alice", rating=1).status_code == 404
        assert feedback(id=answer["id"], user="alice", rating=5).status_code == 400
        assert feedback(id=answer["id"], user="alice").status_code == 400
        assert feedback(id=answer["id"], user="alice", rating=1).status_code == 200
        assert feedback(id=answer["id"], user="alice", rating=-1).status_code == 200
        better = "建议先测量血压，必要时到神经内科就诊。"
        assert feedback(id=answer["id"], user="alice", correction=better).status_code == 200
        arm = answer["arm"]
        thumbs = [
            metric(url, "medfactory_gateway_feedback_total", arm=arm, rating=r)
            for r in ("up", "down")
        ]
    assert thumbs == [1.0, 1.0]  # every thumb counted as given

    store = open_store(store_url)
    with store.session() as session:
        history = session.query(ExchangeFeedback).order_by(ExchangeFeedback.id).all()
        kept = [(f.rating, f.correction, f.current) for f in history]
    assert kept == [(1, "", False), (-1, "", False), (-1, better, True)]

    report = subprocess.run(
        [sys.executable, "-m", "medfactory", "ab", "report", "--experiment", "trial", "--db",
         store_url, "--json", "--out", str(tmp_path / "report")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)["arms"][arm]
    assert (counts["thumbs_up"], counts["thumbs_down"], counts["corrections"]) == (0, 1, 1)
    assert (tmp_path / "report" / "report.png").stat().st_size > 5000

    written = log.read_text(encoding="utf-8")
    assert "头痛" not in written and better not in written and answer["text"] not in written


def test_a_backend_killed_mid_stream_fails_that_exchange_and_the_other_arm_serves_on(
    ab_server, tiny_model, tmp_path
):
    # Its own server: this test kills it.
    doomed_spec = ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(),
        served_model_name="doomed", max_model_len=2048, api_key=BACKEND_KEY, enforce_eager=True,
    )  # fmt: skip
    doomed = Server(doomed_spec, tmp_path / "doomed.log").start()
    try:
        arm_list = [
            Arm("doomed", doomed_spec.base_url, "doomed"),
            Arm("survivor", ab_server.spec.base_url, "lora"),
        ]
        arms = [f"{a.name}={a.endpoint},model={a.model}" for a in arm_list]
        users = {assign("ab", f"user-{i}", arm_list).name: f"user-{i}" for i in range(20)}
        store_url = f"sqlite:///{tmp_path / 'ab.db'}"
        with Gateway(arms, store_url, tmp_path / "gateway.log") as gateway:
            body = {
                "model": "ab", "user": users["doomed"], "messages": question("d", 1),
                "stream": True, "max_tokens": 1500, "ignore_eos": True,
            }  # fmt: skip
            reply = requests.post(
                f"{gateway.url}/v1/chat/completions", json=body, stream=True, timeout=120
            )
            events = []
            for line in reply.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                    if len(events) == 4:  # the answer is streaming: kill its server
                        os.killpg(doomed.process.pid, signal.SIGKILL)
            survivor = ask(gateway.url, users["survivor"], question("s", 1), stream=True)
            again = ask(gateway.url, users["doomed"], question("d", 2))
            errors = metric(gateway.url, "medfactory_gateway_errors_total", arm="doomed")
    finally:
        doomed.stop()

    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "mid-stream" in error["message"]
    assert survivor["status"] == 200 and survivor["text"] and "error" not in survivor
    assert again["status"] == 502 and again["arm"] == "doomed"
    assert errors == 2.0
    rows = exchanges_since(open_store(store_url), "ab")
    failed = [r for r in rows if r["arm"] == "doomed"]
    assert len(rows) == 3 and len(failed) == 2
    assert "mid-stream" in failed[0]["error"] and failed[0]["answer"]
    assert "unreachable" in failed[1]["error"]


def test_monitor_shows_the_interval_per_arm_and_per_served_model(ab_server, tmp_path):
    backend = ab_server.spec.base_url
    arms = [f"base={backend},model=tiny", f"lora={backend},model=lora"]
    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    with Gateway(arms, store_url, tmp_path / "gateway.log") as gateway:
        gateway_before, vllm_before = scrape(gateway.url), scrape(backend)
        sent = [ask(gateway.url, f"nurse-{i}", question("n", i), stream=True) for i in range(6)]
        gateway_after, vllm_after = scrape(gateway.url), scrape(backend)

        csv_path = tmp_path / "monitor.csv"
        load = threading.Thread(
            target=lambda: [ask(gateway.url, f"late-{i}", question("l", i)) for i in range(4)]
        )
        load.start()
        watched = subprocess.run(
            [sys.executable, "-m", "medfactory", "monitor", "--endpoint", backend,
             "--gateway", gateway.url, "--interval", "1", "--iterations", "2",
             "--csv", str(csv_path), "--max-error-rate", "0.5"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        load.join()

    per_arm = {row.name: row.values for row in gateway_rows(gateway_after, gateway_before, 1.0)}
    for arm in ("base", "lora"):
        assert per_arm[arm]["requests_per_s"] == sum(1 for s in sent if s["arm"] == arm)
        assert per_arm[arm]["error_rate"] in (None, 0.0)
        if per_arm[arm]["requests_per_s"]:
            assert 0 < per_arm[arm]["ttft_p50_s"] <= per_arm[arm]["latency_p95_s"]
    engine = {row.name: row.values for row in vllm_rows(vllm_after, vllm_before, 1.0)}
    # vLLM counts the LoRA version's requests under the base model: why the gateway counts.
    assert list(engine) == ["tiny"] and engine["tiny"]["requests_per_s"] == 6

    assert watched.returncode == 0, watched.stderr
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("time,source,name,requests_per_s")
    sources = {tuple(line.split(",")[1:3]) for line in lines[1:]}
    assert sources == {("vllm", "tiny"), ("gateway", "base"), ("gateway", "lora")}
    assert "base" in watched.stdout and "lora" in watched.stdout


def test_verify_checks_token_parity_for_every_served_version(ab_server, tiny_model, tmp_path):
    report = tmp_path / "verify.json"
    checked = subprocess.run(
        [sys.executable, "-m", "medfactory", "verify", "--endpoint", ab_server.spec.base_url,
         "--api-key", BACKEND_KEY, "--model", str(tiny_model), "--template", "qwen",
         "--max-tokens", "8", "--report", str(report)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    written = json.loads(report.read_text())
    assert written["passed"] and list(written["models"]) == ["tiny", "lora"]
    for result in written["models"].values():
        assert result["prompts_identical"] == result["prompts_compared"] == 5
    assert "-- lora" in checked.stdout
