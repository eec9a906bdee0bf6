"""LLaMA-Factory's WebUI (LLaMA Board), opened on our datasets and a preset's model.

The WebUI reads its data directory (`data`), writes runs to `saves/` and keeps
its settings in `llamaboard_cache/` -- all relative to where it starts. It is
started in a workspace (`.cache/webui/`) whose `data` is our `dataset_info/`
and whose `saves` is ours, with its remembered model set to the preset, so the
dataset picker lists every dataset we registered and a run started there uses
our data.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from medfactory import paths
from medfactory.recipes.presets import get_preset


class WebUIError(RuntimeError):
    """The WebUI could not start; the message says why."""


def prepare_workspace(
    workspace: Path, preset_name: str, dataset_dir: Path, saves_dir: Path | None = None
) -> Path:
    """Link our data and saves into `workspace`; preselect the preset's model there."""
    preset = get_preset(preset_name)
    if not (Path(dataset_dir) / "dataset_info.json").is_file():
        raise WebUIError(
            f"{dataset_dir} has no dataset_info.json; register data first (`make data` or "
            "`medfactory data convert`), or pass --dataset-dir"
        )
    model = preset.model
    if preset.source == "local":
        model = str((paths.PROJECT_ROOT / model).resolve())
    workspace.mkdir(parents=True, exist_ok=True)
    saves_dir = saves_dir or paths.PROJECT_ROOT / "saves"
    saves_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("data", dataset_dir), ("saves", saves_dir)):
        link = workspace / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(target).resolve(), target_is_directory=True)
    config_dir = workspace / "llamaboard_cache"
    config_dir.mkdir(exist_ok=True)
    config = {
        "lang": "en",
        "hub_name": "modelscope",
        "last_model": preset.webui_name,
        "path_dict": {preset.webui_name: model},
        "cache_dir": None,
    }
    (config_dir / "user_config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return workspace


def start_webui(workspace: Path, host: str, port: int, log: Path) -> subprocess.Popen:
    """`llamafactory-cli webui` in the workspace; returns once it answers HTTP."""
    from deploy.process import healthy, port_in_use, stop_group, wait_until_up

    if port_in_use(host, port):
        raise WebUIError(f"port {port} on {host} is already in use; pass another --port")
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": host,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "USE_MODELSCOPE_HUB": "1",
        "PATH": f"{paths.train_venv() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(paths.llamafactory_cli()), "webui"], cwd=workspace, env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_up(
            process, lambda: healthy(f"http://{host}:{port}", paths=("/",)), log, "the WebUI",
            timeout=180, poll=0.5,
        )  # fmt: skip
    except BaseException:
        stop_group(process.pid, grace=5, reap=process.poll)
        raise
    return process


def run_webui(
    workspace: Path, host: str, port: int, on_ready: Callable[[Path], None] = lambda _: None
) -> None:
    """Start the WebUI, report its log, and serve until interrupted; then stop it."""
    from deploy.process import stop_group

    log = workspace / "webui.log"
    process = start_webui(workspace, host, port, log)
    on_ready(log)
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_group(process.pid, grace=5, reap=process.poll)
