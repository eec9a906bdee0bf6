import json
from pathlib import Path

import pytest
import yaml

from medfactory.recipes.check import check_recipes, llamafactory_problems, render_arguments
from medfactory.recipes.presets import RecipeError, load_presets
from medfactory.recipes.render import parse_overrides, render
from medfactory.recipes.run import (
    Distributed,
    add_legacy_rope_keys,
    keep_tokenized,
    llamafactory_command,
    tokenized_cache,
)

REPO = Path(__file__).resolve().parents[2]
REGISTRY = json.loads((REPO / "dataset_info" / "dataset_info.json").read_text())
DATA = ["huatuo_sample", "medical_o1_sample"]


def test_presets_name_template_reasoning_and_source():
    presets = load_presets()
    assert {"tiny", "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b",
            "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "qwen3-8b",
            "llama3.1-8b-instruct"} <= set(presets)  # fmt: skip
    assert presets["deepseek-r1-distill-qwen-7b"].template == "deepseekr1"
    assert presets["qwen3-8b"].reasoning and presets["qwen3-8b"].template == "qwen3"
    assert not presets["llama3.1-8b-instruct"].reasoning
    assert presets["qwen2.5-7b-instruct"].model == "Qwen/Qwen2.5-7B-Instruct"


def test_render_uses_the_splits_and_the_preset():
    recipe = yaml.safe_load(render("deepseek-r1-distill-qwen-7b", "lora", "train", DATA))
    assert recipe["dataset"] == "huatuo_sample_train,medical_o1_sample_train"
    assert recipe["eval_dataset"] == "huatuo_sample_val,medical_o1_sample_val"
    assert recipe["template"] == "deepseekr1" and recipe["enable_thinking"] is True
    assert recipe["finetuning_type"] == "lora" and recipe["bf16"] is True
    predict = yaml.safe_load(render("deepseek-r1-distill-qwen-7b", "lora", "predict", DATA))
    assert predict["eval_dataset"] == "huatuo_sample_test,medical_o1_sample_test"
    assert predict["adapter_name_or_path"] == recipe["output_dir"]
    assert predict["do_predict"] and predict["predict_with_generate"]


def test_methods():
    qlora = yaml.safe_load(render("qwen2.5-7b-instruct", "qlora", "train", DATA))
    assert qlora["quantization_bit"] == 4 and qlora["finetuning_type"] == "lora"
    full = yaml.safe_load(render("qwen2.5-7b-instruct", "full", "train", DATA))
    assert full["finetuning_type"] == "full"
    assert (REPO / full["deepspeed"]).is_file()
    assert json.loads((REPO / full["deepspeed"]).read_text())["zero_optimization"]["stage"] == 3
    export = yaml.safe_load(render("qwen2.5-7b-instruct", "qlora", "export", []))
    assert "quantization_bit" not in export  # merging needs the unquantised base


def test_only_the_overrides_given_change_values():
    plain = render("tiny", "lora", "train", DATA).splitlines()
    changed = render("tiny", "lora", "train", DATA, {"learning_rate": 5e-5, "bf16": False})
    changed = changed.splitlines()
    different = [(a, b) for a, b in zip(plain[1:], changed[1:], strict=True) if a != b]
    assert different == [("learning_rate: 0.001", "learning_rate: 5.0e-05")]
    # bf16 was already false for the tiny preset: passing the same value is not a change.
    added = render("tiny", "lora", "train", DATA, {"seed": 7}).splitlines()
    assert added[-2:] == ["### overrides", "seed: 7"]


def test_preset_defaults_touch_only_keys_the_template_has():
    recipe = yaml.safe_load(render("tiny", "lora", "export", []))
    assert "max_new_tokens" not in recipe and "bf16" not in recipe


def test_header_command_renders_the_same_text():
    text = render("tiny", "lora", "predict", DATA, {"max_new_tokens": 8})
    preset, method, stage, names, overrides, reward = render_arguments(text.splitlines()[0])
    assert reward is None and render(preset, method, stage, names, overrides) == text
    url = "http://127.0.0.1:8300/score"
    ppo = render("tiny", "lora", "ppo", DATA, reward=url)
    *arguments, reward = render_arguments(ppo.splitlines()[0])
    assert reward == url and render(*arguments, reward=reward) == ppo


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render("qwen9", "lora", "train", DATA), "unknown model preset 'qwen9'; known: t"),
        (lambda: render("tiny", "dora", "train", DATA), "unknown method 'dora'; known: lora, q"),
        (lambda: parse_overrides(["learning_rate"]), "expected key=value"),
    ],
)  # fmt: skip
def test_mistakes_name_what_is_known(call, message):
    with pytest.raises(RecipeError, match=message):
        call()


