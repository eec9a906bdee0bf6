"""`medfactory webui`: LLaMA-Factory's WebUI on our datasets, a preset's model preselected."""

from __future__ import annotations

import click

from medfactory.cli.common import DATASET_DIR, unwind_on_termination, with_example


@with_example("medfactory webui --model tiny --port 7860")
@click.command()
@click.option("--port", default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--model", "preset", default="tiny", show_default=True, help="A model preset.")
@DATASET_DIR
def webui(port, host, preset, dataset_dir) -> None:
    """Point-and-click tuning in LLaMA-Factory's WebUI, on our registered datasets.

    Its dataset picker lists every dataset in DATASET_DIR/dataset_info.json
    (with a working preview), the model path is the preset's, and runs are
    written to saves/. Ctrl-C stops it.
    """
    from medfactory import paths
    from medfactory.recipes.webui import prepare_workspace, run_webui

    unwind_on_termination()  # the WebUI it starts is stopped, not orphaned
    workspace = prepare_workspace(paths.cache_dir() / "webui", preset, dataset_dir)
    run_webui(
        workspace, host, port,
        on_ready=lambda log: click.echo(
            f"LLaMA-Factory WebUI: http://{host}:{port}  (log {log}; Ctrl-C stops it)"
        ),
    )  # fmt: skip
