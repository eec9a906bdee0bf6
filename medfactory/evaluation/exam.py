"""Multiple-choice exam accuracy of a served model, through EvalScope.

EvalScope sends the questions to the OpenAI-compatible endpoint, extracts the
letter and scores it; this module picks the benchmark (the medical subjects of
C-Eval, CMMLU and MMLU, MedMCQA, MedXpertQA, or a team's own file in
EvalScope's `general_mcq` format), reads EvalScope's per-question reviews back
and reports accuracy per subject with Wilson 95 % intervals. Two runs on the
same questions compare with a paired bootstrap (`eval compare`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfactory.evaluation.errors import ExamError
from medfactory.evaluation.progress import Progress, no_progress
from medfactory.reporting import read_jsonl, write_json, write_jsonl
from medfactory.stats.bootstrap import RESAMPLES, paired_bootstrap
from medfactory.stats.intervals import wilson

LETTERS = "ABCDEFGHIJ"
EXAM_FILE = "exam.json"


@dataclass(frozen=True)
class Benchmark:
    evalscope: str  # EvalScope's benchmark name
    subsets: tuple[str, ...] | None  # None: all of them
    title: str
    dataset_id: str  # where EvalScope fetches it from (ModelScope)
    purpose: str = "medical"  # or "general": the forgetting check


MEDICAL_CEVAL = ("basic_medicine", "clinical_medicine", "physician")
BENCHMARKS = {
    "ceval-medical": Benchmark(
        "ceval", MEDICAL_CEVAL, "C-Eval, medical subjects", "evalscope/ceval"
    ),
    "cmmlu-medical": Benchmark(
        "cmmlu",
        (
            "anatomy",
            "clinical_knowledge",
            "college_medicine",
            "college_medical_statistics",
            "genetics",
            "nutrition",
            "professional_medicine",
            "traditional_chinese_medicine",
            "virology",
        ),
        "CMMLU, medical subjects",
        "evalscope/cmmlu",
    ),  # fmt: skip
    "mmlu-medical": Benchmark(
        "mmlu",
        (
            "anatomy",
            "clinical_knowledge",
            "college_medicine",
            "medical_genetics",
            "nutrition",
            "professional_medicine",
            "virology",
        ),
        "MMLU, medical subjects",
        "cais/mmlu",
    ),  # fmt: skip
    "medmcqa": Benchmark("med_mcqa", None, "MedMCQA", "extraordinarylab/medmcqa"),
    "medxpertqa": Benchmark("medxpertqa", ("Text",), "MedXpertQA, text", "evalscope/MedXpertQA"),
    "ceval-general": Benchmark(
        "ceval", None, "C-Eval, every subject but medicine", "evalscope/ceval", "general"
    ),
}


# --- a team's own exam file -------------------------------------------------------


def read_exam_file(path: Path) -> list[dict]:
    """The questions of a CSV or JSONL exam, checked: question, A, B, ... (or `options`),
    answer, and optionally id and subject."""
    questions, seen = [], {}
    for number, row in read_exam_rows(path):
        question = exam_question(path, number, row)
        key = (question["subject"], question["id"])
        if key in seen:
            raise ExamError(
                f"{path}:{number}: id {question['id']!r} again (first on line {seen[key]}); "
                "give every question of a subject its own id"
            )
        seen[key] = number
        questions.append(question)
    return questions


def read_exam_rows(path: Path) -> list[tuple[int, object]]:
    """(line number, row) of a CSV or JSONL exam, unchecked; a file that cannot be read
    as one is an ExamError."""
    if not path.is_file():
        raise ExamError(
            f"{path}: no such exam file; pass a CSV or JSONL file or a --benchmark name"
        )
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves GBK
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ExamError(f"{path}: neither UTF-8 nor GBK/GB18030; save it as UTF-8")
    if path.suffix.lower() == ".csv":
        rows = [(n, row) for n, row in enumerate(csv.DictReader(io.StringIO(text)), 2)]
    elif path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ExamError(f"{path}:{number}: not a JSON line ({error})") from None
    else:
        raise ExamError(f"{path}: an exam file is .csv or .jsonl")
    if not rows:
        raise ExamError(f"{path}: no questions in the file")
    return rows


def exam_question(path: Path, number: int, row: object) -> dict:
    """One row checked: id, subject, question, options and the answer's letter."""
    where = f"{path}:{number}"
    if not isinstance(row, dict):
        raise ExamError(f"{where}: not an object with question, options and answer")
    question = str(row.get("question") or "").strip()
    if not question:
        raise ExamError(f"{where}: no `question`")
    options = row.get("options")
    if isinstance(options, str):
        with contextlib.suppress(json.JSONDecodeError):
            options = json.loads(options)
    if isinstance(options, dict):
        options = [options[letter] for letter in LETTERS if letter in options]
    if not isinstance(options, list) or not options:
        options = [row[letter] for letter in LETTERS if str(row.get(letter) or "").strip()]
    if not 2 <= len(options) <= len(LETTERS):
        raise ExamError(
            f"{where}: {len(options)} options; give 2 to 10 in columns A, B, C, ... "
            "(or an `options` list)"
        )
    answer = str(row.get("answer") or "").strip().upper()
    letters = LETTERS[: len(options)]
    if len(answer) != 1 or answer not in letters:
        raise ExamError(f"{where}: answer {row.get('answer')!r} is not one of {', '.join(letters)}")
    subject = str(row.get("subject") or "").strip() or path.stem
    return {
        "id": str(row.get("id") or number).strip(),
        "subject": re.sub(r"[\\/:*?\"<>|]+", "_", subject),  # EvalScope names a file after it
        "question": question,
        "options": [str(option) for option in options],
        "answer": answer,
    }


