"""`make abtest`'s run: two versions on one vLLM, the gateway, scripted clinicians, the report."""

import json
import shutil

from medfactory.ab.recorder import exchanges_since
from medfactory.dev.abtest import EXPERIMENT, run_abtest
from medfactory.dev.tiny_model import build_tiny_adapter
from medfactory.store.db import open_store


def test_the_report_says_what_the_scripted_clinicians_did(tiny_model, data_dir, tmp_path):
    adapter = build_tiny_adapter(tiny_model, tmp_path / "adapter")
    data = shutil.copytree(data_dir, tmp_path / "data")  # the export registers into it
    lines = []
    report, run, exported = run_abtest(tmp_path, tiny_model, adapter, data, users=5, turns=2,
                             say=lines.append)  # fmt: skip

    assert any(line.startswith("verify tiny-lora: 5/5 prompts identical") for line in lines)
    assert len(run.users) == 5 and set(run.users.values()) <= {"base", "lora"}
    for arm, counts in report["arms"].items():
        users = sum(1 for a in run.users.values() if a == arm)
        assert counts["users"] == counts["conversations"] == users
        assert counts["answers"] == run.answers.get(arm, 0) == 2 * users
        assert counts["thumbs_up"] == run.thumbs_up.get(arm, 0)
        assert counts["thumbs_down"] == run.thumbs_down.get(arm, 0)
        assert counts["corrections"] == run.corrections.get(arm, 0)
        assert counts["errors"]["count"] == 0
    saved = tmp_path / "saves" / "ab" / EXPERIMENT
    assert json.loads((saved / "report.json").read_text())["arms"] == report["arms"]
    rows = exchanges_since(open_store(f"sqlite:///{saved}.db"), EXPERIMENT)
    second_turns = [r for r in rows if len(r["messages"]) == 3]
    assert len(second_turns) == 5  # each clinician's second turn carried the first

    # The feedback became training data, registered where the tiny recipes look for it.
    corrections = sum(run.corrections.values())
    written = {kind: counts["train"] for kind, counts in exported["written"].items()}
    from_corrections = {"sft": corrections, "dpo": corrections} if corrections else {}
    assert written == {"kto": 10} | from_corrections
    registry = json.loads((data / "dataset_info.json").read_text())
    assert {f"{EXPERIMENT}_{kind}_train" for kind in written} <= set(registry)
