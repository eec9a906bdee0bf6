"""A PPO recipe whose reward server does not answer is refused before training starts,
in one line, without a GPU and without loading a model."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from deploy.process import free_port
from medfactory import paths
from medfactory.cli import cli
from medfactory.recipes.run import CommandFailed, check_full_reward_model, check_reward_server
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


RM_RECIPE = paths.PROJECT_ROOT / "llamafactory_configs" / "tiny" / "rm_lora.yaml"


def test_a_full_reward_model_of_a_model_with_tied_embeddings_is_refused_before_it_starts(
    tmp_path,
):
    untied, unsaid = tmp_path / "untied", tmp_path / "gpt2"
    for folder, config in ((untied, '"model_type": "qwen2", "tie_word_embeddings": false'),
                           (unsaid, '"model_type": "gpt2"')):  # fmt: skip
        folder.mkdir()
        (folder / "config.json").write_text("{" + config + "}")
    result = CliRunner().invoke(
        cli, ["train", str(RM_RECIPE), "--no-tracking", "finetuning_type=full"]
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {RM_RECIPE}: a full reward model of .cache/tiny-model, whose embeddings are "
        "tied (tie_word_embeddings), cannot be saved by LLaMA-Factory: the run would fail "
        "after its last step; train it with `finetuning_type=lora` (`medfactory recipe "
        "render ... --method lora --stage rm`); nothing was started\n"
    )
    # GPT-2's config leaves the key out: its class ties by default
    with pytest.raises(CommandFailed, match="a full reward model of .*gpt2, whose embeddings"):
        check_full_reward_model(
            RM_RECIPE, {"stage": "rm", "finetuning_type": "full", "model_name_or_path": str(unsaid)}
        )
    # a preset's model id is known without its files; LoRA, and untied models, pass
    with pytest.raises(CommandFailed, match="a freeze reward model of Qwen/Qwen2.5-1.5B"):
        check_full_reward_model(
            RM_RECIPE,
            {
                "stage": "rm",
                "finetuning_type": "freeze",
                "model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct",
            },
        )
    for arguments in (
        {"stage": "rm", "finetuning_type": "lora", "model_name_or_path": ".cache/tiny-model"},
        {"stage": "rm", "finetuning_type": "full", "model_name_or_path": str(untied)},
        {
            "stage": "rm",
            "finetuning_type": "full",
            "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct",
        },
        {"stage": "sft", "finetuning_type": "full", "model_name_or_path": ".cache/tiny-model"},
    ):
        check_full_reward_model(RM_RECIPE, arguments)
