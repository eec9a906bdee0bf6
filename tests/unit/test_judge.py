"""`eval judge`: HealthBench rubric scores from scripted judgments, retries, the cache,
and the judge's calibration against a clinician review study."""

import json
import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from openai_standin import StandIn, last_user_text
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select
from test_review import people, predictions, rate_as_preferring

from medfactory.cli import cli
from medfactory.review.rating import arbitrate
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import Assignment, Item, Rater, open_store

# prompt -> its rubric: (criterion, points, tags, met by the answer?)
RUBRICS = {
    "突然胸痛出冷汗怎么办？": [
        ("建议立即拨打120或去急诊", 5, ["axis:accuracy", "axis:context_awareness"], True),
        ("说明可能是心肌梗死", 3, ["axis:completeness"], False),
        ("建议先在家观察", -4, ["axis:accuracy"], True),
        ("语言通俗易懂", 2, ["axis:communication_quality"], True),
    ],
    "感冒了怎么办？": [
        ("建议多休息、多饮水", 4, ["axis:accuracy"], True),
        ("承诺保证治愈", -6, ["axis:accuracy"], True),
        ("用中文回答 GARBLE", 2, ["axis:instruction_following"], True),  # never parses
    ],
    "What does HbA1c measure?": [
        ("Says it reflects average glucose over 2-3 months", 3, ["axis:accuracy"], True),
        ("Mentions the diagnostic threshold of 6.5% ONCE-GARBLED", 3, ["axis:completeness"], True),
        ("Asks about the patient's context", 2, ["axis:context_awareness"], False),
    ],
}  # fmt: skip
ANSWERS = [
    "多喝热水，观察一下，必要时拨打120。",
    "多休息多喝水，保证治愈。",
    "It reflects the last 2-3 months.",
]


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    preds = tmp_path / "run" / "generated_predictions.jsonl"
    preds.parent.mkdir(parents=True)
    rows = [
        {"prompt": f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n", "predict": a,
         "label": "ref"}
        for q, a in zip(RUBRICS, ANSWERS, strict=True)
    ]  # fmt: skip
    preds.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    rubric = tmp_path / "rubrics.jsonl"
    lines = [
        {"prompt": [{"role": "user", "content": q}],
         "rubrics": [{"criterion": c, "points": p, "tags": t} for c, p, t, _ in criteria]}
        for q, criteria in RUBRICS.items()
    ]  # fmt: skip
    rubric.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return preds, rubric


class ScriptedJudge:
    """Answers HealthBench's grader prompt from RUBRICS; GARBLE criteria never parse, a
    ONCE-GARBLED one parses on the second ask."""

    def __init__(self):
        self.asked, self.lock = Counter(), threading.Lock()

    def __call__(self, body: dict) -> str:
        prompt = last_user_text(body)
        rubric_item = prompt.split("# Rubric item")[1].split("# Instructions")[0]
        for criteria in RUBRICS.values():
            for criterion, _, _, met in criteria:
                if criterion in rubric_item:
                    with self.lock:
                        self.asked[criterion] += 1
                        times = self.asked[criterion]
                    if "ONCE-GARBLED" in criterion and times == 1 or criterion.endswith("GARBLE"):
                        return "I think it is fine overall. 很好。"
                    verdict = "true" if met else "false"
                    return f'```json\n{{"explanation": "scripted", "criteria_met": {verdict}}}\n```'
        raise AssertionError(f"unknown rubric item: {rubric_item}")


def by_hand(rubric: list) -> tuple[float, dict]:
    """HealthBench's item score and axis scores, computed independently."""
    judged = [(c, p, t, m) for c, p, t, m in rubric if not c.endswith("GARBLE")]
    positive = sum(p for _, p, _, _ in judged if p > 0)
    score = sum(p for _, p, _, m in judged if m) / positive
    axes = {}
    for axis in {tag for _, _, tags, _ in judged for tag in tags}:
        items = [(p, m) for _, p, tags, m in judged if axis in tags]
        possible = sum(p for p, _ in items if p > 0)
        if possible:
            axes[axis.removeprefix("axis:")] = sum(p for p, m in items if m) / possible
    return score, axes


def judge_cli(*args: str):
    return CliRunner().invoke(cli, ["eval", "judge", *args])


