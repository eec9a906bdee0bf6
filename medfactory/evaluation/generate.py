"""Answer a test split through a served model, into `generated_predictions.jsonl`.

The file has LLaMA-Factory's shape (`prompt`/`predict`/`label`, input order),
so the same scoring reads both. When the server's reasoning parser splits the
thought into `reasoning_content`, it is put back as `<think>...</think>` so
the prediction holds everything the model wrote.

With retrieval (`augment`, from `medfactory.rag.augmenter`), `prompt` and
`messages` stay the conversation as asked, so the run lines up with the same
split answered without retrieval (`eval compare`, review studies); the turn
the model was sent is kept in `rag_prompt` and the passages' sources (file,
heading, character range, score) in `passages`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from converters.conversations import Conversation, load_conversations
from deploy.client import Endpoint
from medfactory.evaluation.progress import Progress, no_progress
from medfactory.evaluation.scoring import score_file

# messages -> (the messages sent, the sources of the passages put in them)
Augment = Callable[[list[dict]], tuple[list[dict], list[dict]]]


def answer_text(message: dict) -> str:
    content = message.get("content") or ""
    thought = message.get("reasoning_content") or message.get("reasoning")
    return f"<think>\n{thought}\n</think>\n\n{content}" if thought else content


def generate_predictions(
    endpoint: Endpoint,
    conversations: list[Conversation],
    out_path: Path,
    concurrency: int = 4,
    temperature: float = 0.0,
    max_tokens: int = 512,
    on_progress: Callable[[int], None] | None = None,
    augment: Augment | None = None,
) -> Path:
    """Query every conversation (`concurrency` at a time); write the predictions file."""

    def ask(conversation: Conversation) -> dict:
        sent, retrieved = conversation.messages, None
        if augment:
            sent, retrieved = augment(conversation.messages)
        reply = endpoint.chat(sent, temperature=temperature, max_tokens=max_tokens)
        choice, usage = reply["choices"][0], reply.get("usage") or {}
        if on_progress:
            on_progress(1)
        row = {
            "prompt": conversation.messages[-1]["content"],
            "messages": conversation.messages,  # the whole chat, for the clinicians' review
            "predict": answer_text(choice["message"]),
            "label": conversation.reference,
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
        }
        if augment:
            row["rag_prompt"] = sent[-1]["content"]
            row["passages"] = retrieved
        return row

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        rows = list(pool.map(ask, conversations))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(out_path)
    return out_path


def evaluate_endpoint(
    endpoint: Endpoint,
    dataset: str,
    dataset_dir: Path,
    out: Path | None = None,
    max_samples: int | None = None,
    concurrency: int = 4,
    temperature: float = 0.0,
    max_tokens: int = 512,
    think: str = "strip",
    workers: int | None = None,
    progress: Progress = no_progress,
    augment: Augment | None = None,
) -> tuple[Path, dict]:
    """`eval endpoint`: answer a registered split through the server, then score it.
    OUT [default: saves/eval/DATASET] gets generated_predictions.jsonl and scores.json;
    returns the predictions' path and the scores."""
    conversations = load_conversations(dataset_dir, dataset, limit=max_samples)
    model = endpoint.check()
    out = out or Path("saves/eval") / dataset
    with progress(f"asking {model}", len(conversations)) as advance:
        path = generate_predictions(
            endpoint, conversations, out / "generated_predictions.jsonl",
            concurrency=concurrency, temperature=temperature, max_tokens=max_tokens,
            on_progress=advance, augment=augment,
        )  # fmt: skip
    return path, score_file(path, think, workers, progress)