@pytest.mark.parametrize(
    ("method", "reward", "reward_type"),
    [("lora", None, None), ("full", None, None),
     ("lora", "http://127.0.0.1:8300/score", "api"), ("lora", "saves/tiny/lora/rm", "lora"),
     ("full", "saves/tiny/full/rm", "full")],
)  # fmt: skip
def test_rm_and_ppo_recipes_parse_with_llamafactory(method, reward, reward_type):
    stage = "ppo" if reward else "rm"
    text = render("qwen2.5-7b-instruct", method, stage, DATA, reward=reward, registry=REGISTRY)
    recipe = yaml.safe_load(text)
    assert recipe["stage"] == stage and recipe["finetuning_type"] == method
    if reward:
        assert recipe["reward_model"] == reward and recipe["reward_model_type"] == reward_type
        assert {"ppo_epochs", "ppo_target", "ppo_score_norm", "max_new_tokens"} <= set(recipe)
        assert "eval_dataset" not in recipe  # LLaMA-Factory's PPO refuses evaluation
    assert llamafactory_problems(Path(f"{stage}_{method}.yaml"), recipe) == []


def test_ppo_needs_a_reward_and_only_ppo_takes_one():
    with pytest.raises(RecipeError, match="--stage ppo needs --reward"):
        render("tiny", "lora", "ppo", DATA)
    with pytest.raises(RecipeError, match="--reward is for --stage ppo, not --stage rm"):
        render("tiny", "lora", "rm", DATA, reward="http://x/score")


def test_checked_in_recipes_pass_the_check():
    assert check_recipes() == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llamafactory_configs" / "tiny" / "train_lora.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_check_names_a_misspelled_key(tmp_path):
    text = render("tiny", "lora", "train", DATA).replace("learning_rate:", "learnig_rate:")
    problems = check_recipes([write(tmp_path, text)])
    assert any("unknown key 'learnig_rate' (did you mean 'learning_rate'?)" in p for p in problems)


def test_check_names_a_missing_dataset(tmp_path):
    text = render("tiny", "lora", "train", ["nonexistent"], registry=REGISTRY)
    problems = check_recipes([write(tmp_path, text)])
    assert any(
        "dataset 'nonexistent' is not in dataset_info/dataset_info.json" in p for p in problems
    )


def test_check_shows_a_stale_recipe_with_a_diff(tmp_path):
    text = render("tiny", "lora", "train", DATA).replace("lora_rank: 8", "lora_rank: 16")
    problems = check_recipes([write(tmp_path, text)])
    (problem,) = [p for p in problems if "differs from what its command renders" in p]
    assert "-lora_rank: 16" in problem and "+lora_rank: 8" in problem
    assert "medfactory recipe render --model tiny" in problem


def test_distributed_launch_environment():
    assert Distributed().env() == {}
    assert Distributed(
        nproc=8, nnodes=2, node_rank=1, master_addr="10.0.0.2", master_port=29500
    ).env() == {
        "FORCE_TORCHRUN": "1",
        "NNODES": "2",
        "NODE_RANK": "1",
        "NPROC_PER_NODE": "8",
        "MASTER_ADDR": "10.0.0.2",
        "MASTER_PORT": "29500",
    }


def test_llamafactory_gets_an_argument_list(tmp_path):
    argv = llamafactory_command("train", tmp_path / "r.yaml", {"learning_rate": 1e-4})
    assert argv[0].endswith(".venv/bin/llamafactory-cli")
    assert argv[1:] == ["train", str(tmp_path / "r.yaml"), "learning_rate=0.0001"]


def test_tokenized_cache_follows_the_data(tmp_path):
    (tmp_path / "d.jsonl").write_text("{}\n")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.jsonl"}}))
    recipe = {"dataset": "d", "dataset_dir": str(tmp_path), "template": "qwen", "cutoff_len": 512}
    first = tokenized_cache(recipe, {}, tmp_path)
    assert tokenized_cache(recipe, {}, tmp_path) == first
    assert tokenized_cache(recipe, {"cutoff_len": 1024}, tmp_path) != first
    (tmp_path / "d.jsonl").write_text('{"changed": 1}\n')
    assert tokenized_cache(recipe, {}, tmp_path) != first