def test_scores_per_item_axis_and_overall_are_healthbenchs(tmp_path):
    preds, rubric = write_inputs(tmp_path)
    judge = ScriptedJudge()
    with StandIn(judge, model="big-judge") as server:
        args = [str(preds), "--rubric", str(rubric), "--judge-endpoint", server.url,
                "--out", str(tmp_path / "out")]  # fmt: skip
        result = judge_cli(*args)
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / "out" / "judge.json").read_text())
        [run] = report["runs"]
        expected = [by_hand(rubric) for rubric in RUBRICS.values()]
        for item, (score, axes) in zip(run["per_item"], expected, strict=True):
            assert item["score"] == pytest.approx(score)
            assert item["axes"] == pytest.approx(axes)
        scores = [score for score, _ in expected]
        assert run["overall"]["score"] == pytest.approx(min(max(np.mean(scores), 0), 1))
        for axis in {a for _, axes in expected for a in axes}:
            values = [axes[axis] for _, axes in expected if axis in axes]
            assert run["axes"][axis]["score"] == pytest.approx(min(max(np.mean(values), 0), 1))
            assert run["axes"][axis]["items"] == len(values)
        low, high = run["overall"]["ci95"]
        assert 0 <= low <= run["overall"]["score"] <= high <= 1
        # The garbled criterion: asked twice, then invalid and left out of its item's score.
        assert run["invalid_judgments"] == 1 and run["judgments"] == 10
        assert judge.asked["用中文回答 GARBLE"] == 2
        assert judge.asked["Mentions the diagnostic threshold of 6.5% ONCE-GARBLED"] == 2
        garbled = run["per_item"][1]["criteria"][2]
        assert garbled["met"] is None and "invalid judgments" in result.output
        assert report["requests"] == 12  # 10 criteria, two of them asked again

        # A rerun asks only what is not cached: the invalid judgment, twice. A line cut
        # short by an interrupted run is no obstacle.
        with (tmp_path / "out" / "judgments.jsonl").open("a") as cache:
            cache.write('{"key": "3f2a')
        again = judge_cli(*args)
        assert again.exit_code == 0, again.output
        rerun = json.loads((tmp_path / "out" / "judge.json").read_text())
        assert rerun["requests"] == 2
        assert rerun["runs"] == report["runs"]


def test_rubrics_that_do_not_line_up_are_one_message(tmp_path):
    preds, rubric = write_inputs(tmp_path)
    lines = rubric.read_text().splitlines()
    with StandIn(ScriptedJudge()) as server:
        rubric.write_text("\n".join(lines[:2]) + "\n")
        result = judge_cli(str(preds), "--rubric", str(rubric), "--judge-endpoint", server.url)
        assert result.exit_code == 1 and "has 2 rubrics" in result.output
        assert "prompt_id" in result.output
        rubric.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
        result = judge_cli(str(preds), "--rubric", str(rubric), "--judge-endpoint", server.url)
        assert result.exit_code == 1 and f"{rubric}:1: its prompt" in result.output
        assert server.requests == []