def write_general_mcq(questions: list[dict], folder: Path) -> list[str]:
    """EvalScope's general_mcq layout: one SUBJECT_val.jsonl per subject; the subjects."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    by_subject: dict[str, list] = defaultdict(list)
    for q in questions:
        by_subject[q["subject"]].append(q)
    for subject, items in by_subject.items():
        with (folder / f"{subject}_val.jsonl").open("w", encoding="utf-8") as out:
            for q in items:
                record = {"id": q["id"], "question": q["question"], "answer": q["answer"]}
                record |= dict(zip(LETTERS, q["options"], strict=False))
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return list(by_subject)


# --- running ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExamRun:
    benchmark: str  # a BENCHMARKS name or a file
    endpoint: str
    model: str
    api_key: str | None
    out: Path
    data_dir: Path | None = None  # a benchmark's ModelScope snapshot, fetched elsewhere
    limit: int | None = None
    concurrency: int = 8
    max_tokens: int = 512


def check_reachable_data(benchmark: Benchmark) -> None:
    """Offline, one message naming the ModelScope dataset to fetch (not a minute of retries)."""
    from converters.download import DownloadError, check_reachable, resolve_endpoint

    try:
        check_reachable(resolve_endpoint(None))
    except DownloadError as error:
        raise ExamError(
            f"{benchmark.title} comes from the ModelScope dataset {benchmark.dataset_id} "
            f"(https://modelscope.cn/datasets/{benchmark.dataset_id}), which cannot be "
            f"fetched from here: {error}. On a connected machine run `modelscope download "
            f"--dataset {benchmark.dataset_id} --local_dir DIR`, copy DIR here and pass "
            "--data-dir DIR"
        ) from None


@dataclass(frozen=True)
class ExamTask:
    run: ExamRun
    config: dict  # EvalScope's TaskConfig, as a dict
    benchmark: str  # EvalScope's name for it
    total: int | None  # questions, when known before EvalScope loads them


def prepare_exam(run: ExamRun) -> ExamTask:
    """Check the benchmark and its data, and write EvalScope's configuration."""
    total = None
    if run.benchmark in BENCHMARKS:
        bench = BENCHMARKS[run.benchmark]
        name, args = bench.evalscope, {}
        subsets = bench.subsets
        if bench.purpose == "general" and bench.evalscope == "ceval":
            from evalscope.benchmarks.ceval.ceval_adapter import SUBJECT_MAPPING

            subsets = tuple(s for s in SUBJECT_MAPPING if s not in MEDICAL_CEVAL)
        if subsets:
            args["subset_list"] = list(subsets)
        if run.data_dir:
            if not Path(run.data_dir).is_dir():
                raise ExamError(f"--data-dir {run.data_dir}: no such folder")
            args["local_path"] = str(Path(run.data_dir).resolve())
        else:
            check_reachable_data(bench)
    else:
        questions = read_exam_file(Path(run.benchmark))
        folder = (run.out / "exam_data").resolve()
        subsets = write_general_mcq(questions, folder)
        name, args = "general_mcq", {"local_path": str(folder), "subset_list": subsets}
        per_subject = defaultdict(int)
        for q in questions:
            per_subject[q["subject"]] += 1
        total = sum(min(n, run.limit or n) for n in per_subject.values())
    config = {
        "model": run.model,
        "api_url": run.endpoint.rstrip("/").removesuffix("/v1") + "/v1",
        "api_key": run.api_key or "EMPTY",
        "eval_type": "openai_api",
        "datasets": [name],
        "dataset_args": {name: args},
        "work_dir": str((run.out / "evalscope").resolve()),
        "no_timestamp": True,
        "eval_batch_size": run.concurrency,
        "limit": run.limit,
        "generation_config": {"temperature": 0.0, "max_tokens": run.max_tokens},
        "seed": 42,
    }
    return ExamTask(run, config, name, total)


