"""Fetch the upstream data files from ModelScope with its own client.

A reachability check runs first, so that on a machine without a route to the
hub the user learns within seconds (not after the client's minute of retries)
what to do instead: fetch the file elsewhere and pass it to `data convert`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from converters.records import SourceError

DATASETS = {
    "huatuo": ("xiaofengalg/HuatuoGPT-sft-data-v1", {"default": "HuatuoGPT_sft_data_v1.jsonl"}),
    "medical-o1": (
        "AI-ModelScope/medical-o1-reasoning-SFT",
        {
            "en": "medical_o1_sft.json",
            "zh": "medical_o1_sft_Chinese.json",
            "mix": "medical_o1_sft_mix.json",
            "mix_zh": "medical_o1_sft_mix_Chinese.json",
        },
    ),
}
DEFAULT_ENDPOINT = "https://www.modelscope.cn"


class DownloadError(RuntimeError):
    """The hub cannot be reached or refused the file; the message says what to do instead."""


def remote_file(source: str, subset: str | None) -> tuple[str, str]:
    """(ModelScope dataset id, file name) of a source's subset."""
    if source not in DATASETS:
        raise SourceError(f"unknown source {source!r}; known: {', '.join(DATASETS)}")
    dataset_id, files = DATASETS[source]
    subset = subset or next(iter(files))
    if subset not in files:
        raise SourceError(f"{source} has no subset {subset!r}; known: {', '.join(files)}")
    return dataset_id, files[subset]


def resolve_endpoint(endpoint: str | None) -> str:
    endpoint = endpoint or os.environ.get("MODELSCOPE_DOMAIN") or DEFAULT_ENDPOINT
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def check_reachable(endpoint: str, timeout: float = 5.0) -> None:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as error:
        raise DownloadError(f"cannot reach {parts.hostname}:{port} ({error})") from None


def download(source: str, subset: str | None, dest: Path, endpoint: str | None = None) -> Path:
    """Download one upstream file into `dest` and return its path."""
    dataset_id, file_name = remote_file(source, subset)
    endpoint = resolve_endpoint(endpoint)
    page = f"https://modelscope.cn/datasets/{dataset_id}/files"
    instead = (
        f"fetch {file_name} from {page} on a connected machine, then run "
        f"`medfactory data convert {source} PATH/{file_name} ...` with the local file"
    )
    try:
        check_reachable(endpoint)
    except DownloadError as error:
        raise DownloadError(f"no network route to ModelScope: {error}; {instead}") from None

    from modelscope.hub.file_download import dataset_file_download

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        path = dataset_file_download(dataset_id, file_name, local_dir=str(dest), endpoint=endpoint)
    except Exception as error:  # the client's own errors vary by version
        said = " ".join(str(error).split())  # one line, however the client formats it
        raise DownloadError(
            f"ModelScope download of {dataset_id}/{file_name} failed: {said}; {instead}"
        ) from None
    return Path(path)
