"""A reward model trained by LLaMA-Factory (`stage: rm`), loaded with transformers.

LLaMA-Factory saves the model (LoRA: the adapter, its base named in
adapter_config.json; full: the whole model) and the value head apart, in
`value_head.safetensors` (`v_head.summary.weight`, `.bias`: a linear layer from the
last hidden state to one number). The score of a text is the head's value at its last
token, as LLaMA-Factory's pairwise trainer reads it. That trainer only ever saw an answer
closed as a finished turn of its template (Qwen: `...answer<|im_end|>\n`), while the PPO
trainer posts the answer ending at the bare eos, or cut off at max_new_tokens: read
there, the value is that of a token the head was never trained on and says little about
the answer. So `score_answers` closes each posted text as the template closes a turn:
the trailing eos, padding or other special token generation stopped on go, the
template's turn end follows. The prompt and the
answer stay as posted (the PPO trainer encoded the prompt with the same template).
Loading waits for the first score: a server starts at once, and a verifier that never
scores loads nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from medfactory.rewards.errors import RewardError

VALUE_HEAD = "value_head.safetensors"


class RewardModel:
    def __init__(self, path: Path, base: str | None = None, template: str = "qwen"):
        if not (path / VALUE_HEAD).is_file():
            raise RewardError(
                f"{path}: no {VALUE_HEAD}; pass the output_dir of a `--stage rm` training run"
            )
        self.path, self.base, self.template = path, base, template
        self._loaded = self._chat = None

    def base_name(self) -> str | None:
        """The base of a LoRA reward model (None for a full one)."""
        config = self.path / "adapter_config.json"
        if not config.is_file():
            return None
        base = self.base or json.loads(config.read_text())["base_model_name_or_path"]
        # `medfactory train` runs in the project: a recipe's relative base is read there
        from medfactory import paths

        in_project = paths.PROJECT_ROOT / base
        return str(in_project) if not Path(base).is_absolute() and in_project.exists() else base

    def load(self):
        if self._loaded is None:
            import torch
            from safetensors.torch import load_file
            from transformers import AutoModelForCausalLM, AutoTokenizer

            base = self.base_name()
            model = AutoModelForCausalLM.from_pretrained(base or self.path, dtype=torch.float32)
            if base:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.path).merge_and_unload()
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            weights = load_file(self.path / VALUE_HEAD)
            head = torch.nn.Linear(weights["v_head.summary.weight"].shape[1], 1)
            head.weight.data = weights["v_head.summary.weight"].float()
            head.bias.data = weights["v_head.summary.bias"].float()
            self._loaded = (model.eval(), head.eval(), tokenizer)
        return self._loaded

    def score(self, texts: list[str]) -> list[float]:
        tokenizer = self.load()[2]
        return self.score_ids([tokenizer.encode(t, add_special_tokens=False) for t in texts])

    def score_ids(self, sequences: list[list[int]]) -> list[float]:
        """The head's value at the last token of each sequence of token ids."""
        import torch

        model, head, _ = self.load()
        scores = []
        with torch.no_grad():
            for ids in sequences:  # one at a time: no padding to get wrong
                hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1]
                scores.append(float(head(hidden[0, -1])))
        return scores

    def chat_template(self):
        """LLaMA-Factory's template `self.template`, for this model's tokenizer."""
        _, _, tokenizer = self.load()
        if self._chat is None:
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments

            try:
                self._chat = get_template_and_fix_tokenizer(
                    tokenizer, DataArguments(template=self.template)
                )
            except ValueError as error:
                raise RewardError(f"--template {self.template}: {error}") from None
        return self._chat

    def encode_turn(self, prompt: list[dict], system: str, answer: str) -> list[int]:
        """The token ids of `answer` to `prompt` as the pairwise trainer encodes them: the
        recipe's template (LLaMA-Factory's own), the answer closed as a finished turn."""
        tokenizer = self.load()[2]
        messages = [*prompt, {"role": "assistant", "content": answer}]
        query, response = self.chat_template().encode_oneturn(tokenizer, messages, system or None)
        eos = [tokenizer.eos_token_id] if self.chat_template().efficient_eos else []
        return query + response + eos

    def turn_end(self) -> str:
        """What the pairwise trainer puts after an answer: the template's turn end (and
        the eos where the template adds it apart)."""
        marker = "\u2063"  # an invisible separator no template writes
        tokenizer = self.load()[2]
        turn = tokenizer.decode(self.encode_turn([{"role": "user", "content": "?"}], "", marker))
        if marker not in turn:
            raise RewardError(
                f"--template {self.template}: cannot find where its turn ends with this "
                "tokenizer; give the reward model's recipe's template"
            )
        return turn[turn.rindex(marker) + len(marker) :]

    def score_answers(self, texts: list[str]) -> list[float]:
        """Scores of the prompt+response texts LLaMA-Factory's PPO trainer posts, each
        closed as a finished turn: the special tokens its generation stopped on (eos, or
        another special token) and its padding replaced by the turn end."""
        end = self.turn_end()  # first: fixing the template can change the tokenizer's eos
        tokenizer = self.load()[2]
        special = (t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
        trailing = {tokenizer.eos_token, tokenizer.pad_token, *special} - {None, ""}
        closed = []
        for text in texts:
            while cut := next((t for t in trailing if text.endswith(t)), None):
                text = text.removesuffix(cut)
            closed.append(text + end)
        return self.score(closed)
