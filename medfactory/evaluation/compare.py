"""Compare scored runs side by side: the base model vs a fine-tune, or two checkpoints.

Every run after the first is compared with the first on the same test
samples. The uncertainty of each mean difference comes from a paired
bootstrap: resample the samples (the same ones for both runs), recompute the
mean of the per-sample differences, take the 2.5th and 97.5th percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfactory.evaluation.metrics import METRICS
from medfactory.evaluation.progress import Progress, no_progress
from medfactory.evaluation.scoring import SCORES_FILE, PredictionsError, read_scores, score_file
from medfactory.reporting import pyplot, write_json
from medfactory.stats.bootstrap import RESAMPLES, paired_bootstrap

EXAM_FILE = "exam.json"  # `eval exam`'s report: compared question by question
PREDICTIONS_FILE = "generated_predictions.jsonl"


@dataclass(frozen=True)
class Delta:
    metric: str
    baseline: float
    candidate: float
    delta: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Comparison:
    names: list[str]
    means: dict[str, dict[str, float]]  # run -> metric -> mean
    deltas: dict[str, list[Delta]]  # run (after the first) -> its deltas to the first
    samples: int


def run_names(paths: list[Path]) -> list[str]:
    """Each run named by its folder, with more of the path where folders share a name."""
    for depth in range(1, 6):
        names = ["/".join(Path(p).resolve().parent.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def compare_runs(paths: list[Path], names: list[str] | None = None) -> Comparison:
    if len(paths) < 2:
        raise PredictionsError("compare needs at least two scores.json files")
    runs = [read_scores(p) for p in paths]
    names = names or run_names(paths)
    if len(names) != len(paths):
        raise PredictionsError(f"--names gives {len(names)} names for {len(paths)} files")
    first = runs[0]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        if run.get("labels_sha256") != first.get("labels_sha256"):
            raise PredictionsError(
                f"{path} and {paths[0]} were not scored on the same test samples "
                f"({run.get('samples')} vs {first.get('samples')} samples, different labels); "
                "generate both on the same dataset split and --max-samples"
            )
        if run.get("think") != first.get("think"):
            raise PredictionsError(
                f"{path} was scored with think={run.get('think')} but {paths[0]} with "
                f"think={first.get('think')}; score both the same way"
            )
    per_run = [
        {m: np.array([s[m] for s in run["per_sample"]], dtype=float) for m in METRICS}
        for run in runs
    ]
    means = {
        name: {m: float(values[m].mean()) for m in METRICS}
        for name, values in zip(names, per_run, strict=True)
    }
    deltas = {}
    for name, values in zip(names[1:], per_run[1:], strict=True):
        deltas[name] = []
        for metric in METRICS:
            low, high = paired_bootstrap(per_run[0][metric], values[metric])
            base, cand = means[names[0]][metric], means[name][metric]
            deltas[name].append(Delta(metric, base, cand, cand - base, low, high))
    return Comparison(names, means, deltas, len(first["per_sample"]))


def markdown_report(comparison: Comparison, chart: Path | None = None) -> str:
    names = comparison.names
    lines = [
        "# Evaluation comparison",
        "",
        f"{comparison.samples} paired test samples; baseline: **{names[0]}**. "
        "Scores are LLaMA-Factory's BLEU-4 and ROUGE-1/2/L (x100). "
        f"CI: 95 % paired bootstrap ({RESAMPLES} resamples) of the mean difference.",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for metric in METRICS:
        row = [f"{comparison.means[n][metric]:.2f}" for n in names]
        lines.append(f"| {metric} | " + " | ".join(row) + " |")
    for name, deltas in comparison.deltas.items():
        lines += ["", f"## {name} vs {names[0]}", "", "| metric | delta | 95 % CI | |"]
        lines.append("|---|---|---|---|")
        for d in deltas:
            verdict = ("better" if d.delta > 0 else "worse") if d.significant else "no clear change"
            lines.append(
                f"| {d.metric} | {d.delta:+.2f} | [{d.low:+.2f}, {d.high:+.2f}] | {verdict} |"
            )
    if chart:
        lines += ["", f"![scores]({chart.name})"]
    return "\n".join(lines) + "\n"


def bar_chart(comparison: Comparison, path: Path) -> Path:
    """Grouped bars: one group per metric, one bar per run, CI whiskers on the candidates."""
    plt = pyplot()

    names, width = comparison.names, 0.8 / len(comparison.names)
    x = np.arange(len(METRICS))
    figure, axes = plt.subplots(figsize=(2 + 1.6 * len(METRICS), 4))
    for i, name in enumerate(names):
        heights = [comparison.means[name][m] for m in METRICS]
        errors = None
        if name in comparison.deltas:
            d = comparison.deltas[name]
            errors = [[x.delta - x.low for x in d], [x.high - x.delta for x in d]]
        bars = axes.bar(x + i * width, heights, width, label=name, yerr=errors, capsize=3)
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
    axes.set_xticks(x + width * (len(names) - 1) / 2, METRICS)
    axes.set_ylabel("score (x100)")
    axes.set_title(f"{comparison.samples} test samples; whiskers: 95 % CI of the difference")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def as_dict(comparison: Comparison) -> dict:
    """The comparison as JSON: means per run, and each later run's deltas to the first."""
    return {
        "baseline": comparison.names[0],
        "samples": comparison.samples,
        "means": comparison.means,
        "deltas": {
            name: {
                d.metric: {
                    "baseline": d.baseline, "candidate": d.candidate, "delta": d.delta,
                    "low": d.low, "high": d.high, "significant": d.significant,
                }
                for d in deltas
            }
            for name, deltas in comparison.deltas.items()
        },
        "interval": f"95 % paired bootstrap, {RESAMPLES} resamples",
    }  # fmt: skip


