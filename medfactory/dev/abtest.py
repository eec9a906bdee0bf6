"""`make abtest`: two versions of the tiny model behind the gateway, scripted clinicians.

One vLLM server serves the base model and a LoRA adapter (each verified token
for token); the gateway splits the scripted clinicians between them; each
clinician chats a few turns through it, streamed, then judges every answer
the way the script's clinicians do: a thumbs-up when the answer's ROUGE-L
against the dataset's own answer reaches the threshold, a thumbs-down
otherwise, with the dataset's answer sent as the better answer on their first
thumbs-down. The report is then read back from the store like any other, and
the feedback is exported as training data (`abtest_kto`, `abtest_sft`,
`abtest_dpo`, train split only), which the tiny DPO and KTO recipes train on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from converters.conversations import load_conversations
from deploy.client import Endpoint
from deploy.gateway import Arm
from deploy.process import ServerStartError, free_port, healthy
from deploy.server import Server, ServerSpec
from deploy.serving import serving_spec
from deploy.verify import verify_each
from medfactory import paths
from medfactory.ab.chat import GatewayClient
from medfactory.ab.export import ab_export
from medfactory.ab.report import write_ab_report
from medfactory.ab.serve import gateway_app
from medfactory.evaluation.metrics import load_jieba_quietly, score_pair
from medfactory.exports import write_export
from medfactory.store.db import open_store

EXPERIMENT = "abtest"
THRESHOLD = 0.05  # ROUGE-L (0-1) an answer needs for a scripted thumbs-up


@dataclass
class ScriptedRun:
    """What the scripted clinicians did, per arm: the report must say the same."""

    answers: Counter = field(default_factory=Counter)
    thumbs_up: Counter = field(default_factory=Counter)
    thumbs_down: Counter = field(default_factory=Counter)
    corrections: Counter = field(default_factory=Counter)
    users: dict[str, str] = field(default_factory=dict)  # user -> arm


def scripted_clinicians(
    client: GatewayClient, conversations: list, users: int, turns: int,
    say: Callable[[str], None] = print,
) -> ScriptedRun:  # fmt: skip
    run = ScriptedRun()
    load_jieba_quietly()
    for number in range(users):
        user = f"clinician-{number + 1:02d}"
        conversation, messages = str(uuid.uuid4()), []
        corrected = False
        for turn in range(turns):
            asked = conversations[(number * turns + turn) % len(conversations)]
            messages.append(asked.messages[-1])
            answer, completion_id, arm = client.ask(user, conversation, messages)
            messages.append({"role": "assistant", "content": answer})
            good = score_pair(answer, asked.reference)["rouge-l"] / 100 >= THRESHOLD
            fields = {"rating": 1 if good else -1}
            if not good and not corrected:
                fields["correction"] = asked.reference
                corrected = True
                run.corrections[arm] += 1
            client.feedback(user, completion_id, **fields)
            (run.thumbs_up if good else run.thumbs_down)[arm] += 1
            run.answers[arm] += 1
            run.users[user] = arm
        say(f"{user}: {turns} turns rated")
    return run


class _GatewayThread:
    """The gateway's app under uvicorn in a thread of this process."""

    def __init__(self, app, port: int):
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not healthy(self.url):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise ServerStartError(f"the gateway did not start on {self.url}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run_abtest(
    root: Path, model_dir: Path, adapter_dir: Path, dataset_dir: Path,
    dataset: str = "huatuo_sample_test", users: int = 8, turns: int = 2,
    say: Callable[[str], None] = print,
) -> tuple[dict, ScriptedRun, dict]:  # fmt: skip
    """Serve, verify, split, chat, rate, report, export; everything stopped afterwards.
    Returns the report, what the script did, and the export's summary."""
    conversations = load_conversations(dataset_dir, dataset)
    out = Path(root) / "saves" / "ab"
    db = out / f"{EXPERIMENT}.db"
    db.unlink(missing_ok=True)  # this run's record only
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    spec = serving_spec(
        ServerSpec(
            python=paths.vllm_python(), model=Path(model_dir), port=free_port(),
            served_model_name="tiny", max_model_len=2048, template="qwen",
            adapters=(("tiny-lora", Path(adapter_dir)),),
        )
    )  # fmt: skip
    say(f"serving the base model and the LoRA adapter {adapter_dir} with vLLM ...")
    with Server(spec, out / "vllm.log").start():
        reports = verify_each(Endpoint(spec.base_url), spec.model, "qwen", say=lambda _: None)
        for name, report in reports.items():
            if not report.passed:
                raise ServerStartError(f"{name}: the served prompt differs from training")
            say(f"verify {name}: {report.identical}/{report.compared} prompts identical")
        arms = [Arm("base", spec.base_url, "tiny"), Arm("lora", spec.base_url, "tiny-lora")]
        store = open_store(f"sqlite:///{db}")
        app, _ = gateway_app(arms, EXPERIMENT, store)
        with _GatewayThread(app, free_port()) as gateway:
            say(f"gateway on {gateway.url}: {users} scripted clinicians, {turns} turns each")
            # Greedy answers: the same run gives the same thumbs, so the same training data.
            client = GatewayClient(gateway.url, max_tokens=48, temperature=0.0)
            run = scripted_clinicians(client, conversations, users, turns, say)
    report = write_ab_report(store, EXPERIMENT, out / EXPERIMENT)
    exported = write_export(ab_export(store, EXPERIMENT), dataset_dir, EXPERIMENT, split=(1.0,))
    return report, run, exported
