"""`verify`: prove a running server feeds the model the prompts it was trained on.

For each conversation of the suite, the token ids the server builds (vLLM's
`/tokenize` with `messages` and `add_generation_prompt`) must equal
LLaMA-Factory's training encoding for the recipe's template. Then one
single-turn and one multi-turn chat must complete and stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.client import Endpoint, EndpointError
from deploy.parity import SUITE, first_mismatch, llamafactory_prompt_ids

NO_TOKENIZE = (
    "token parity: the server has no /tokenize (LLaMA-Factory's api encodes with "
    "LLaMA-Factory's own template code, so it matches by construction)"
)
NO_STOP = "expected of an untrained model; from a fine-tune it means the stop token is not learnt"
CHAT_CHECKS = ("single turn, Chinese", "multi-turn, Chinese, system prompt")


@dataclass
class VerifyReport:
    template: str
    lines: list[str] = field(default_factory=list)
    failures: int = 0
    compared: int = 0  # prompts whose token ids were compared
    identical: int = 0  # ... and were equal

    @property
    def passed(self) -> bool:
        return self.failures == 0

    def as_dict(self) -> dict:
        return {
            "template": self.template,
            "passed": self.passed,
            "prompts_compared": self.compared,
            "prompts_identical": self.identical,
            "failures": self.failures,
            "checks": self.lines,
        }

    def add(self, status: str, text: str) -> None:
        self.lines.append(f"{status:<5} {text}")
        if status == "FAIL":
            self.failures += 1


def verify(
    endpoint: Endpoint,
    model_dir: Path,
    template: str,
    enable_thinking: bool = True,
    max_tokens: int = 64,
    say: Callable[[str], None] = print,
) -> VerifyReport:
    from transformers import AutoTokenizer

    endpoint.check()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    report = VerifyReport(template)

    def add(status: str, text: str) -> None:
        report.add(status, text)
        say(report.lines[-1])

    for name, messages in SUITE.items():
        try:
            served = endpoint.tokenize(messages, add_generation_prompt=True)
        except EndpointError as error:
            if error.status == 404:
                add("SKIP", NO_TOKENIZE)
                break
            raise
        trained = llamafactory_prompt_ids(tokenizer, template, messages, enable_thinking)
        report.compared += 1
        mismatch = first_mismatch(tokenizer, served, trained)
        if mismatch is None:
            report.identical += 1
            add("PASS", f"{name}: {len(served)} tokens identical")
        else:
            add("FAIL", f"{name}: {mismatch.describe()}")

    for name in CHAT_CHECKS:
        reply = endpoint.chat(SUITE[name], max_tokens=max_tokens, temperature=0.0)
        choice = reply["choices"][0]
        message = choice.get("message") or {}
        tokens = (reply.get("usage") or {}).get("completion_tokens")
        text = (message.get("content") or "") + (message.get("reasoning_content") or "")
        reason = choice.get("finish_reason")
        if not text or reason not in ("stop", "length"):
            add("FAIL", f"chat, {name}: finish_reason={reason}, {tokens} tokens, text {text!r}")
        elif reason == "length":
            add("WARN", f"chat, {name}: no stop within {max_tokens} tokens ({NO_STOP})")
        else:
            add("PASS", f"chat, {name}: stopped after {tokens} tokens")

    verdict = "PASS" if report.passed else "FAIL"
    if report.compared:
        say(
            f"verify: {verdict} -- {report.identical}/{report.compared} served "
            f"prompts identical to LLaMA-Factory's `{template}` training encoding "
            f"(enable_thinking={str(enable_thinking).lower()})"
        )
    else:
        say(f"verify: {verdict} -- chats complete; no token comparison (see SKIP)")
    return report


def verify_each(
    endpoint: Endpoint,
    model_dir: Path,
    template: str,
    enable_thinking: bool = True,
    names: list[str] | None = None,
    max_tokens: int = 64,
    say: Callable[[str], None] = print,
) -> dict[str, VerifyReport]:
    """`verify` for every served name (the base and each LoRA adapter), or for `names`."""
    names = names or endpoint.models()
    reports = {}
    for name in names:
        if len(names) > 1:
            say(f"-- {name}")
        served = Endpoint(endpoint.url, api_key=endpoint.api_key, model=name)
        reports[name] = verify(served, model_dir, template, enable_thinking, max_tokens, say)
    return reports


def verify_server(
    endpoint: Endpoint,
    model_dir: Path,
    template: str,
    enable_thinking: bool = True,
    max_tokens: int = 64,
    report: Path | None = None,
    say: Callable[[str], None] = print,
) -> bool:
    """The `verify` command: every served model, or the endpoint's `model` alone when it
    names one; with `report`, the results as JSON there. True when every check passed."""
    names = [endpoint.check()] if endpoint.model else None
    results = verify_each(endpoint, model_dir, template, enable_thinking, names, max_tokens, say)
    passed = all(result.passed for result in results.values())
    if report:
        if len(results) == 1:
            written = next(iter(results.values())).as_dict()
        else:
            written = {"passed": passed, "models": {n: r.as_dict() for n, r in results.items()}}
        # deploy/ imports nothing of medfactory: the report convention (UTF-8, indent 1) here
        report = Path(report)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(written, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return passed