# EvalScope runs in a child process: it reconfigures the root logger when imported
# and prints its own tables; its output goes to OUT/evalscope.log.
RUN_EVALSCOPE = "import sys; from evalscope import run_task; run_task(sys.argv[1])"


def run_exam(task: ExamTask, on_progress: Callable[[int], None] | None = None) -> dict:
    """Run the exam through EvalScope; the report, also written to OUT/exam.json."""
    run, config, name, total = task.run, task.config, task.benchmark, task.total
    run.out.mkdir(parents=True, exist_ok=True)
    work = Path(config["work_dir"])
    shutil.rmtree(work, ignore_errors=True)  # no answers of an earlier run are reused
    config_path, log = run.out / "evalscope_task.json", run.out / "evalscope.log"
    write_json(config_path, config)
    predictions = work / "predictions" / run.model
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_EVALSCOPE, str(config_path)],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            done = 0
            while process.poll() is None:
                time.sleep(0.5)
                now = sum(_lines(path) for path in predictions.glob("*.jsonl"))
                if on_progress and now > done:
                    on_progress(now - done)
                done = max(done, now)
        except BaseException:
            process.kill()
            process.wait()
            raise
    if process.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])[-500:]
        raise ExamError(f"EvalScope stopped (exit {process.returncode}): {tail} (log: {log})")
    questions = read_reviews(work / "reviews" / run.model, name)
    if not questions or (total is not None and len(questions) != total):
        raise ExamError(
            f"EvalScope scored {len(questions)} of {total or 'the'} questions (log: {log})"
        )
    report = exam_report(questions, run)
    write_json(run.out / EXAM_FILE, report)
    return report


def exam_name(benchmark: str) -> str:
    """A named benchmark, or an exam file's stem: the folder its runs are kept under."""
    return benchmark if benchmark in BENCHMARKS else Path(benchmark).stem


def check_benchmark(benchmark: str) -> None:
    """A benchmark's name, or a readable exam file: one message before the server is asked."""
    if benchmark in BENCHMARKS:
        return
    if not Path(benchmark).suffix:
        raise ExamError(
            f"--benchmark {benchmark!r} is neither a benchmark ({', '.join(BENCHMARKS)}) "
            "nor a file (.csv or .jsonl)"
        )
    read_exam_file(Path(benchmark))


