"""Content hashes that identify what a run used: a recipe, a base model, a data file.

A base model is identified by its config and its weight index (the tensor names, shapes
and shards), not by hashing every weight: a 7B model is 15 GB, and its index changes
whenever its shards do. A single-file model has no index; its safetensors header (every
tensor's name, dtype, shape and offsets) and size stand in for it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from converters.registry import file_sha256

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def text_sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def canonical_sha256(data: object) -> str:
    """The hash of a JSON-able value, independent of key order."""
    return text_sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))


def safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as weights:
        (length,) = struct.unpack("<Q", weights.read(8))
        return weights.read(min(length, 100_000_000))


def weights_fingerprint(folder: Path) -> str | None:
    """The weight index's hash, else the single safetensors file's header and size."""
    for name in INDEX_FILES:
        if (folder / name).is_file():
            return file_sha256(folder / name)
    for name in ("model.safetensors", "adapter_model.safetensors"):
        path = folder / name
        if path.is_file():
            return text_sha256(safetensors_header(path) + str(path.stat().st_size).encode())
    for name in ("pytorch_model.bin", "adapter_model.bin"):  # full PPO saves these
        path = folder / name
        if path.is_file():
            with open(path, "rb") as weights:
                return text_sha256(weights.read(1 << 20) + str(path.stat().st_size).encode())
    return None


def model_fingerprint(folder: Path) -> dict:
    """A local model or adapter folder: its config's and weights' hashes and one of both."""
    folder = Path(folder)
    config = next(
        (folder / n for n in ("config.json", "adapter_config.json") if (folder / n).is_file()),
        None,
    )
    found = {
        "config_sha256": file_sha256(config) if config else None,
        "weights_sha256": weights_fingerprint(folder),
    }
    found["sha256"] = canonical_sha256(found)
    return found
