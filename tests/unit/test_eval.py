"""`medfactory eval predictions|compare`: files in, scores and reports out, errors named."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.evaluation.compare import compare_runs
from medfactory.evaluation.metrics import score_pair
from medfactory.evaluation.scoring import score_predictions, split_think
from medfactory.stats.bootstrap import paired_bootstrap

ROWS = [
    {"prompt": "头痛怎么办？", "predict": "建议休息，多喝水。", "label": "建议休息，必要时就医。"},
    {"prompt": "发烧", "predict": "<think>\n体温高\n</think>\n\n先退热。", "label": "先物理降温。"},
    {"prompt": "咳嗽", "predict": "", "label": "多喝水。"},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("text", "thought", "answer"),
    [
        ("plain answer", None, "plain answer"),
        ("<think>\nreason\n</think>\n\nanswer", "reason", "answer"),
        ("  <think>reason</think>answer", "reason", "answer"),
        ("began in the prompt\n</think>\n\nanswer", "began in the prompt", "answer"),
        ("<think>\ncut off by max_tokens", "cut off by max_tokens", ""),
        ("<think>\n\n</think>\n\nanswer", "", "answer"),
    ],
)  # fmt: skip
def test_split_think(text, thought, answer):
    assert split_think(text) == (thought, answer)


def test_scores_json_holds_means_and_per_sample_scores_in_input_order(tmp_path):
    path = write(tmp_path / "generated_predictions.jsonl", ROWS)
    result = CliRunner().invoke(cli, ["eval", "predictions", str(path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "scores.json").read_text())
    expected = [score_pair(r["predict"], r["label"]) for r in ROWS]
    assert scores["per_sample"] == expected
    assert scores["samples"] == 3 and scores["think"] == "keep"
    for metric in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        assert scores[metric] == pytest.approx(sum(s[metric] for s in expected) / 3)
        assert f"{scores[metric]:.2f}" in result.output


def test_strip_scores_the_final_answers_and_reports_the_thought(tmp_path):
    path = write(tmp_path / "p.jsonl", ROWS)
    scores = score_predictions(path, think="strip", workers=1)
    assert scores["per_sample"][1] == score_pair("先退热。", "先物理降温。")
    assert scores["per_sample"][0] == score_pair(ROWS[0]["predict"], ROWS[0]["label"])
    assert scores["thought"] == {"with_thought": 1, "mean_chars": 3.0, "unfinished": 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"predict": "a", "label": "b"}\n{broken\n', "p.jsonl:2: not a JSON line"),
        (b'{"predict": "a", "label": "b"}\n\xff\xfe\n', "p.jsonl:2: not a JSON line"),
        (b'{"predict": "a"}\n', "p.jsonl:1: expected an object with string `predict` and `label`"),
        (b"[1, 2]\n", "p.jsonl:1: expected an object"),
        (b"\n\n", "no predictions in the file"),
    ],
)
def test_bad_prediction_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["eval", "predictions", str(path)])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "scores.json").exists()


def test_missing_predictions_file_is_one_clear_message(tmp_path):
    result = CliRunner().invoke(cli, ["eval", "predictions", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "no such predictions file" in result.output


def test_paired_bootstrap_interval_covers_the_true_shift_and_is_narrow_for_paired_data():
    rng = np.random.default_rng(1)
    baseline = rng.uniform(0, 100, 400)  # samples differ a lot from each other ...
    candidate = baseline + 2.0 + rng.normal(0, 1, 400)  # ... but the pairs move together
    low, high = paired_bootstrap(baseline, candidate)
    assert low < 2.0 < high
    assert high - low < 0.5  # an unpaired interval would be ~10x wider
    assert paired_bootstrap(baseline, baseline) == (0.0, 0.0)


def scored_run(folder, predicts):
    rows = [dict(r, predict=p) for r, p in zip(ROWS, predicts, strict=True)]
    folder.mkdir()
    score_predictions(write(folder / "generated_predictions.jsonl", rows), workers=1)
    return folder / "scores.json"


def test_compare_reports_means_deltas_and_a_chart(tmp_path):
    base = scored_run(tmp_path / "base", ["不知道。", "不知道。", "不知道。"])
    tuned = scored_run(tmp_path / "lora", [r["label"] for r in ROWS])  # perfect answers
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["eval", "compare", str(base), str(tuned), "--out", str(out)])
    assert result.exit_code == 0, result.output

    comparison = compare_runs([base, tuned])
    base_scores = json.loads(base.read_text())
    rouge_l = next(d for d in comparison.deltas["lora"] if d.metric == "rouge-l")
    assert rouge_l.baseline == pytest.approx(base_scores["rouge-l"])
    assert rouge_l.candidate == pytest.approx(100.0)
    assert rouge_l.delta == pytest.approx(100.0 - base_scores["rouge-l"])
    assert rouge_l.low <= rouge_l.delta <= rouge_l.high

    report = (out / "report.md").read_text()
    assert "| rouge-l |" in report and f"{rouge_l.delta:+.2f}" in report
    assert "## lora vs base" in report and "![scores](scores.png)" in report
    assert f"{rouge_l.delta:+.2f}" in result.output

    import matplotlib.image

    image = matplotlib.image.imread(out / "scores.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10  # bars were drawn


def test_compare_scores_prediction_files_itself_and_writes_the_comparison_as_json(tmp_path):
    rows = [dict(r, predict="不知道。") for r in ROWS]
    for run in ("base", "lora"):
        (tmp_path / run).mkdir()
    base = write(tmp_path / "base" / "generated_predictions.jsonl", rows)
    tuned = write(tmp_path / "lora" / "generated_predictions.jsonl", ROWS)  # perfect answers
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli, ["eval", "compare", str(base), str(tuned), "--names", "base,tuned", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "base" / "scores.json").is_file()  # scored first, as eval predictions
    written = json.loads((out / "comparison.json").read_text())
    scored = [base.with_name("scores.json"), tuned.with_name("scores.json")]
    expected = compare_runs(scored, ["base", "tuned"])
    assert written["baseline"] == "base" and written["samples"] == expected.samples
    for delta in expected.deltas["tuned"]:
        entry = written["deltas"]["tuned"][delta.metric]
        assert (entry["delta"], entry["low"], entry["high"]) == pytest.approx(
            (delta.delta, delta.low, delta.high)
        )
        assert entry["significant"] == delta.significant


def test_compare_refuses_runs_on_different_samples(tmp_path):
    base = scored_run(tmp_path / "base", ["a", "b", "c"])
    other = tmp_path / "other"
    other.mkdir()
    write(other / "generated_predictions.jsonl", ROWS[:2])
    score_predictions(other / "generated_predictions.jsonl", workers=1)
    result = CliRunner().invoke(cli, ["eval", "compare", str(base), str(other / "scores.json")])
    assert result.exit_code == 1
    assert "not scored on the same test samples" in result.output


def test_compare_takes_run_folders_and_names_an_empty_one(tmp_path):
    for run, rows in (("base", [dict(r, predict="不知道。") for r in ROWS]), ("rag", ROWS)):
        (tmp_path / run).mkdir()
        write(tmp_path / run / "generated_predictions.jsonl", rows)
    score_predictions(tmp_path / "rag" / "generated_predictions.jsonl", workers=1)
    out = tmp_path / "report"
    folders = [str(tmp_path / "base"), str(tmp_path / "rag")]
    result = CliRunner().invoke(cli, ["eval", "compare", *folders, "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "comparison.json").read_text())
    expected = compare_runs([tmp_path / r / "scores.json" for r in ("base", "rag")])
    assert written["baseline"] == "base" and list(written["deltas"]) == ["rag"]
    assert written["deltas"]["rag"]["rouge-l"]["delta"] == pytest.approx(
        next(d.delta for d in expected.deltas["rag"] if d.metric == "rouge-l")
    )

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["eval", "compare", folders[0], str(tmp_path / "empty")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "empty: holds none of scores.json, generated_predictions.jsonl or exam.json" in (
        result.output
    )
