"""The WebUI workspace: our data, our saves, the preset's model remembered."""

import pytest
import yaml
from llamafactory.extras.constants import DEFAULT_TEMPLATE, SUPPORTED_MODELS, DownloadSource

from medfactory import paths
from medfactory.recipes.presets import RecipeError, load_presets
from medfactory.recipes.webui import WebUIError, prepare_workspace


@pytest.mark.parametrize("name", sorted(load_presets()))
def test_each_preset_is_a_webui_model_with_its_template(name):
    # The WebUI picks the chat template from the model name it shows; a wrong
    # name would train with another template than our recipes.
    preset = load_presets()[name]
    assert DEFAULT_TEMPLATE[preset.webui_name] == preset.template
    if preset.source == "modelscope":
        assert SUPPORTED_MODELS[preset.webui_name][DownloadSource.MODELSCOPE] == preset.model


def test_workspace_links_our_data_and_saves_and_remembers_the_model(tmp_path):
    data, saves = tmp_path / "data_dir", tmp_path / "saves_dir"
    data.mkdir()
    (data / "dataset_info.json").write_text("{}")
    workspace = prepare_workspace(tmp_path / "ws", "qwen2.5-7b-instruct", data, saves)
    assert (workspace / "data").resolve() == data.resolve()
    assert (workspace / "saves").resolve() == saves.resolve()
    config = yaml.safe_load((workspace / "llamaboard_cache" / "user_config.yaml").read_text())
    assert config["last_model"] == "Qwen2.5-7B-Instruct"
    assert config["path_dict"] == {"Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B-Instruct"}

    # Preparing again (another dataset dir) replaces the links instead of failing.
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset_info.json").write_text("{}")
    prepare_workspace(workspace, "tiny", other, saves)
    assert (workspace / "data").resolve() == other.resolve()
    config = yaml.safe_load((workspace / "llamaboard_cache" / "user_config.yaml").read_text())
    assert config["path_dict"] == {
        "Qwen2.5-0.5B-Instruct": str((paths.PROJECT_ROOT / ".cache/tiny-model").resolve())
    }


def test_unknown_preset_names_the_known_ones(tmp_path):
    with pytest.raises(RecipeError, match="unknown model preset 'qwen9'.*tiny"):
        prepare_workspace(tmp_path, "qwen9", tmp_path, tmp_path)


def test_a_dataset_dir_without_a_registry_says_how_to_make_one(tmp_path):
    with pytest.raises(WebUIError, match=r"no dataset_info.json; register data first"):
        prepare_workspace(tmp_path / "ws", "tiny", tmp_path / "missing", tmp_path)


def test_a_busy_port_is_named_before_anything_starts(tmp_path):
    import socket

    from medfactory.recipes.webui import start_webui

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(WebUIError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_webui(tmp_path, "127.0.0.1", port, tmp_path / "webui.log")
    assert not (tmp_path / "webui.log").exists()  # nothing was launched