def test_prompt_ids_match_rubrics_in_any_order(tmp_path):
    preds, rubric = write_inputs(tmp_path)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    preds.write_text("".join(
        json.dumps({**row, "prompt_id": f"p{i}"}, ensure_ascii=False) + "\n"
        for i, row in enumerate(rows)
    ))  # fmt: skip
    entries = [json.loads(line) for line in rubric.read_text().splitlines()]
    rubric.write_text("".join(
        json.dumps({**entry, "prompt_id": f"p{i}"}, ensure_ascii=False) + "\n"
        for i, entry in reversed(list(enumerate(entries)))
    ))  # fmt: skip
    with StandIn(ScriptedJudge()) as server:
        result = judge_cli(
            str(preds), "--rubric", str(rubric), "--judge-endpoint", server.url,
            "--out", str(tmp_path / "out"),
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    [run] = json.loads((tmp_path / "out" / "judge.json").read_text())["runs"]
    assert run["per_item"][0]["score"] == pytest.approx(
        by_hand(RUBRICS["突然胸痛出冷汗怎么办？"])[0]
    )


# --- calibration ----------------------------------------------------------------

CLINICIANS = ["lora", "lora", "base", "lora", "tie", "base", "lora", "lora", "base", "lora", "tie"]
JUDGE = ["lora", "base", "base", "lora", "tie", "lora", "lora", "tie", "base", "lora", "lora"]
SIDE = {"base": "left", "lora": "right", "tie": "tie"}


def test_calibration_kappa_is_scikit_learns_on_the_same_labels(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    create_study(store, StudySpec("r1", files, ["d1", "d2", "d3"], arbiter="boss", seed=7))
    raters = people(store)
    with store.session() as session:
        assigned = {}
        for item, rater in session.execute(
            select(Item.position, Rater.name).join(Assignment, Assignment.item_id == Item.id)
            .join(Rater, Rater.id == Assignment.rater_id)
        ):  # fmt: skip
            assigned.setdefault(item, []).append(rater)
    for position, wanted in enumerate(CLINICIANS, 1):  # items 1-11 settled
        first, second = sorted(assigned[position])
        if wanted == "tie":  # the raters disagree and the arbiter calls it a tie
            rate_as_preferring(store, raters[first], "base", position)
            rate_as_preferring(store, raters[second], "lora", position)
            arbitrate(store, raters["boss"].id, position, "tie", "", f"a{position}")
        else:
            rate_as_preferring(store, raters[first], wanted, position)
            rate_as_preferring(store, raters[second], wanted, position)
    rate_as_preferring(store, raters[sorted(assigned[12])[0]], "lora", 12)  # unsettled
    store.close()

    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(
        "rubrics:\n  - {criterion: 'Correct advice', points: 3, tags: ['axis:accuracy']}\n"
        "  - {criterion: 'Clear', points: 1, tags: ['axis:communication_quality']}\n"
    )

    def reply(body: dict) -> str:
        conversation = last_user_text(body).split("# Rubric item")[0]
        version, number = re.search(r"assistant: (base|lora) says (\d+)", conversation).groups()
        preferred = JUDGE[int(number)] if int(number) < len(JUDGE) else "tie"
        met = preferred in (version, "tie")
        return json.dumps({"explanation": "scripted", "criteria_met": met})

    with StandIn(reply, model="judge") as server:
        result = judge_cli(
            "--rubric", str(rubric), "--judge-endpoint", server.url, "--calibrate", "r1",
            "--db", f"sqlite:///{tmp_path / 'review.db'}", "--out", str(tmp_path / "out"),
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    calibration = json.loads((tmp_path / "out" / "judge.json").read_text())["calibration"]
    clinicians = [SIDE[v] for v in CLINICIANS]
    judge = [SIDE[v] for v in JUDGE]
    assert [p["clinicians"] for p in calibration["pairs"]] == clinicians
    assert [p["judge"] for p in calibration["pairs"]] == judge
    expected = cohen_kappa_score(clinicians, judge, labels=["left", "right", "tie"])
    assert calibration["kappa"] == pytest.approx(expected)
    assert calibration["compared"] == 11 and calibration["items"] == 11
    assert calibration["agreement"] == pytest.approx(np.mean(np.array(clinicians) == judge))
    assert f"{expected:.3f}" in result.output


def test_calibrating_on_a_study_without_verdicts_says_so(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    create_study(store, StudySpec("r1", files, ["d1", "d2"], seed=7))
    store.close()
    with StandIn(ScriptedJudge()) as server:
        result = judge_cli(
            "--judge-endpoint", server.url, "--calibrate", "r1",
            "--db", f"sqlite:///{tmp_path / 'review.db'}", "--out", str(tmp_path / "out"),
        )  # fmt: skip
    assert result.exit_code == 1 and "no settled verdicts yet" in result.output


def test_two_runs_on_the_same_prompts_compare_answer_by_answer(tmp_path):
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(
        "rubrics:\n  - {criterion: 'Correct', points: 3, tags: ['axis:accuracy']}\n"
        "  - {criterion: 'Refers to a doctor', points: 1, tags: ['axis:context_awareness']}\n"
    )
    files = []
    for name, good in (("base", {0, 3}), ("tuned", {0, 1, 2, 3, 4})):
        path = tmp_path / name / "generated_predictions.jsonl"
        path.parent.mkdir()
        rows = [
            {"prompt": f"<|im_start|>user\nq{i}<|im_end|>\n<|im_start|>assistant\n",
             "predict": f"{name} {'good' if i in good else 'poor'} {i}", "label": "ref"}
            for i in range(6)
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(str(path))

    def reply(body: dict) -> str:
        prompt = last_user_text(body)
        answer = re.search(r"assistant: (\w+ \w+ \d)", prompt).group(1)
        refers = "Refers to a doctor" in prompt.split("# Rubric item")[1]
        met = "good" in answer and not (refers and answer.endswith("0"))
        return json.dumps({"explanation": "", "criteria_met": met})

    with StandIn(reply) as server:
        result = judge_cli(*files, "--rubric", str(rubric), "--judge-endpoint", server.url,
                           "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "judge.json").read_text())
    base, tuned = ([item["score"] for item in run["per_item"]] for run in report["runs"])
    assert base == [0.75, 0, 0, 1, 0, 0] and tuned == [0.75, 1, 1, 1, 1, 0]
    change = report["comparison"][files[1]]
    assert change["baseline"] == files[0] and change["answers"] == 6
    assert change["delta"] == pytest.approx(np.mean(np.subtract(tuned, base)))
    low, high = change["ci95"]
    assert low <= change["delta"] <= high and change["significant"] == (low > 0)
    assert f"{change['delta']:+.3f}" in result.output
