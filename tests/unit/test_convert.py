import gc
import json
import tempfile
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from converters import sources
from converters.convert import ConvertOptions, NothingConverted, convert, convert_chunk
from converters.records import SourceError
from converters.registry import INFO_FILE, RegistryError
from medfactory.cli import cli

REPO = Path(__file__).resolve().parents[2]
HUATUO = REPO / "dataset_info" / "samples" / "huatuo_sample.jsonl"
MEDICAL_O1 = REPO / "dataset_info" / "samples" / "medical_o1_sample.json"


def options(tmp_path, **kw) -> ConvertOptions:
    kw.setdefault("fmt", "sharegpt")
    kw.setdefault("name", "t")
    kw.setdefault("workers", 1)
    return ConvertOptions(dataset_dir=tmp_path, **kw)


def lines(path: Path) -> list:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def source_records(path: Path) -> int:
    if path.suffix == ".jsonl":
        return sum(1 for line in path.read_bytes().splitlines() if line.strip())
    return len(json.loads(path.read_text()))


@pytest.mark.parametrize(("source", "path"), [("huatuo", HUATUO), ("medical-o1", MEDICAL_O1)])
def test_every_record_is_accounted_for(tmp_path, source, path):
    summary = convert(source, [path], options(tmp_path))
    assert summary.read == source_records(path)
    assert summary.read == summary.accounted
    written = {split: len(lines(tmp_path / f"t_{split}.jsonl")) for split in summary.written}
    assert written == summary.written
    rejects = lines(tmp_path / "t.rejects.jsonl")
    assert len(rejects) == summary.rejected.total()
    assert {r["reason"] for r in rejects} == set(summary.rejected)


def test_summary_percentiles_describe_the_written_records(tmp_path):
    summary = convert("huatuo", [HUATUO], options(tmp_path, system="你是医生。")).as_dict()
    records = [r for split in summary["written"] for r in lines(tmp_path / f"t_{split}.jsonl")]
    turns = sorted(len(r["conversations"]) // 2 for r in records)
    chars = sorted(
        len(r["system"]) + sum(len(m["value"]) for m in r["conversations"]) for r in records
    )

    def ranks(ordered: list) -> dict:  # the value at rank q * n of the sorted records
        at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}

    assert len(set(turns)) > 2 and len(set(chars)) > 50  # a histogram of many values
    assert summary["turns"] == ranks(turns)
    assert summary["chars"] == ranks(chars)


def test_rejects_name_the_source_line(tmp_path):
    convert("huatuo", [HUATUO], options(tmp_path))
    source_lines = HUATUO.read_bytes().split(b"\n")
    for reject in lines(tmp_path / "t.rejects.jsonl"):
        assert reject["source"] == str(HUATUO)
        raw = source_lines[reject["line"] - 1].decode("utf-8", errors="replace")
        assert raw == reject["record"]
        assert reject["detail"]


def test_huatuo_sample_hits_every_reject_reason(tmp_path):
    summary = convert("huatuo", [HUATUO], options(tmp_path))
    assert set(summary.rejected) == {
        "answer_first", "broken_alternation", "empty_turn", "invalid_json", "invalid_utf8",
        "missing_role_prefix", "no_answered_question", "no_data_list", "not_an_object",
        "too_long", "turn_not_string",
    }  # fmt: skip
    assert summary.duplicates == {"exact": 1, "normalised": 1}
    assert summary.dropped_trailing_questions == 1
    assert set(summary.pii) == {"mobile", "landline", "id_number", "email", "url"}


def test_duplicates_are_found_across_files_and_can_be_kept(tmp_path):
    twice = convert("medical-o1", [MEDICAL_O1, MEDICAL_O1], options(tmp_path, name="a"))
    once = convert("medical-o1", [MEDICAL_O1], options(tmp_path, name="b"))
    assert sum(twice.written.values()) == sum(once.written.values())
    kept = convert("medical-o1", [MEDICAL_O1], options(tmp_path, name="c", dedup=False))
    assert sum(kept.duplicates.values()) == 0
    assert sum(kept.written.values()) == sum(once.written.values()) + sum(once.duplicates.values())


def test_scrubbing_can_be_turned_off(tmp_path):
    convert("huatuo", [HUATUO], options(tmp_path, name="s", split=(1.0,)))
    convert("huatuo", [HUATUO], options(tmp_path, name="r", split=(1.0,), deid="off"))
    scrubbed = (tmp_path / "s_train.jsonl").read_text()
    raw = (tmp_path / "r_train.jsonl").read_text()
    assert "13912345678" in raw and "13912345678" not in scrubbed
    assert "[PHONE]" in scrubbed and "[ID_NUMBER]" in scrubbed
    assert "血压180/110mmHg" in scrubbed and "HbA1c 8.2%" in scrubbed


