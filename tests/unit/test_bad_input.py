"""Mistakes a new user makes: one line naming what to fix, a non-zero exit, nothing written."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfactory.cli import cli

REPO = Path(__file__).resolve().parents[2]
HUATUO = REPO / "dataset_info" / "samples" / "huatuo_sample.jsonl"
MEDICAL_O1 = REPO / "dataset_info" / "samples" / "medical_o1_sample.json"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def error_line(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def convert(tmp_path: Path, *args: str):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset_info.json").write_text('{"kept": {"file_name": "kept.jsonl"}}\n')
    before = files(data)
    result = CliRunner().invoke(cli, ["data", "convert", *args, "--dataset-dir", str(data)])
    return result, before, data


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "-x", "名字", "x y"])
def test_a_dataset_name_outside_the_rule_is_refused(tmp_path, name):
    result, before, data = convert(tmp_path, "huatuo", str(HUATUO), "--name", name)
    line = error_line(result)
    assert f"--name {name!r}" in line and "letters, digits, '_' and '-'" in line
    assert files(data) == before
    assert not (tmp_path / "evil_train.jsonl").exists()


def test_a_folder_given_as_the_input_is_named_as_a_folder(tmp_path):
    result, before, data = convert(tmp_path, "huatuo", str(tmp_path), "--name", "x")
    assert f"{tmp_path}: is a folder, not a data file" in error_line(result)
    assert files(data) == before


def test_a_file_of_the_other_source_registers_nothing_and_says_what_it_looks_like(tmp_path):
    result, before, data = convert(tmp_path, "huatuo", str(MEDICAL_O1), "--name", "x")
    line = error_line(result)
    # Read as JSON lines, each non-blank line of the array is a record, and none parses.
    records = sum(1 for line in MEDICAL_O1.read_text().splitlines() if line.strip())
    assert f"none of the {records} records could be read as huatuo" in line
    assert "nothing was registered" in line
    assert "a JSON array: did you mean medical-o1?" in line
    assert json.loads((data / "dataset_info.json").read_text()) == {
        "kept": {"file_name": "kept.jsonl"}
    }
    rejects = (data / "x.rejects.jsonl").read_text().splitlines()
    assert len(rejects) == records  # every record, with its reason, is still accounted for
    assert {name for name in files(data)} == {"dataset_info.json", "x.rejects.jsonl"} | {
        name for name in before
    }


def test_a_json_lines_file_given_as_medical_o1_is_one_line(tmp_path):
    result, before, data = convert(tmp_path, "medical-o1", str(HUATUO), "--name", "x")
    assert str(HUATUO) in error_line(result)
    assert files(data) == before


def test_an_earlier_registration_survives_a_failed_conversion(tmp_path):
    data = tmp_path / "data"
    ok = CliRunner().invoke(
        cli, ["data", "convert", "huatuo", str(HUATUO), "--name", "x", "--dataset-dir", str(data)]
    )
    assert ok.exit_code == 0, ok.output
    registered = (data / "dataset_info.json").read_text()
    bad = CliRunner().invoke(
        cli,
        ["data", "convert", "huatuo", str(MEDICAL_O1), "--name", "x", "--dataset-dir", str(data)],
    )
    assert bad.exit_code != 0
    assert (data / "dataset_info.json").read_text() == registered
    assert (data / "x_train.jsonl").stat().st_size > 0


def test_train_with_a_misspelled_key_names_it_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDFACTORY_CACHE", str(tmp_path / "cache"))
    recipe = (REPO / "llamafactory_configs/tiny/train_lora.yaml").read_text()
    mine = tmp_path / "my_recipe.yaml"
    mine.write_text(recipe.replace("\nlearning_rate:", "\nlearnig_rate:"))
    result = CliRunner().invoke(cli, ["train", str(mine)])
    line = error_line(result)
    assert f"{mine}: unknown key 'learnig_rate' (did you mean 'learning_rate'?)" in line
    assert "nothing was started" in result.output
    assert not (tmp_path / "cache").exists()  # no log, no tokenized cache: nothing ran


def test_a_misspelled_override_is_caught_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDFACTORY_CACHE", str(tmp_path / "cache"))
    recipe = REPO / "llamafactory_configs/tiny/train_lora.yaml"
    result = CliRunner().invoke(cli, ["train", str(recipe), "lora_rnak=4"])
    assert "unknown key 'lora_rnak' (did you mean 'lora_rank'?)" in error_line(result)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--seq", "-5"), ("--seq", "0"), ("--batch", "0"), ("--batch", "-1"), ("--gpus", "0")],
)
def test_vram_refuses_sizes_below_one(option, value):
    result = CliRunner().invoke(cli, ["vram", "--model", "tiny", option, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': {value} is not in the range x>=1" in result.output
    assert "fits" not in result.output


def predictions_file(folder: Path, name: str, prompts: list[str]) -> Path:
    path = folder / name / "generated_predictions.jsonl"
    path.parent.mkdir(parents=True)
    rows = [{"prompt": p, "predict": "答", "label": "参"} for p in prompts]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_review_mistakes_are_one_line(tmp_path):
    db = f"sqlite:///{tmp_path / 'review.db'}"
    a = predictions_file(tmp_path, "a", ["q1", "q2", "q3"])
    b = predictions_file(tmp_path, "b", ["q1", "q2 changed", "q3"])
    create = ["review", "create", "r1", "--a", str(a), "--raters", "d1,d2", "--db", db]
    line = error_line(CliRunner().invoke(cli, [*create, "--b", str(b)]))
    assert f"{b}:2: its prompt differs from {a}:2" in line
    assert error_line(CliRunner().invoke(cli, [*create, "--b", str(a), "--overlap", "3"]))
    assert CliRunner().invoke(cli, [*create, "--b", str(a)]).exit_code == 0
    line = error_line(CliRunner().invoke(cli, ["review", "report", "r1", "--db", db]))
    assert "has no ratings yet" in line
    sheet = tmp_path / "d1.csv"
    sheet.write_text("item,verdict\n1,1\n", encoding="utf-8")
    line = error_line(
        CliRunner().invoke(cli, ["review", "import", "r1", str(sheet), "--rater", "d1", "--db", db])
    )
    assert "missing column(s) conversation, answer_1" in line
    line = error_line(CliRunner().invoke(cli, ["review", "status", "r1", "--db", "not a url"]))
    assert "not a database URL" in line


# --- a registry without the recipe's datasets, a GPU recipe on a CPU, a malformed URL ---


def test_train_names_every_dataset_missing_from_the_registry_it_will_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDFACTORY_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text('{"mine_train": {"file_name": "mine.jsonl"}}')
    recipe = REPO / "llamafactory_configs/tiny/train_lora.yaml"  # eval_dataset: *_val
    args = ["train", str(recipe), "dataset=mine_train,mine_typo", f"dataset_dir={data}"]
    line = error_line(CliRunner().invoke(cli, args))
    assert "dataset 'mine_typo'" in line and "'mine_train'" not in line
    assert "eval_dataset 'huatuo_sample_val'" in line
    assert "eval_dataset 'medical_o1_sample_val'" in line
    assert f"{data / 'dataset_info.json'} has mine_train" in line
    assert "nothing was started" in line
    assert not (tmp_path / "cache").exists()  # no log: llamafactory-cli never ran


def test_train_with_a_dataset_dir_without_a_registry_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDFACTORY_CACHE", str(tmp_path / "cache"))
    recipe = REPO / "llamafactory_configs/tiny/train_lora.yaml"
    result = CliRunner().invoke(cli, ["train", str(recipe), f"dataset_dir={tmp_path}"])
    line = error_line(result)
    assert f"{tmp_path / 'dataset_info.json'} does not exist" in line
    assert "dataset 'huatuo_sample_train'" in line


def test_a_gpu_recipe_on_a_machine_without_cuda_is_one_line_naming_the_keys(tmp_path, monkeypatch):
    from medfactory.recipes.check import cuda_available

    if cuda_available():
        pytest.skip("this machine has a CUDA GPU: the recipe runs")
    monkeypatch.setenv("MEDFACTORY_CACHE", str(tmp_path / "cache"))
    recipe = REPO / "llamafactory_configs/tiny/train_lora.yaml"
    zero3 = "templates/deepspeed/ds_z3_config.json"
    result = CliRunner().invoke(cli, ["train", str(recipe), "bf16=true", f"deepspeed={zero3}"])
    line = error_line(result)
    assert f"needs a CUDA GPU (bf16: true, deepspeed: {zero3})" in line
    assert "bf16=false deepspeed=null" in line and "medfactory recipe render" in line
    assert not (tmp_path / "cache").exists()


def test_the_gpu_keys_and_their_overrides():
    from medfactory.recipes.run import gpu_only_keys

    assert gpu_only_keys({"bf16": False, "fp16": False, "quantization_bit": None}) == {}
    assert gpu_only_keys({"bf16": True, "quantization_bit": 4}) == {
        "bf16": True,
        "quantization_bit": 4,
    }
    assert gpu_only_keys({"bf16": True, "use_cpu": True}) == {}  # CPU autocast
    assert gpu_only_keys({"fp16": True, "use_cpu": True}) == {"fp16": True}


BAD_URLS = {
    "http://127.0.0.1:99999": "port is out of range 1-65535",
    "http://127.0.0.1:80x": "port is not a number",
    "http://[::1": "an IPv6 host is written [::1]",
    "127.0.0.1:8000": "must start with http:// or https://",
}
# Every option that takes a server's address, with what else the command needs.
URL_OPTIONS = [
    ["eval", "endpoint", "--dataset", "huatuo_sample_test", "--endpoint"],
    ["eval", "exam", "--benchmark", "ceval-medical", "--endpoint"],
    ["eval", "judge", str(HUATUO), "--judge-endpoint"],
    ["loadtest", "--dataset", "huatuo_sample_test", "--endpoint"],
    ["verify", "--model", "m", "--template", "qwen", "--endpoint"],
    ["data", "synthesize", str(HUATUO), "--name", "x", "--endpoint"],
    ["chat", "--gateway"],
    ["monitor", "--iterations", "1", "--gateway"],
    ["monitor", "--iterations", "1", "--endpoint"],
]


@pytest.mark.parametrize("url", list(BAD_URLS))
@pytest.mark.parametrize("command", URL_OPTIONS, ids=" ".join)
def test_a_malformed_url_is_one_line_before_any_request(command, url):
    result = CliRunner().invoke(cli, [*command, url])
    line = error_line(result)
    assert f"{command[-1]}" in line and repr(url) in line and BAD_URLS[url] in line


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_gateway_arm_with_a_malformed_url_is_one_line(tmp_path, url):
    db = f"sqlite:///{tmp_path / 'ab.db'}"
    result = CliRunner().invoke(cli, ["gateway", "--arm", f"a={url}", "--db", db])
    line = error_line(result)
    assert f"--arm 'a={url}'" in line and BAD_URLS[url] in line


def test_good_urls_pass_whole_and_the_client_refuses_a_bad_one():
    from deploy.client import Endpoint, EndpointError
    from deploy.urls import parse_url

    assert parse_url(" http://[::1]:8000/ ") == "http://[::1]:8000"
    assert parse_url("https://api.example.com/v1") == "https://api.example.com/v1"
    assert parse_url("modelscope.cn", default_scheme="https") == "https://modelscope.cn"
    assert Endpoint("http://127.0.0.1:8000/v1/").url == "http://127.0.0.1:8000"
    with pytest.raises(EndpointError, match="port is out of range"):
        Endpoint("http://127.0.0.1:99999")
