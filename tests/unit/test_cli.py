import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfactory.cli import cli

HEAVY = ("torch", "transformers", "llamafactory", "vllm")


@pytest.mark.parametrize("width", [80, 200])
def test_help_lists_each_group_with_an_example(width):
    result = CliRunner().invoke(cli, ["--help"], terminal_width=width)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name, group in cli.commands.items():
        row = next(i for i, line in enumerate(lines) if line.strip().startswith(name + " "))
        summary = lines[row].split(None, 1)[1].removesuffix("...")
        assert group.get_short_help_str(200).startswith(summary)
        assert len(lines[row]) <= width
        # The example is whole on the next line, however narrow the terminal.
        assert lines[row + 1].strip() == f"e.g. {group.example}"
        assert group.example.startswith(f"medfactory {name} ")


def test_every_command_shows_an_example_in_its_own_help():
    paths = []
    for name, command in cli.commands.items():
        subcommands = getattr(command, "commands", None)
        paths += [[name, sub] for sub in subcommands] if subcommands else [[name]]
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output
        example = re.search(rf"^\s+medfactory {' '.join(path)}(\s|$)", result.output, re.M)
        assert example, result.output


def test_help_imports_no_heavy_library():
    code = (
        "import sys, json\n"
        "from medfactory.cli import cli\n"
        "try:\n    cli(['--help', ], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "for args in (['dev', '--help'], ['dev', 'tiny-model', '--help']):\n"
        "    cli(args, standalone_mode=False)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_user_error_is_one_message_without_traceback(tmp_path):
    missing = tmp_path / "no-tokenizer"
    result = CliRunner().invoke(
        cli, ["dev", "tiny-model", str(tmp_path / "out"), "--tokenizer-dir", str(missing)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert str(missing) in result.output and "--tokenizer-dir" in result.output
    assert "Traceback" not in result.output


def test_demo_resumes_only_at_a_stage_it_has():
    from medfactory.dev.demo import STAGE_NAMES, Outputs, plan

    outputs = Outputs(Path("a"), Path("p/generated_predictions.jsonl"), Path("m"), "qwen")
    assert tuple(stage.name for stage in plan(8000, "1", "5s", outputs)) == STAGE_NAMES
    result = CliRunner().invoke(cli, ["demo", "--from", "trian"])
    assert result.exit_code == 2
    assert "'trian' is not one of 'convert-huatuo'" in result.output


def test_resuming_after_serve_starts_a_server_first():
    from medfactory.dev.demo import STAGE_NAMES, select_stages

    assert select_stages("loadtest") == ["serve", "loadtest"]
    assert select_stages("verify") == ["serve", "verify", "exam", "loadtest"]
    assert select_stages("exam") == ["serve", "exam", "loadtest"]
    assert select_stages("export") == ["export", "serve", "verify", "exam", "loadtest"]
    assert select_stages(None) == list(STAGE_NAMES)


def test_only_runs_exactly_the_named_stages_in_pipeline_order():
    from medfactory.dev.demo import DemoFailed, select_stages

    assert select_stages(only=("loadtest",)) == ["loadtest"]  # no server started for it
    assert select_stages(only=("verify", "serve")) == ["serve", "verify"]
    with pytest.raises(DemoFailed, match="unknown stage 'serv'"):
        select_stages(only=("serv",))