def test_adding_records_never_moves_existing_ones(tmp_path):
    """New records before, after and among the old ones, in another order: no old one moves."""
    import random

    records = [line for line in HUATUO.read_bytes().splitlines() if line.strip()]
    old, new = records[:150], records[150:]
    mixed = old + new
    random.Random(3).shuffle(mixed)
    (tmp_path / "old.jsonl").write_bytes(b"\n".join(old) + b"\n")
    (tmp_path / "all.jsonl").write_bytes(b"\n".join(new[:40] + mixed) + b"\n")  # prepended too
    convert("huatuo", [tmp_path / "old.jsonl"], options(tmp_path, name="old", dedup=False))
    convert("huatuo", [tmp_path / "all.jsonl"], options(tmp_path, name="all", dedup=False))
    placed = {}
    for split in ("train", "val", "test"):
        for record in lines(tmp_path / f"all_{split}.jsonl"):
            placed[json.dumps(record)] = split
    for split in ("train", "val", "test"):
        old_records = lines(tmp_path / f"old_{split}.jsonl")
        assert old_records, split
        assert {placed[json.dumps(r)] for r in old_records} == {split}


@pytest.mark.parametrize("enabled", [True, False])
def test_a_chunk_pauses_the_cycle_collector_and_restores_it(tmp_path, enabled):
    source = tmp_path / "big.jsonl"
    source.write_bytes(HUATUO.read_bytes() * 4)
    chunk = next(sources.get_source("huatuo").chunks(source))
    collections = []
    record = lambda phase, info: phase == "start" and collections.append(info)  # noqa: E731
    (gc.enable if enabled else gc.disable)()
    gc.callbacks.append(record)
    try:
        result = convert_chunk("huatuo", options(tmp_path), chunk)
    finally:
        gc.callbacks.remove(record)
        now_enabled = gc.isenabled()
        gc.enable()
    assert now_enabled == enabled
    # None while it converts; at most the one its allocations leave due, once it is back on.
    assert result.read > 800 and len(collections) <= (1 if enabled else 0), collections


