"""Model presets (templates/presets.yaml): the model, its chat template and architecture.

A preset names what LLaMA-Factory loads, the template it trains with, its
name in the WebUI, and the config.json fields the memory estimate needs, so
`vram` answers without downloading the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from medfactory.paths import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"


class RecipeError(ValueError):
    """A recipe cannot be rendered or checked; the message names what and where."""


class Architecture(BaseModel):
    """The config.json fields the memory estimate needs (transformers' names)."""

    model_config = ConfigDict(extra="ignore")

    model_type: str = ""
    attention_bias: bool | None = None  # absent from qwen2 configs, which have q/k/v biases
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    model: str
    source: Literal["local", "modelscope", "huggingface"]
    template: str
    reasoning: bool
    webui_name: str  # LLaMA-Factory WebUI's name for the model family (picks its template)
    architecture: Architecture
    defaults: dict[str, object] = {}


def load_presets(path: Path = TEMPLATES / "presets.yaml") -> dict[str, Preset]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    presets = {}
    for name, fields in raw.items():
        try:
            presets[name] = Preset(name=name, **fields)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RecipeError(f"{path}: preset {name!r}, key {where!r}: {first['msg']}") from None
    return presets


def get_preset(name: str) -> Preset:
    presets = load_presets()
    if name not in presets:
        raise RecipeError(f"unknown model preset {name!r}; known: {', '.join(presets)}")
    return presets[name]
