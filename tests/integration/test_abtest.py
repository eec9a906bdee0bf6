"""`make abtest`'s run: two versions behind the gateway, scripted clinicians, the report.

The two versions are the session's shared vLLM server's (`tiny` and its LoRA adapter
`lora`), through `dev abtest --endpoint`; `make abtest` starts a server of its own the
same way test_serve starts one.
"""

import json
import shutil

from click.testing import CliRunner

from medfactory.ab.recorder import exchanges_since
from medfactory.cli import cli
from medfactory.dev.abtest import DATASET, EXPERIMENT, run_abtest
from medfactory.store.db import open_store


def test_the_report_says_what_the_scripted_clinicians_did(tiny_server, tiny_model, data_dir,
                                                          tmp_path):  # fmt: skip
    data = shutil.copytree(data_dir, tmp_path / "data")  # the export registers into it
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = open_store(url)
    lines = []
    spec = tiny_server.spec
    report, run, exported = run_abtest(
        store, tmp_path / "saves" / "ab", tiny_model, data, endpoint=spec.base_url,
        api_key=spec.api_key, base="tiny", adapter="lora", users=5, turns=2, say=lines.append,
    )  # fmt: skip

    assert EXPERIMENT == "ab"  # what `ab report` and `ab export` read without options
    assert any(line.startswith("verify tiny: 5/5 prompts identical") for line in lines)
    assert any(line.startswith("verify lora: 5/5 prompts identical") for line in lines)
    assert len(run.users) == 5 and set(run.users.values()) <= {"base", "lora"}
    for arm, counts in report["arms"].items():
        users = sum(1 for a in run.users.values() if a == arm)
        assert counts["users"] == counts["conversations"] == users
        assert counts["answers"] == run.answers.get(arm, 0) == 2 * users
        assert counts["thumbs_up"] == run.thumbs_up.get(arm, 0)
        assert counts["thumbs_down"] == run.thumbs_down.get(arm, 0)
        assert counts["corrections"] == run.corrections.get(arm, 0)
        assert counts["errors"]["count"] == 0
        assert counts["thumbs_up_rate"]["per_clinician"]["users"] == users
    saved = tmp_path / "saves" / "ab" / EXPERIMENT
    assert json.loads((saved / "report.json").read_text())["arms"] == report["arms"]
    rows = exchanges_since(store, EXPERIMENT)
    second_turns = [r for r in rows if len(r["messages"]) == 3]
    assert len(second_turns) == 5  # each clinician's second turn carried the first
    assert {r["served_model"] for r in rows} <= {"tiny", "lora"}

    # The feedback became training data, registered where the tiny recipes look for it.
    corrections = sum(run.corrections.values())
    written = {kind: counts["train"] for kind, counts in exported["written"].items()}
    from_corrections = {"sft": corrections, "dpo": corrections} if corrections else {}
    assert written == {"kto": 10} | from_corrections
    registry = json.loads((data / "dataset_info.json").read_text())
    assert {f"{DATASET}_{kind}_train" for kind in written} <= set(registry)

    # `ab report` reads the same record with no --experiment, as the README types it.
    again = CliRunner().invoke(cli, ["ab", "report", "--json", "--db", url, "--out",
                                     str(tmp_path / "again")])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["arms"] == report["arms"]

    # A second scripted run replaces the first's record instead of adding to it.
    report, run, _ = run_abtest(
        store, tmp_path / "saves" / "ab", tiny_model, data, endpoint=spec.base_url,
        api_key=spec.api_key, users=2, turns=1, say=lines.append,
    )  # fmt: skip
    assert sum(arm["requests"] for arm in report["arms"].values()) == 2
    assert len(exchanges_since(store, EXPERIMENT)) == 2