def test_runs_of_the_same_data_at_once_each_tokenize_apart_and_the_first_to_finish_is_kept(
    tmp_path,
):
    cache = tmp_path / "tokenized" / "abc"
    first, second, failed = (cache.with_name(f"abc.{pid}") for pid in (11, 12, 13))
    for folder, marker in ((first, "1"), (second, "2"), (failed, "3")):
        folder.mkdir(parents=True)
        (folder / "dataset_dict.json").write_text(marker)
    keep_tokenized(failed, cache, succeeded=False)
    assert not failed.exists() and not cache.exists()  # a failed run leaves no cache
    keep_tokenized(second, cache, succeeded=True)
    keep_tokenized(first, cache, succeeded=True)
    assert (cache / "dataset_dict.json").read_text() == "2"  # the first finished is the cache
    assert sorted(p.name for p in cache.parent.iterdir()) == ["abc"]


def test_a_model_saved_by_transformers_5_gets_the_rope_keys_ppos_transformers_reads(
    tmp_path, tiny_model
):
    import subprocess

    from medfactory import paths

    config = tmp_path / "config.json"
    saved = json.loads((tiny_model / "config.json").read_text())
    del saved["rope_theta"]  # as transformers 5 (.venv) saves a full fine-tune
    config.write_text(json.dumps(saved))
    script = "import sys, transformers as t; print(t.AutoConfig.from_pretrained(sys.argv[1]))"
    script = script.replace("))", ").rope_theta)")
    read_theta = [str(paths.rl_venv() / "bin" / "python"), "-c", script, str(tmp_path)]
    before = subprocess.run(read_theta, capture_output=True, text=True, check=True).stdout
    assert float(before) == 10000.0  # .venv-rl's transformers silently falls back to its default
    assert add_legacy_rope_keys(config) == "rope_theta 1e+06"
    after = subprocess.run(read_theta, capture_output=True, text=True, check=True).stdout
    assert float(after) == json.loads(config.read_text())["rope_parameters"]["rope_theta"] == 1e6
    assert add_legacy_rope_keys(config) == ""  # once
    scaled = {"rope_parameters": {"rope_theta": 5e5, "rope_type": "yarn", "factor": 4.0}}
    config.write_text(json.dumps(scaled))
    assert add_legacy_rope_keys(config) == "rope_theta 500000 and rope_scaling (yarn)"
    assert json.loads(config.read_text())["rope_scaling"] == {"rope_type": "yarn", "factor": 4.0}


def test_overrides_keep_yaml_1_1_words_as_strings():
    assert parse_overrides(["eval_strategy=no", "bf16=false", "lr=1e-4", "x=on", "n=3"]) == {
        "eval_strategy": "no",
        "bf16": False,
        "lr": 1e-4,
        "x": "on",
        "n": 3,
    }
    argv = llamafactory_command("train", Path("r.yaml"), parse_overrides(["eval_strategy=no"]))
    assert argv[-1] == "eval_strategy='no'"


@pytest.mark.parametrize(("stage", "method"), [("dpo", "lora"), ("dpo", "qlora"), ("dpo", "full"),
                                               ("kto", "lora")])  # fmt: skip
def test_preference_recipes_extend_the_methods_recipe_and_llamafactory_accepts_them(stage, method):
    from medfactory.recipes.check import llamafactory_problems

    registry = {f"r1_{stage}_train": {}, f"r1_{stage}_val": {}}
    text = render("qwen2.5-7b-instruct", method, stage, [f"r1_{stage}"], registry=registry)
    recipe = yaml.safe_load(text)
    trained = yaml.safe_load(render("qwen2.5-7b-instruct", method, "train", DATA))
    assert recipe["stage"] == stage and recipe["learning_rate"] == 5.0e-6
    assert (recipe["dataset"], recipe["eval_dataset"]) == (f"r1_{stage}_train", f"r1_{stage}_val")
    assert recipe["output_dir"] == f"saves/qwen2.5-7b-instruct/{method}/{stage}"
    assert recipe["pref_beta"] == 0.1
    for key in ("finetuning_type", "quantization_bit", "deepspeed", "lora_rank", "cutoff_len"):
        assert recipe.get(key) == trained.get(key), key  # the method's settings, unchanged
    if stage == "dpo":
        assert recipe["pref_loss"] == "sigmoid"
    else:
        assert recipe["kto_chosen_weight"] == recipe["kto_rejected_weight"] == 1.0
    assert llamafactory_problems(Path(f"{stage}_{method}.yaml"), recipe) == []
