"""`make rl` reads the rewards of the run it made, not those an earlier run left in the
same trainer_log.jsonl (LLaMA-Factory's PPO appends to it)."""

import json

from medfactory.dev.rl import logged_rewards


def test_only_the_last_runs_rewards_are_read(tmp_path):
    rows = [{"current_steps": s, "reward": 0.0} for s in (5, 10)]
    rows += [{"current_steps": 5, "loss": 1.0}]  # a row without a reward is skipped
    rows += [{"current_steps": s, "reward": r} for s, r in ((5, -0.6), (10, 0.1), (15, -0.3))]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert logged_rewards(tmp_path) == [(5, -0.6), (10, 0.1), (15, -0.3)]
    (tmp_path / "trainer_log.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert logged_rewards(tmp_path) == [(5, 0.0)]
