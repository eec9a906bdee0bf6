"""`medfactory data`: download, convert and inspect the medical data sets."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from converters.sources import SOURCES
from medfactory.cli.common import (
    DATASET_DIR,
    RULES,
    URL,
    ExampleGroup,
    dataset_format,
    with_example,
)
from medfactory.cli.sql import WithSqlSource
from medfactory.reporting import dumps


@click.group(cls=ExampleGroup)
def data() -> None:
    """Download, convert, clean, split and register medical data sets."""


@with_example("medfactory data download medical-o1 --subset zh --dest downloads/")
@data.command()
@click.argument("source", type=click.Choice(list(SOURCES)))
@click.option("--subset", help="medical-o1: en, zh, mix or mix_zh [default: en].")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("downloads"))
@click.option(
    "--endpoint",
    type=URL(default_scheme="https"),
    help="ModelScope endpoint [default: $MODELSCOPE_DOMAIN or modelscope.cn].",
)
def download(source: str, subset: str | None, dest: Path, endpoint: str | None) -> None:
    """Download a source file from ModelScope with its official client."""
    from converters.download import download as fetch

    path = fetch(source, subset, dest, endpoint=endpoint)
    click.echo(f"downloaded {path} ({path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"next: medfactory data convert {source} {path} --name NAME")


@with_example(
    "medfactory data convert huatuo HuatuoGPT_sft_data_v1.jsonl --format sharegpt --name huatuo\n"
    "  medfactory data convert table 门诊问答.xlsx --column question=患者提问 "
    "--column answer=医生回答 --name clinic"
)
@data.command()
@click.argument("source", type=click.Choice(list(SOURCES)))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@dataset_format()
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
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="table: which column holds what (question, answer, system, history; or "
    "instruction, input, output; or conversation, turn, role, content). Repeatable.",
)
@click.option(
    "--map",
    "map_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="table: a YAML column map (columns:, roles:, encoding:, sheet:); --column wins.",
)
@click.option(
    "--encoding",
    help="table: the CSV's encoding [default: detected: UTF-8, UTF-16, GBK/GB18030, Big5].",
)
@click.option("--sheet", help="table: the XLSX sheet [default: the first].")
@click.option(
    "--deid",
    type=click.Choice(["off", "basic", "strict"]),
    help="De-identification: basic scrubs phones, IDs, e-mails and URLs; strict adds "
    "Presidio (names, addresses, record numbers, dates of birth, ...) "
    "[default: strict for table, basic otherwise].",
)
@click.option(
    "--pseudonymize",
    is_flag=True,
    help="strict: surrogates kept within a record (患者A, [PHONE_1]) instead of [NAME], [PHONE].",
)
@click.option(
    "--ner-config",
    type=click.Path(dir_okay=False),
    help="strict: a Presidio NLP-engine YAML naming an installed spaCy or transformers "
    "NER model, which then also finds names and places without context.",
)
@click.option("--no-scrub", is_flag=True, help="Same as --deid off.")
@click.option(
    "--lint",
    type=click.Choice(["off", "flag", "reject"]),
    default="flag",
    show_default=True,
    help="Safety rules (banned claims, red flags without referral): count the records "
    "breaking them, or reject them to the rejects file with the rule.",
)
@RULES
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
    columns,
    map_file,
    encoding,
    sheet,
    deid,
    pseudonymize,
    ner_config,
    no_scrub,
    lint,
    rules,
    force,
    workers,
    as_json,
) -> None:
    """Convert source files into LLaMA-Factory splits and register them.

    Every input record is written to a split, counted as a duplicate, or
    rejected to DATASET_DIR/NAME.rejects.jsonl with its line and reason. What
    de-identification replaced is counted and sampled, in context, in
    DATASET_DIR/NAME.deid-audit.json (it shows the originals: keep it private).
    """
    from converters.conversion import ConvertRequest, DeidRequest, TableOptions, convert_files
    from converters.split import parse_split
    from medfactory.cli.progress import record_progress
    from medfactory.cli.tables import print_convert_summary

    try:
        ratios = parse_split(split_text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--split") from None
    request = ConvertRequest(
        source=source, inputs=list(inputs), fmt=fmt, name=name, dataset_dir=dataset_dir,
        split=ratios, seed=seed, cot=cot, system=system, max_chars=max_chars,
        dedup=not no_dedup, deid=DeidRequest(deid, no_scrub, pseudonymize, ner_config),
        lint=lint, rules=rules, force=force, workers=workers,
        table=TableOptions(columns, map_file, encoding, sheet),
    )  # fmt: skip
    summary = convert_files(request, partial(record_progress, enabled=not as_json))
    if as_json:
        click.echo(dumps(summary.as_dict()))
    else:
        print_convert_summary(summary)


data.add_command(WithSqlSource(convert))  # `data convert sql URL ...`: a database source


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
        click.echo(dumps(result))
    else:
        print_stats(result)


@with_example(
    "medfactory data lint huatuo_sample_train\n  medfactory data lint my_answers.jsonl --json"
)
@data.command()
@click.argument("target", metavar="NAME|FILE")
@DATASET_DIR
@RULES
@click.option("--examples", default=3, show_default=True, help="Examples shown per rule.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Also write OUT/lint.json."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def lint(target, dataset_dir, rules, examples, out, as_json) -> None:
    """Check training data against the safety rules: banned claims in answers, red-flag
    questions answered without sending the patient to emergency care.

    NAME is a registered dataset; FILE is an Alpaca or ShareGPT JSON/JSONL file or a
    generated_predictions.jsonl. Every rule is counted per record, with examples.
    """
    from medfactory.cli.tables import print_safety_report
    from medfactory.evaluation.safety import lint_dataset

    report = lint_dataset(target, dataset_dir, rules, examples, out)
    if as_json:
        click.echo(dumps(report))
    else:
        print_safety_report(report)


@with_example(
    "medfactory data synthesize guidelines/ --endpoint http://127.0.0.1:8000 --model qwen "
    "--name cardio_qa"
)
@data.command()
@click.argument("docs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--endpoint", required=True, type=URL(), help="Base URL of an OpenAI-compatible server."
)
@click.option(
    "--model", "--model-name", "model", help="The drafting model [default: the server's last]."
)
@click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="The server's API key.")
@click.option(
    "--name", required=True, help="Name of the draft set (NAME.drafts.jsonl, NAME.exam.jsonl)."
)
@click.option(
    "--kind",
    type=click.Choice(["qa", "exam"]),
    default="qa",
    show_default=True,
    help="qa: question-answer drafts for training; exam: multiple-choice questions (stem, "
    "4-5 options, key, source passage) for `eval exam`, kept out of training data.",
)
@DATASET_DIR
@click.option("--questions", default=3, show_default=True, help="Questions asked per chunk.")
@click.option("--chunk-chars", default=1500, show_default=True, help="Target chunk size.")
@click.option(
    "--overlap", default=200, show_default=True, help="Characters a chunk repeats of the last."
)
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@click.option("--max-tokens", default=2048, show_default=True, help="Tokens per reply.")
@click.option(
    "--min-grounding",
    default=0.5,
    show_default=True,
    help="Drop an answer when less of it than this occurs in its chunk.",
)
@click.option("--min-answer-chars", default=10, show_default=True, help="Drop shorter answers.")
@click.option(
    "--retry-unusable",
    is_flag=True,
    help="Ask again the chunks whose kept reply was not usable (a rerun skips them).",
)
@click.option(
    "--encoding", help="Of the text documents [default: UTF-8, UTF-16, GBK/GB18030 or Big5]."
)
@RULES
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def synthesize(
    docs, endpoint, model, api_key, name, kind, dataset_dir, questions, chunk_chars, overlap,
    concurrency, max_tokens, min_grounding, min_answer_chars, retry_unusable, encoding, rules,
    as_json,
) -> None:  # fmt: skip
    """Draft question-answer pairs (or exam questions) from medical documents with a
    model, and check them.

    DOCS are Markdown, text, PDF and DOCX files, or folders of them. Each is cut into
    chunks by headings, paragraphs and sentences; the model writes --questions pairs per
    chunk, each grounded in it (prompts in templates/synthesis/). Drafts that are short,
    make a banned claim, are not grounded in their chunk, or repeat a question are
    dropped with the reason; the rest go to DATASET_DIR/NAME.drafts.jsonl for doctors
    to review (`medfactory review create --drafts`).

    With --kind exam the model writes single-best-answer questions. One is dropped
    when its key is not among its 4-5 options, or when the passage does not support
    the key's option (--min-grounding); the rest go to DATASET_DIR/NAME.exam.jsonl, an
    `eval exam --benchmark` file that doctors review the same way; their export writes
    an exam, never training data.

    A rerun asks only for the chunks it has no reply for (and needs no server when it
    has them all); a chunk whose reply was not usable is kept with that reply and asked
    again with --retry-unusable.
    """
    from deploy.client import Endpoint
    from medfactory.cli.progress import count_progress
    from medfactory.cli.tables import print_synthesis_summary
    from medfactory.synthesis.checks import CheckOptions
    from medfactory.synthesis.run import SynthesisOptions, synthesize_documents

    options = SynthesisOptions(
        name=name, dataset_dir=dataset_dir, questions=questions, chunk_chars=chunk_chars,
        overlap=overlap, concurrency=concurrency, max_tokens=max_tokens,
        checks=CheckOptions(min_answer_chars=min_answer_chars, min_grounding=min_grounding),
        rules=rules, encoding=encoding, retry_unusable=retry_unusable, kind=kind,
    )  # fmt: skip
    server = Endpoint(endpoint, api_key=api_key, model=model)  # checked when a request is due
    progress = partial(count_progress, enabled=not as_json)
    summary = synthesize_documents(list(docs), server, options, progress)
    if as_json:
        click.echo(dumps(summary))
    else:
        print_synthesis_summary(summary)