def write_comparison(
    paths: list[Path], names: list[str] | None, out: Path
) -> tuple[Comparison, Path]:
    """Compare the runs; write OUT/report.md, OUT/comparison.json and OUT/scores.png.
    Returns the comparison and the report's path."""
    result = compare_runs(paths, names)
    write_json(out / "comparison.json", as_dict(result))
    chart = bar_chart(result, out / "scores.png")
    report = out / "report.md"
    report.write_text(markdown_report(result, chart), encoding="utf-8")
    return result, report


@dataclass(frozen=True)
class FilesCompared:
    """What `eval compare` wrote: an exam comparison (a dict, `exam`) or a scores one."""

    out: Path
    exam: dict | None = None
    scores: Comparison | None = None
    report: Path | None = None


def run_file(path: Path) -> Path:
    """A run's folder stands for the file in it: its scores, else its predictions (to
    score), else its exam report."""
    if not path.is_dir():
        return path
    for name in (SCORES_FILE, PREDICTIONS_FILE, EXAM_FILE):
        if (path / name).is_file():
            return path / name
    raise PredictionsError(
        f"{path}: holds none of {SCORES_FILE}, {PREDICTIONS_FILE} or {EXAM_FILE}; give a run's "
        "folder (e.g. `eval endpoint --out`) or one of those files"
    )


def compare_files(
    files: list[Path],
    names: list[str] | None,
    out: Path,
    think: str = "keep",
    progress: Progress = no_progress,
) -> FilesCompared:
    """`eval compare`, by what the first file is: exam.json files question by question;
    otherwise scores.json files, a generated_predictions.jsonl being scored first (as
    `eval predictions`, with `think`)."""
    files = [run_file(Path(file)) for file in files]
    if files[0].name == EXAM_FILE:
        from medfactory.evaluation.exam import write_exam_comparison

        return FilesCompared(out, exam=write_exam_comparison(files, names, out))
    scored = []
    for file in files:
        if file.suffix == ".jsonl":
            score_file(file, think, progress=progress)
            file = file.with_name(SCORES_FILE)
        scored.append(file)
    result, report = write_comparison(scored, names, out)
    return FilesCompared(out, scores=result, report=report)
