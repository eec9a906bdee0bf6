"""`data synthesize` with the real tiny vLLM server as the drafting model.

Its weights are random, so no reply is the JSON asked for: every chunk must be
accounted for as without a usable reply, kept with what the model wrote, nothing
drafted, nothing crashed; and a rerun asks nothing, with or without the server.
"""

import json
from pathlib import Path

from click.testing import CliRunner

from converters.documents import chunk_document, read_document
from medfactory.cli import cli

DOCS = Path(__file__).resolve().parents[2] / "dataset_info" / "samples" / "documents"


def test_the_tiny_model_drafts_gibberish_and_every_chunk_is_accounted_for(tiny_server, tmp_path):
    chunks = [
        c for p in sorted(DOCS.iterdir())
        for c in chunk_document(str(p), read_document(p), 600, 100)
    ]  # fmt: skip
    args = ["data", "synthesize", str(DOCS), "--endpoint", tiny_server.spec.base_url,
            "--api-key", "test-key", "--name", "tiny_drafts", "--dataset-dir", str(tmp_path),
            "--chunk-chars", "600", "--overlap", "100", "--max-tokens", "32", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["chunks"] == len(chunks) and summary["documents"] == 3
    assert summary["unparseable_chunks"] == len(chunks)  # gibberish, every one
    assert summary["requests"] == 2 * len(chunks)  # each asked again once
    assert summary["unusable_waiting"] == len(chunks)  # for --retry-unusable
    assert summary["drafts"] == summary["kept"] == 0 and summary["dropped"] == {}
    assert (tmp_path / "tiny_drafts.drafts.jsonl").read_text() == ""
    # What the model wrote is kept, for a person to see why: in the dropped file ...
    dropped = (tmp_path / "tiny_drafts.drafts.dropped.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in dropped.splitlines()]
    assert [row["chunk_text"] for row in rows] == [chunk.text for chunk in chunks]
    assert {row["reason"] for row in rows} == {"unparseable"}
    assert all(isinstance(row["reply"], str) for row in rows)
    # ... and in the responses file, under the model it was asked of (the server's last).
    state = tmp_path / ".synthesis" / "tiny_drafts"
    kept = [json.loads(line) for line in (state / "responses.jsonl").read_text().splitlines()]
    assert sorted(row["raw"] for row in kept) == sorted(row["reply"] for row in rows)
    assert json.loads((state / "run.json").read_text()) == {"model": "lora"}
    # The replies are kept: a rerun asks nothing ...
    again = json.loads(CliRunner().invoke(cli, args).output)
    assert again["requests"] == 0 and again["chunks_from_earlier_runs"] == len(chunks)
    # ... and needs no server at all.
    gone = [*args[:3], "--endpoint", "http://127.0.0.1:9", *args[5:]]
    result = CliRunner().invoke(cli, gone)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["requests"] == 0
