"""vLLM's tensor, pipeline and data parallel sizes: on the command line, or one clear error."""

import sys

import pytest
from click.testing import CliRunner

from deploy.process import ServerStartError
from deploy.server import ServerSpec, server_argv


def spec(tmp_path, **kw):
    return ServerSpec(python=sys.executable, model=tmp_path / "model", port=8000, **kw)


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_defaults_give_todays_command_line(tmp_path):
    argv = server_argv(spec(tmp_path))
    assert argv == [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tmp_path / "model"), "--host", "127.0.0.1", "--port", "8000",
        "--served-model-name", "model",
    ]  # fmt: skip


def test_the_sizes_reach_vllm(tmp_path):
    argv = server_argv(
        spec(tmp_path, tensor_parallel_size=4, pipeline_parallel_size=2, data_parallel_size=3,
             max_num_seqs=64)
    )  # fmt: skip
    assert flag(argv, "--tensor-parallel-size") == "4"
    assert flag(argv, "--pipeline-parallel-size") == "2"
    assert flag(argv, "--data-parallel-size") == "3"
    assert flag(argv, "--max-num-seqs") == "64"


@pytest.mark.parametrize("value", [0, -2])
def test_a_size_below_one_is_refused_with_its_flag(tmp_path, value):
    with pytest.raises(ServerStartError, match=f"--pipeline-parallel-size must be .* got {value}"):
        server_argv(spec(tmp_path, pipeline_parallel_size=value))


def test_llamafactory_backend_refuses_parallel_serving(tmp_path):
    with pytest.raises(ServerStartError, match="--tensor-parallel-size is a vLLM option"):
        server_argv(spec(tmp_path, backend="llamafactory", tensor_parallel_size=2))


@pytest.mark.parametrize(
    "option", ["--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size"]
)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_serve_command_names_the_bad_option(tmp_path, option, value):
    from medfactory.cli import cli

    result = CliRunner().invoke(
        cli, ["serve", "--model", str(tmp_path), "--template", "qwen", option, value]
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert "x>=1" in result.output and "Traceback" not in result.output
