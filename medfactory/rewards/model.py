"""A reward model trained by LLaMA-Factory (`stage: rm`), loaded with transformers.

LLaMA-Factory saves the model (LoRA: the adapter, its base named in
adapter_config.json; full: the whole model) and the value head apart, in
`value_head.safetensors` (`v_head.summary.weight`, `.bias`: a linear layer from the
last hidden state to one number). The score of a text is the head's value at its last
token, as LLaMA-Factory's pairwise trainer reads it. Loading waits for the first score:
a server starts at once, and a verifier that never scores loads nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from medfactory.rewards.errors import RewardError

VALUE_HEAD = "value_head.safetensors"


class RewardModel:
    def __init__(self, path: Path, base: str | None = None):
        if not (path / VALUE_HEAD).is_file():
            raise RewardError(
                f"{path}: no {VALUE_HEAD}; pass the output_dir of a `--stage rm` training run"
            )
        self.path, self.base = path, base
        self._loaded = None

    def base_name(self) -> str | None:
        """The base of a LoRA reward model (None for a full one)."""
        config = self.path / "adapter_config.json"
        if not config.is_file():
            return None
        return self.base or json.loads(config.read_text())["base_model_name_or_path"]

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
        import torch

        model, head, tokenizer = self.load()
        scores = []
        with torch.no_grad():
            for text in texts:  # one at a time: no padding to get wrong
                ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
                hidden = model(**ids, output_hidden_states=True).hidden_states[-1]
                scores.append(float(head(hidden[0, -1])))
        return scores