def sit_exam(
    benchmark: str,
    endpoint,
    out: Path | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    concurrency: int = 8,
    max_tokens: int = 512,
    progress: Progress = no_progress,
    rag: tuple[str, Callable] | None = None,
) -> tuple[dict, Path]:
    """`eval exam`: check the benchmark, then the server (`endpoint`, a deploy.client
    Endpoint), run it; the report and the folder holding exam.json
    [default: saves/exam/BENCHMARK/MODEL]. With `rag` (the index's name and its
    augmenter) EvalScope asks through a local relay that puts the retrieved passages
    before each question; the passages given are kept in OUT/passages.jsonl."""
    check_benchmark(benchmark)
    model = endpoint.check()
    out = out or Path("saves/exam") / exam_name(benchmark) / model.replace("/", "_")
    run = ExamRun(
        benchmark=benchmark, endpoint=endpoint.url, model=model, api_key=endpoint.api_key,
        out=out, data_dir=data_dir, limit=limit, concurrency=concurrency, max_tokens=max_tokens,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        if rag:
            from medfactory.rag.relay import Relay

            relay = stack.enter_context(Relay(endpoint.url, rag[1]))
            run = dataclasses.replace(run, endpoint=relay.url)
        task = prepare_exam(run)
        title = f"asking {model} ({exam_name(benchmark)}{' + ' + rag[0] if rag else ''}, EvalScope)"
        with progress(title, task.total) as advance:
            report = run_exam(task, on_progress=advance)
    if rag:
        write_jsonl(out / "passages.jsonl", relay.given)
        report["endpoint"] = endpoint.url  # the server, not the relay in front of it
        report["rag"] = {"index": rag[0], "questions_with_passages": len(relay.given)}
        write_json(out / EXAM_FILE, report)
    return report, out


def _lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def read_reviews(folder: Path, benchmark: str) -> list[dict]:
    """Per question: subject, id, the answer key, the letter read from the reply, right or not."""
    questions = []
    for path in sorted(folder.glob(f"{benchmark}_*.jsonl")):
        subject = path.stem.removeprefix(f"{benchmark}_")
        for _number, line in read_jsonl(path):
            review = json.loads(line)
            score = review["sample_score"]["score"]
            metadata = review["sample_score"].get("sample_metadata") or {}
            target = review.get("target")
            questions.append({
                "subject": subject,
                "id": str(metadata.get("id", review["sample_score"]["sample_id"])),
                "answer": "".join(target) if isinstance(target, list) else str(target),
                "extracted": score.get("extracted_prediction"),
                "correct": bool(next(iter(score["value"].values()), 0) >= 1),
            })  # fmt: skip
    return sorted(questions, key=lambda q: (q["subject"], _natural(q["id"])))


def _natural(text: str) -> tuple:
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _accuracy(questions: list[dict]) -> dict:
    right = sum(q["correct"] for q in questions)
    accuracy, low, high = wilson(right, len(questions))
    return {
        "questions": len(questions),
        "correct": right,
        "accuracy": accuracy,
        "ci95": [low, high],
    }


def exam_report(questions: list[dict], run: ExamRun) -> dict:
    by_subject: dict[str, list] = defaultdict(list)
    for q in questions:
        by_subject[q["subject"]].append(q)
    return {
        "kind": "exam",
        "benchmark": run.benchmark,
        "title": BENCHMARKS[run.benchmark].title if run.benchmark in BENCHMARKS else run.benchmark,
        "model": run.model,
        "endpoint": run.endpoint,
        "overall": _accuracy(questions),
        "subjects": {s: _accuracy(qs) for s, qs in sorted(by_subject.items())},
        "per_question": questions,
    }


# --- comparing two runs ------------------------------------------------------------


def compare_exams(reports: list[dict], names: list[str]) -> dict:
    """Each run after the first against the first, question by question: accuracy
    difference per subject and overall with a 95 % paired-bootstrap interval."""
    keyed = [{(q["subject"], q["id"]): q["correct"] for q in r["per_question"]} for r in reports]
    base = keyed[0]
    for name, other in zip(names[1:], keyed[1:], strict=True):
        if set(other) != set(base):
            raise ExamError(
                f"{name} and {names[0]} answered different questions "
                f"({len(other)} vs {len(base)}); run both on the same benchmark and --limit"
            )
    keys = sorted(base, key=lambda k: (k[0], _natural(k[1])))
    subjects = sorted({subject for subject, _ in keys})
    result = {"kind": "exam", "names": names, "questions": len(keys), "deltas": {}}
    for name, other in zip(names[1:], keyed[1:], strict=True):
        rows = {}
        for subject in [*subjects, "overall"]:
            chosen = [k for k in keys if subject in ("overall", k[0])]
            x = np.array([base[k] for k in chosen], dtype=float)
            y = np.array([other[k] for k in chosen], dtype=float)
            low, high = paired_bootstrap(x, y)
            rows[subject] = {
                "questions": len(chosen), "baseline": float(x.mean()), "candidate": float(y.mean()),
                "delta": float(y.mean() - x.mean()), "ci95": [low, high],
                "significant": low > 0 or high < 0,
            }  # fmt: skip
        result["deltas"][name] = rows
    result["resamples"] = RESAMPLES
    return result


def write_exam_comparison(files: list[Path], names: list[str] | None, out: Path) -> dict:
    """`eval compare` on exam.json files: the comparison, also in OUT/exam_comparison.json.
    Runs are named by `names`, else by their models, else by their folders."""
    reports = []
    for file in files:
        report = json.loads(Path(file).read_text(encoding="utf-8"))
        if report.get("kind") != "exam":
            raise ExamError(f"{file}: not an exam report written by `eval exam`")
        reports.append(report)
    names = names or [str(r["model"]) for r in reports]
    if len(set(names)) != len(names):
        names = [str(Path(f).parent) for f in files]
    result = compare_exams(reports, names)
    write_json(out / "exam_comparison.json", result)
    return result
