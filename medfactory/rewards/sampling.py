"""`data sample`: rejection sampling (RFT), HuatuoGPT-o1's first stage on any GPU budget.

A served model is asked for N answers to each prompt of a registered dataset in one
request (vLLM's `n`); each answer is scored by the verifier the reward server scores
with (medfactory/rewards/verifiers.py), on the text the server receives: the prompt
with its chat template and the answer (rewards/text.py `chat_text`). The best answer
scoring above `min_score` becomes an SFT record, and the best and the worst answer,
when their scores differ, a DPO pair; both are written and registered as every export
is (medfactory/exports.py: NAME_sft_*, NAME_dpo_*, with manifests and provenance).

The answers are appended to DATASET_DIR/.sample/NAME/samples.jsonl as they come,
keyed by what decides them (prompt, model, n, temperature, max tokens), so a rerun
asks only for the prompts it has no answers for, and needs no server when it has them
all. DATASET_DIR/NAME.sample-report.json says, prompt by prompt, how many of the N
answers passed.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from deploy.client import Endpoint, EndpointError
from deploy.replies import reply_key
from medfactory.reporting import read_json_object, write_json

# (description, total prompts) -> a context yielding advance(n)
CountProgress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
REPORT_SUFFIX = ".sample-report.json"


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n=1: None


@dataclass(frozen=True)
class SampleOptions:
    dataset: str  # a registered split whose prompts are answered
    name: str  # the exports register as NAME_sft_* and NAME_dpo_*
    dataset_dir: Path
    n: int = 8
    min_score: float = 0.0  # an answer passes when it scores above this
    temperature: float = 0.8
    max_tokens: int = 1024
    concurrency: int = 4
    fmt: str = "sharegpt"
    split: tuple[float, ...] = (1.0,)
    seed: int = 42
    force: bool = False


class Samples:
    """The answers of earlier runs, by key; new ones appended to the file as they come."""

    def __init__(self, path: Path):
        self.path, self.kept = Path(path), {}
        self.lock = threading.Lock()
        exists = self.path.is_file()
        text = self.path.read_text(encoding="utf-8", errors="replace") if exists else ""
        self._cut_short = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
                self.kept[row["key"]] = [str(answer) for answer in row["answers"]]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line an interrupted run cut short: asked again

    def keep(self, key: str, answers: list[str]) -> None:
        with self.lock:
            self.kept[key] = answers
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                if self._cut_short:
                    out.write("\n")
                    self._cut_short = False
                out.write(json.dumps({"key": key, "answers": answers}, ensure_ascii=False) + "\n")


def sample_key(messages: list[dict], model: str | None, options: SampleOptions) -> str:
    return reply_key(messages, model, options.n, options.temperature, options.max_tokens)


def sample_dataset(
    endpoint: Endpoint, verifier, options: SampleOptions, progress: CountProgress = no_progress
) -> dict:
    """Sample, score, keep and register; the summary, which accounts for every prompt."""
    from converters.conversations import load_conversations
    from converters.convert import check_name

    check_name(options.name)
    conversations = load_conversations(Path(options.dataset_dir), options.dataset)
    state = Path(options.dataset_dir) / ".sample" / options.name
    samples = Samples(state / "samples.jsonl")
    prompts = [c.messages for c in conversations]
    keys = _settle_model(endpoint, samples, prompts, options, state / "run.json")
    due = [i for i, key in enumerate(keys) if key not in samples.kept]
    asked, refused = _ask(endpoint, samples, prompts, keys, due, options, progress)
    if asked:
        write_json(state / "run.json", {"model": endpoint.model})
    answers = [samples.kept.get(key) for key in keys]
    scores = _score(verifier, prompts, answers)
    return _keep(conversations, answers, scores, options, endpoint.model, verifier.name) | {
        "requests": asked,
        "from_earlier_runs": len(keys) - len(due),
        "refused": refused,
    }


def _settle_model(
    endpoint: Endpoint, samples: Samples, prompts: list, options: SampleOptions, state: Path
) -> list[str]:
    """Each prompt's key, which names the model. Without --model-name the model is the
    server's; when no server answers, the previous run's, if it has every answer."""
    if endpoint.model is None:
        try:
            endpoint.check()
        except EndpointError as error:
            previous = read_json_object(state).get("model")
            if error.status is not None or previous is None:
                raise
            keys = [sample_key(p, previous, options) for p in prompts]
            if any(key not in samples.kept for key in keys):
                raise
            endpoint.model = previous
            return keys
    return [sample_key(p, endpoint.model, options) for p in prompts]


def _ask(
    endpoint: Endpoint, samples: Samples, prompts: list, keys: list[str], due: list[int],
    options: SampleOptions, progress: CountProgress,
) -> tuple[int, int]:  # fmt: skip
    """Ask for the due prompts' answers, `concurrency` requests at a time; (asked,
    refused): a prompt the server refuses (HTTP 400, too long for its context) is not
    kept, and asked again next run."""
    counts = Counter()
    checked = threading.Lock()

    def ask(i: int) -> None:
        with checked:  # the model exists, once, before the first request
            if not counts["checked"]:
                endpoint.check()
                counts["checked"] = 1
        try:
            reply = endpoint.chat(
                prompts[i], n=options.n, temperature=options.temperature,
                max_tokens=options.max_tokens,
            )  # fmt: skip
        except EndpointError as error:
            if error.status != 400:
                raise
            counts["refused"] += 1
        else:
            choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
            samples.keep(keys[i], [(c.get("message") or {}).get("content") or "" for c in choices])
        counts["asked"] += 1
        advance(1)

    with progress(f"sampling {options.dataset}", len(keys)) as advance:
        advance(len(keys) - len(due))
        if due:
            with ThreadPoolExecutor(max(1, options.concurrency)) as pool:
                list(pool.map(ask, due))
    return counts["asked"], counts["refused"]


def _score(verifier, prompts: list, answers: list[list[str] | None]) -> list[list[float] | None]:
    """Every answer scored at once (a judge grades them concurrently), per prompt."""
    from medfactory.rewards.text import chat_text

    pairs = zip(prompts, answers, strict=True)
    texts = [chat_text(prompt, answer) for prompt, found in pairs for answer in found or ()]
    flat = iter([scored.score for scored in verifier.score_all(texts)] if texts else [])
    return [None if found is None else [next(flat) for _ in found] for found in answers]


def _keep(
    conversations: list, answers: list, scores: list, options: SampleOptions, model: str,
    verifier: str,
) -> dict:  # fmt: skip
    """The best passing answer as SFT, the best and worst as a DPO pair; registered."""
    from medfactory.exports import Example, Export, split_chat, write_export

    export = Export(source=f"sample {options.dataset}", read=len(conversations))
    per_prompt, passed_histogram = [], Counter()
    for number, (conversation, found, scored) in enumerate(
        zip(conversations, answers, scores, strict=True), 1
    ):
        row = {"prompt": number, "question": conversation.messages[-1]["content"]}
        if found is None:  # refused by the server: asked again next run
            export.skipped["not sampled (refused by the server)"] += 1
            per_prompt.append(row | {"sampled": 0})
            continue
        passed = sum(score > options.min_score for score in scored)
        passed_histogram[passed] += 1
        row |= {"sampled": len(found), "passed": passed, "scores": scored}
        system, turns, question = split_chat(conversation.messages)
        origin = {"dataset": options.dataset, "prompt": number, "model": model,
                  "verifier": verifier, "passed": passed, "sampled": len(found)}  # fmt: skip
        best = max(range(len(found)), key=lambda i: scored[i]) if found else None
        worst = min(range(len(found)), key=lambda i: scored[i]) if found else None
        row["sft"] = best is not None and scored[best] > options.min_score
        if row["sft"]:
            export.examples["sft"].append(Example(
                system, turns, question, answer=found[best],
                provenance=origin | {"score": scored[best]},
            ))  # fmt: skip
        else:
            export.skipped[f"sft: no answer above --min-score {options.min_score:g}"] += 1
        row["dpo"] = best is not None and scored[best] != scored[worst]
        if row["dpo"]:
            export.examples["dpo"].append(Example(
                system, turns, question, chosen=found[best], rejected=found[worst],
                provenance=origin | {"chosen_score": scored[best],
                                     "rejected_score": scored[worst]},
            ))  # fmt: skip
        else:
            export.skipped["dpo: every answer scored the same"] += 1
        per_prompt.append(row)
    summary = {
        "name": options.name, "dataset": options.dataset, "model": model,
        "verifier": verifier, "n": options.n, "min_score": options.min_score,
        "prompts": len(conversations),
        "sampled": sum(found is not None for found in answers),
        "answers": sum(len(found or ()) for found in answers),
        "passed": sum(row.get("passed", 0) for row in per_prompt),
        "prompts_with_a_pass": sum(count for passed, count in passed_histogram.items() if passed),
        "passed_histogram": {str(k): passed_histogram[k] for k in sorted(passed_histogram)},
        "sft": len(export.examples["sft"]), "dpo": len(export.examples["dpo"]),
    }  # fmt: skip
    if any(export.examples.values()):
        exported = write_export(
            export, options.dataset_dir, options.name, options.fmt, options.split,
            options.seed, options.force,
        )  # fmt: skip
        summary |= {"written": exported["written"], "files": exported["files"]}
    else:  # nothing passed and nothing told answers apart: nothing is registered
        summary |= {"written": {}, "files": []}
    summary["skipped"] = dict(export.skipped)
    report = Path(options.dataset_dir) / f"{options.name}{REPORT_SUFFIX}"
    write_json(report, summary | {"per_prompt": per_prompt})
    summary["report"] = str(report)
    return summary
