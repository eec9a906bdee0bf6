"""`medfactory data`: download, convert and inspect the medical data sets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from converters.sources import SOURCES
from medfactory.cli.common import DATASET_DIR, ExampleGroup, with_example


@click.group(cls=ExampleGroup)
def data() -> None:
    """Download, convert, clean, split and register medical data sets."""


@with_example("medfactory data download medical-o1 --subset zh --dest downloads/")
@data.command()
@click.argument("source", type=click.Choice(list(SOURCES)))
@click.option("--subset", help="medical-o1: en, zh, mix or mix_zh [default: en].")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("downloads"))
@click.option(
    "--endpoint", help="ModelScope endpoint [default: $MODELSCOPE_DOMAIN or modelscope.cn]."
)
def download(source: str, subset: str | None, dest: Path, endpoint: str | None) -> None:
    """Download a source file from ModelScope with its official client."""
    from converters.download import download as fetch

    path = fetch(source, subset, dest, endpoint=endpoint)
    click.echo(f"downloaded {path} ({path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"next: medfactory data convert {source} {path} --name NAME")


@with_example(
    "medfactory data convert huatuo HuatuoGPT_sft_data_v1.jsonl --format sharegpt --name huatuo"
)
@data.command()
@click.argument("source", type=click.Choice(list(SOURCES)))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["sharegpt", "alpaca"]),
    default="sharegpt",
    show_default=True,
    help="LLaMA-Factory dataset format.",
)
@click.option(
    "--name", required=True, help="Dataset name; splits register as NAME_train/_val/_test."
)
@DATASET_DIR
@click.option(
    "--split",
    "split_text",
    default="0.7,0.2,0.1",
    show_default=True,
    help="train,val,test ratios; '1' writes train only.",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the split assignment.")
@click.option(
    "--cot",
    type=click.Choice(["think", "huatuo", "drop"]),
    default="think",
    show_default=True,
    help="medical-o1: reasoning as <think>…</think>, HuatuoGPT-o1's headings, or dropped.",
)
@click.option("--system", default="", help="System prompt stored with every record.")
@click.option(
    "--max-chars",
    default=16384,
    show_default=True,
    help="Reject records longer than this many characters (0: no limit).",
)
@click.option("--no-dedup", is_flag=True, help="Keep exact and near duplicates.")
@click.option("--no-scrub", is_flag=True, help="Keep phone numbers, ID numbers, e-mails, URLs.")
@click.option(
    "--force", is_flag=True, help="Replace a different registered entry of the same name."
)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Converting processes, this one included [default: all cores].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def convert(
    source,
    inputs,
    fmt,
    name,
    dataset_dir,
    split_text,
    seed,
    cot,
    system,
    max_chars,
    no_dedup,
    no_scrub,
    force,
    workers,
    as_json,
) -> None:
    """Convert source files into LLaMA-Factory splits and register them.

    Every input record is written to a split, counted as a duplicate, or
    rejected to DATASET_DIR/NAME.rejects.jsonl with its line and reason.
    """
    from converters.convert import ConvertOptions, check_inputs, check_name
    from converters.convert import convert as run
    from converters.split import parse_split
    from medfactory.cli.progress import record_progress
    from medfactory.cli.tables import print_convert_summary

    try:
        ratios = parse_split(split_text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--split") from None
    options = ConvertOptions(
        fmt=fmt,
        name=name,
        dataset_dir=dataset_dir,
        split=ratios,
        seed=seed,
        cot=cot,
        system=system,
        max_chars=max_chars or None,
        dedup=not no_dedup,
        scrub=not no_scrub,
        force=force,
        **({"workers": workers} if workers else {}),
    )
    check_name(name)  # before the progress bar: a bad name or input is one line
    total = sum(path.stat().st_size for path in check_inputs(list(inputs)))
    with record_progress(f"converting {source}", total, enabled=not as_json) as on_progress:
        summary = run(source, list(inputs), options, on_progress=on_progress)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    else:
        print_convert_summary(summary)


@with_example("medfactory data stats huatuo_sample_train --tokenizer .cache/tiny-model")
@data.command()
@click.argument("name")
@DATASET_DIR
@click.option(
    "--tokenizer",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also count tokens with this tokenizer (a model folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def stats(name: str, dataset_dir: Path, tokenizer: Path | None, as_json: bool) -> None:
    """Counts, turns and length percentiles of a registered dataset."""
    from converters.stats import dataset_stats
    from medfactory.cli.tables import print_stats

    result = dataset_stats(dataset_dir, name, tokenizer=tokenizer)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print_stats(result)
