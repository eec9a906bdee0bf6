"""`medfactory rag`: index a team's documents, search them, measure the retrieval."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import ExampleGroup, options, with_example

INDEX_DIR = click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the indexes [default: the project's saves/rag/].",
)
TOP = click.option("--top", default=3, show_default=True, help="Passages to retrieve.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


# How `search` and `eval` rank: --mode, and where the query's embedding comes from.
retrieval_options = options(
    INDEX_DIR,
    click.option(
        "--mode",
        type=click.Choice(["auto", "bm25", "dense", "hybrid"]),
        default="auto",
        show_default=True,
        help="auto: BM25 and dense fused by reciprocal rank when the index holds vectors, "
        "else BM25.",
    ),
    click.option(
        "--embeddings-endpoint",
        help="The embeddings server [default: the one the index was built with].",
    ),
    click.option(
        "--api-key",
        envvar="MEDFACTORY_EMBEDDINGS_API_KEY",
        help="The embeddings server's API key.",
    ),  # fmt: skip
)


@click.group(cls=ExampleGroup)
def rag() -> None:
    """Retrieval over your own documents: the baseline (and the arm) beside a fine-tune."""


@with_example("medfactory rag index dataset_info/samples/documents/ --name guidelines")
@rag.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="The index's name (saves/rag/NAME/).")
@INDEX_DIR
@click.option("--chunk-chars", default=600, show_default=True, help="About this long a passage.")
@click.option(
    "--overlap", default=100, show_default=True, help="Characters repeated from the passage before."
)
@click.option("--encoding", help="Of the text documents [default: detected].")
@click.option(
    "--embeddings-endpoint",
    help="An OpenAI-compatible server for dense retrieval [default: the index's own, if any].",
)
@click.option("--embeddings-model", help="Its served embeddings model.")
@click.option(
    "--api-key", envvar="MEDFACTORY_EMBEDDINGS_API_KEY", help="The embeddings server's API key."
)
@JSON
def index(inputs, name, index_dir, chunk_chars, overlap, encoding, embeddings_endpoint,
          embeddings_model, api_key, as_json) -> None:  # fmt: skip
    """Index documents (Markdown, text, PDF, DOCX; files or folders), de-identified.

    Run it again after the folder changed: only new and changed documents are
    read again; the index is replaced whole when the new one is complete.
    """
    from medfactory.rag.build import IndexOptions, build_index
    from medfactory.reporting import dumps

    options = IndexOptions(name, index_dir, chunk_chars, overlap, embeddings_endpoint,
                           embeddings_model, api_key, encoding)  # fmt: skip
    say = (lambda _text: None) if as_json else (lambda text: click.echo(text, err=True))
    summary = build_index(list(inputs), options, say)
    if as_json:
        click.echo(dumps(summary))
        return
    state = "updated" if summary["updated"] else "up to date"
    click.echo(
        f"index {name!r} {state}: {summary['chunks']} passages from {summary['documents']} "
        f"documents ({summary['documents_read']} read, {summary['documents_reused']} unchanged, "
        f"{summary['documents_removed']} removed) in {summary['folder']}"
    )
    if summary["pii_replaced"]:
        replaced = ", ".join(f"{kind} {n}" for kind, n in summary["pii_replaced"].items())
        click.echo(f"de-identified: {replaced}")
    if summary["embeddings"]:
        dense = summary["embeddings"]
        click.echo(f"dense vectors: {dense['model']} ({dense['dimension']} dimensions)")
    click.echo(f'next: medfactory rag search {name} "QUESTION" --top 3')


@with_example('medfactory rag search guidelines "高血压患者头晕怎么办" --top 3')
@rag.command()
@click.argument("name")
@click.argument("query")
@TOP
@retrieval_options
@JSON
def search(name, query, top, index_dir, mode, embeddings_endpoint, api_key, as_json) -> None:
    """The passages of index NAME that best answer QUERY, with their sources."""
    from medfactory.rag.search import search_index
    from medfactory.reporting import dumps

    passages = search_index(name, query, top, index_dir, mode=mode,
                            embeddings_endpoint=embeddings_endpoint, api_key=api_key)  # fmt: skip
    if as_json:
        click.echo(dumps([{**p.source(), "text": p.text} for p in passages]))
        return
    if not passages:
        click.echo(f"no passage of {name!r} shares a term with the query")
    for passage in passages:
        where = f"{passage.file}" + (f" · {passage.heading}" if passage.heading else "")
        click.echo(f"[{passage.rank}] {where}  chars {passage.start}-{passage.end}  "
                   f"score {passage.score:.3f}")  # fmt: skip
        click.echo(f"    {' '.join(passage.text.split())}")


@with_example("medfactory rag eval guidelines --questions questions.jsonl --top 3")
@rag.command(name="eval")
@click.argument("name")
@click.option(
    "--questions",
    required=True,
    type=click.Path(path_type=Path),
    help='JSON lines of {"question", "answer_contains"} or {"question", "source"}.',
)
@TOP
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Report folder [default: INDEX_DIR/NAME/eval/MODE].")  # fmt: skip
@retrieval_options
@JSON
def eval_command(name, questions, top, out, index_dir, mode, embeddings_endpoint, api_key,
                 as_json) -> None:  # fmt: skip
    """Recall@k and MRR of the retrieval on a question file; report.json and report.md."""
    from medfactory.rag.evaluate import evaluate_file
    from medfactory.reporting import dumps, number

    report = evaluate_file(name, questions, top, out, index_dir, mode=mode,
                           embeddings_endpoint=embeddings_endpoint, api_key=api_key)  # fmt: skip
    if as_json:
        click.echo(dumps({key: value for key, value in report.items() if key != "rows"}))
        return
    recall = "  ".join(f"recall@{k} {number(v)}" for k, v in report["recall"].items())
    click.echo(f"{report['questions']} questions, {report['mode']}: {recall}  "
               f"MRR {number(report['mrr'])}")  # fmt: skip
    if report["not_in_index"]:
        click.echo(f"no passage answers lines {', '.join(map(str, report['not_in_index']))}")
    click.echo(f"report: {report['out']}/report.md")