@pytest.fixture
def spill_dir(tmp_path, monkeypatch):
    """The temporary folder the pool workers hand their results back through."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_output_does_not_depend_on_the_worker_count(tmp_path, monkeypatch, spill_dir):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4096)  # chunks both here and in the pool
    convert("huatuo", [HUATUO], options(tmp_path, name="one", workers=1))
    convert("huatuo", [HUATUO], options(tmp_path, name="two", workers=2))
    for suffix in ("_train.jsonl", "_val.jsonl", "_test.jsonl", ".rejects.jsonl"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"two{suffix}").read_bytes()
    assert not any(spill_dir.iterdir())


def test_train_only_split_registers_one_entry(tmp_path):
    summary = convert("huatuo", [HUATUO], options(tmp_path, split=(1.0,)))
    assert list(json.loads((tmp_path / INFO_FILE).read_text())) == ["t_train"]
    assert summary.written["train"] == sum(summary.written.values())


def test_medical_o1_with_a_system_prompt_and_alpaca(tmp_path, fixtures_dir):
    real = fixtures_dir / "medical_o1" / "medical_o1_sft_en_first2.json"
    opts = options(tmp_path, fmt="alpaca", split=(1.0,), system="You are a doctor.", cot="huatuo")
    convert("medical-o1", [real], opts)
    records = lines(tmp_path / "t_train.jsonl")
    upstream = json.loads(real.read_text())
    assert [r["instruction"] for r in records] == [u["Question"].strip() for u in upstream]
    assert all(r["system"] == "You are a doctor." for r in records)
    assert all(r["output"].startswith("## Thinking\n\n") for r in records)
    entry = json.loads((tmp_path / INFO_FILE).read_text())["t_train"]
    assert entry["columns"]["system"] == "system"


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_conversion_leaves_nothing_behind(tmp_path, monkeypatch, spill_dir, workers):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4096)  # interrupt mid-file
    convert("huatuo", [HUATUO], options(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p != spill_dir}

    def interrupt(done, records):
        if records >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(
            "huatuo", [HUATUO, HUATUO], options(tmp_path, seed=7, workers=workers),
            on_progress=interrupt,
        )  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p != spill_dir} == before
    assert not any(spill_dir.iterdir())


def test_a_conflicting_name_fails_before_any_work(tmp_path, monkeypatch):
    import converters.convert as convert_module

    convert("huatuo", [HUATUO], options(tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def no_work(*args, **kwargs):
        raise AssertionError("records were converted before the name was checked")

    monkeypatch.setattr(convert_module, "_run_chunks", no_work)
    with pytest.raises(RegistryError, match="--force"):
        convert("huatuo", [HUATUO], options(tmp_path, fmt="alpaca"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    monkeypatch.undo()
    convert("huatuo", [HUATUO], options(tmp_path, fmt="alpaca", force=True))
    assert lines(tmp_path / "t_train.jsonl")[0].keys() >= {"instruction", "output", "history"}


def test_missing_input_is_named(tmp_path):
    with pytest.raises(SourceError, match="nope.jsonl: no such file"):
        convert("huatuo", [tmp_path / "nope.jsonl"], options(tmp_path))


def test_cli_convert_prints_a_summary_and_json(tmp_path):
    args = ["data", "convert", "huatuo", str(HUATUO), "--name", "c", "--dataset-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["read"] == source_records(HUATUO)
    assert summary["rejected"]["invalid_utf8"] == 1
    table = CliRunner().invoke(cli, [*args, "--workers", "1"])
    assert "rejected: invalid_utf8" in table.output and "written train" in table.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "0.5,0.4"], "add up to 1"),
        (["--name", "x", "missing.jsonl"], "missing.jsonl: no such file"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path, extra, message):
    args = ["data", "convert", "huatuo", str(HUATUO), "--name", "c", "--dataset-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_source_lists_the_known_ones(tmp_path):
    result = CliRunner().invoke(cli, ["data", "convert", "hautuo", "x", "--name", "n"])
    assert result.exit_code == 2
    assert "'huatuo'" in result.output and "'medical-o1'" in result.output


def test_unpaired_surrogate_is_rejected_not_fatal(tmp_path):
    source = tmp_path / "o1.json"
    source.write_text('[{"Question": "bad \\ud800", "Complex_CoT": "c", "Response": "r"}]')
    with pytest.raises(NothingConverted, match="invalid_unicode 1") as failure:
        convert("medical-o1", [source], options(tmp_path, split=(1.0,)))
    assert dict(failure.value.summary.rejected) == {"invalid_unicode": 1}
    assert json.loads((tmp_path / "t.rejects.jsonl").read_text())["line"] == 1


@pytest.mark.parametrize("chunk_bytes", [64, 1000, 4096])
def test_chunking_changes_nothing(tmp_path, monkeypatch, chunk_bytes):
    source = tmp_path / "in.jsonl"
    long_line = json.dumps({"data": ["问：" + "长" * 3000, "答：好"]}, ensure_ascii=False)
    source.write_bytes(HUATUO.read_bytes() + long_line.encode() + b"\n\n" + b"{no newline at end")
    convert("huatuo", [source], options(tmp_path, name="whole", max_chars=None))
    monkeypatch.setattr(sources, "CHUNK_BYTES", chunk_bytes)
    convert("huatuo", [source], options(tmp_path, name="cut", workers=2, max_chars=None))
    for suffix in ("_train.jsonl", "_val.jsonl", "_test.jsonl", ".rejects.jsonl"):
        assert (tmp_path / f"whole{suffix}").read_bytes() == (
            tmp_path / f"cut{suffix}"
        ).read_bytes()
    last = lines(tmp_path / "cut.rejects.jsonl")[-1]
    assert last["line"] == len(source.read_bytes().split(b"\n"))
    assert last["record"] == "{no newline at end"


def test_seen_hashes_follow_input_order_within_and_across_chunks():
    import numpy as np

    from converters.convert import SeenHashes

    seen = SeenHashes()
    first = np.array([5, 3, 5, 2**64 - 1], dtype=np.uint64)
    answer = seen.seen(first)
    assert answer.tolist() == [False, False, True, False]
    seen.add(first, answer)
    second = np.array([3, 7, 7, 0], dtype=np.uint64)
    answer = seen.seen(second)
    assert answer.tolist() == [True, False, True, False]
    seen.add(second, answer)
    assert len(seen) == 5


def test_seen_hashes_agree_with_a_set_over_many_chunks():
    import numpy as np

    from converters.convert import SeenHashes

    rng = np.random.default_rng(0)
    spread = rng.integers(0, 2**64 - 1, size=2000, dtype=np.uint64, endpoint=True)
    # Keys that share their top bits, so the bitmap says "maybe" and the runs decide.
    close = np.uint64(0xABCDEF << 40) + rng.integers(0, 2**20, size=1000, dtype=np.uint64)
    pool = np.concatenate([spread, close])
    seen, reference = SeenHashes(), set()
    for _ in range(300):
        keys = rng.choice(pool, size=int(rng.integers(0, 60)))
        expected, in_chunk = [], set()
        for key in keys.tolist():
            expected.append(key in reference or key in in_chunk)
            in_chunk.add(key)
        answer = seen.seen(keys)
        assert answer.tolist() == expected
        seen.add(keys, answer)
        reference |= in_chunk
    assert len(seen) == len(reference)
    assert len(seen.runs) <= 12  # merged as it grows, not one run per chunk
