"""A PPO recipe whose reward server does not answer is refused before training starts,
in one line, without a GPU and without loading a model."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from deploy.process import free_port
from medfactory import paths
from medfactory.cli import cli
from medfactory.recipes.run import CommandFailed, check_reward_server
from medfactory.rewards.server import PATH, Scorer, create_app
from medfactory.rewards.verifiers import build_verifier
from tests.serving_helpers import Served

RECIPE = paths.PROJECT_ROOT / "llamafactory_configs" / "tiny" / "ppo_lora.yaml"


def test_train_refuses_a_reward_url_that_does_not_answer():
    url = f"http://127.0.0.1:{free_port()}/score"  # nothing listens there
    result = CliRunner().invoke(cli, ["train", str(RECIPE), "--no-tracking", f"reward_model={url}"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {RECIPE}: reward_model {url} does not answer a reward request (nothing "
        "answers there); start the reward server (`medfactory reward serve --port PORT "
        "--verifier ...`) or fix reward_model; nothing was started\n"
    )


def test_a_reward_server_passes_and_a_wrong_path_is_named():
    arguments = {"stage": "ppo", "reward_model_type": "api"}
    with Served(create_app(Scorer(build_verifier("safety")))) as server:
        base = f"http://127.0.0.1:{server.port}"
        check_reward_server(RECIPE, arguments | {"reward_model": base + PATH})
        with pytest.raises(CommandFailed, match=r"does not answer .*\(it answered HTTP 404\)"):
            check_reward_server(RECIPE, arguments | {"reward_model": base + "/rewards"})
    # a model folder, or another stage, is not a server to ask
    check_reward_server(RECIPE, {"stage": "ppo", "reward_model_type": "lora", "reward_model": "x"})
    check_reward_server(RECIPE, {"stage": "sft", "reward_model": "http://127.0.0.1:9/score"})
