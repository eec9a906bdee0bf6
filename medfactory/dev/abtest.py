"""`make abtest`: two versions of the tiny model behind the gateway, scripted clinicians.

One vLLM server serves the base model and a LoRA adapter (each verified token
for token); the gateway splits the scripted clinicians between them; each
clinician chats a few turns through it, streamed, then judges every answer
the way the script's clinicians do: a thumbs-up when the answer's ROUGE-L
against the dataset's own answer reaches the threshold, a thumbs-down
otherwise, with the dataset's answer sent as the better answer on their first
thumbs-down. The record goes into the store as experiment `ab`, as a gateway
started with the defaults records it, so `ab report` and `ab export` read it
as written; the report is read back from the store like any other, and the
feedback is exported as training data (`abtest_kto`, `abtest_sft`,
`abtest_dpo`, train split only), which the tiny DPO and KTO recipes train on.
With `endpoint` the two versions are those of a server already running.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from converters.conversations import load_conversations
from deploy.client import Endpoint, EndpointError
from deploy.gateway import Arm
from deploy.process import ServerStartError, free_port, healthy
from deploy.server import Server, ServerSpec
from deploy.serving import serving_spec
from deploy.verify import verify_each
from medfactory import paths
from medfactory.ab.chat import GatewayClient
from medfactory.ab.export import ab_export
from medfactory.ab.recorder import forget_experiment, users_of
from medfactory.ab.report import write_ab_report
from medfactory.ab.serve import gateway_app
from medfactory.evaluation.metrics import load_jieba_quietly, score_pair
from medfactory.exports import write_export
from medfactory.store.db import Store
from medfactory.store.errors import StoreError

EXPERIMENT = "ab"  # the gateway's default, so `ab report` and `ab export` read it as written
DATASET = "abtest"  # the export's name: abtest_kto, abtest_sft, abtest_dpo
THRESHOLD = 0.05  # ROUGE-L (0-1) an answer needs for a scripted thumbs-up
SCRIPTED_USER = re.compile(r"clinician-\d+")


@dataclass(frozen=True)
class Versions:
    """The two versions as one server serves them: the base model and the LoRA adapter."""

    url: str
    api_key: str | None = None
    base: str = "tiny"
    adapter: str = "lora"


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


def replace_scripted_record(store: Store, experiment: str) -> None:
    """Clear an earlier scripted run's record of `experiment`; refuse to touch one that
    has anyone else's exchanges (a real experiment of the same name)."""
    users = users_of(store, experiment)
    others = sorted(u for u in users or () if not SCRIPTED_USER.fullmatch(u))
    if others:
        raise StoreError(
            f"experiment {experiment!r} in this store holds exchanges of users other than the "
            f"scripted clinicians (e.g. {others[0]!r}), which a scripted run would replace; "
            "pass another --experiment or --db"
        )
    forget_experiment(store, experiment)


@contextmanager
def served_versions(
    endpoint: str | None, api_key: str | None, model_dir: Path, adapter_dir: Path | None,
    base: str, adapter: str, log: Path, say: Callable[[str], None],
) -> Iterator[Versions]:  # fmt: skip
    """The running server at `endpoint`, or one started here for the base model and the
    adapter (stopped on leaving)."""
    if endpoint:
        served = Endpoint(endpoint, api_key).models()  # a wrong address or key: one message
        for option, name in (("--model-name", base), ("--adapter-name", adapter)):
            if name not in served:
                raise EndpointError(
                    f"{endpoint} does not serve {name!r} (it serves: {', '.join(served)}); "
                    f"pass the served name with {option}"
                )
        yield Versions(endpoint, api_key, base, adapter)
        return
    if adapter_dir is None:
        raise ServerStartError("--adapter: the LoRA version to serve (or --endpoint of a server)")
    spec = serving_spec(
        ServerSpec(
            python=paths.vllm_python(), model=Path(model_dir), port=free_port(),
            served_model_name=base, max_model_len=2048, template="qwen",
            adapters=((adapter, Path(adapter_dir)),),
        )
    )  # fmt: skip
    say(f"serving the base model and the LoRA adapter {adapter_dir} with vLLM ...")
    with Server(spec, log).start():
        yield Versions(spec.base_url, None, base, adapter)


def run_abtest(
    store: Store, out: Path, model_dir: Path, dataset_dir: Path,
    adapter_dir: Path | None = None, endpoint: str | None = None, api_key: str | None = None,
    base: str = "tiny", adapter: str = "lora", experiment: str = EXPERIMENT,
    dataset: str = "huatuo_sample_test", users: int = 8, turns: int = 2,
    say: Callable[[str], None] = print,
) -> tuple[dict, ScriptedRun, dict]:  # fmt: skip
    """Serve (or use `endpoint`), verify, split, chat, rate, report into `out`/EXPERIMENT,
    export; everything started here is stopped afterwards. The store's earlier scripted
    record of `experiment` is replaced. Returns the report, what the script did, and the
    export's summary."""
    conversations = load_conversations(dataset_dir, dataset)
    replace_scripted_record(store, experiment)
    out = Path(out)
    with served_versions(
        endpoint, api_key, model_dir, adapter_dir, base, adapter, out / "vllm.log", say
    ) as versions:  # fmt: skip
        served = Endpoint(versions.url, versions.api_key)
        names = [versions.base, versions.adapter]
        reports = verify_each(served, model_dir, "qwen", names=names, say=lambda _: None)
        for name, report in reports.items():
            if not report.passed:
                raise ServerStartError(f"{name}: the served prompt differs from training")
            say(f"verify {name}: {report.identical}/{report.compared} prompts identical")
        arms = [
            Arm("base", versions.url, versions.base),
            Arm("lora", versions.url, versions.adapter),
        ]
        app, _ = gateway_app(arms, experiment, store, backend_api_key=versions.api_key)
        with _GatewayThread(app, free_port()) as gateway:
            say(f"gateway on {gateway.url}: {users} scripted clinicians, {turns} turns each")
            # Greedy answers: the same run gives the same thumbs, so the same training data.
            client = GatewayClient(gateway.url, max_tokens=48, temperature=0.0)
            run = scripted_clinicians(client, conversations, users, turns, say)
    report = write_ab_report(store, experiment, out / experiment)
    exported = write_export(ab_export(store, experiment), dataset_dir, DATASET, split=(1.0,))
    return report, run, exported
