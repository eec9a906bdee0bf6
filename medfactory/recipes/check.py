"""`recipe check`: every checked-in recipe is fresh, parses, and names registered datasets.

Parsing uses LLaMA-Factory's own argument dataclasses (the parser `llamafactory-cli`
runs). On a machine without a GPU, `use_cpu: true` is added for the parse alone,
so that a bf16 recipe meant for a GPU is judged on its keys and values, not on
the machine that checks it.
"""

from __future__ import annotations

import difflib
import re
import shlex
from pathlib import Path

import yaml

from converters.registry import read_registry
from medfactory.recipes.render import (
    DATASET_DIR,
    HEADER,
    RECIPES,
    RecipeError,
    parse_overrides,
    recipe_path,
    render,
)

_UNUSED = re.compile(r"not used by the HfArgumentParser: \[(.*)\]")


def render_arguments(header: str) -> tuple[str, str, str, list[str], dict, str | None]:
    """The render call recorded in a recipe's first line (the last item: --reward)."""
    argv = shlex.split(header.removeprefix(HEADER))
    if argv[:3] != ["medfactory", "recipe", "render"]:
        raise RecipeError("first line is not a `medfactory recipe render` command")
    options: dict[str, list[str]] = {"--model": [], "--method": [], "--stage": [], "--dataset": [],
                                     "--reward": [], "--report-to": []}  # fmt: skip
    pairs, args = [], iter(argv[3:])
    for arg in args:
        if arg in options:
            options[arg].append(next(args, ""))
        else:
            pairs.append(arg)
    single = {k: (v[0] if v else "") for k, v in options.items()}
    return (
        single["--model"],
        single["--method"],
        single["--stage"],
        options["--dataset"],
        parse_overrides(pairs),
        single["--reward"] or None,
    )


def report_to_of(header: str) -> str:
    """The --report-to of a recipe's render command (none when not given)."""
    argv = shlex.split(header.removeprefix(HEADER))
    given = (b for a, b in zip(argv, argv[1:], strict=False) if a == "--report-to")
    return next(given, "none")


def _stale(path: Path, text: str, registry: dict) -> list[str]:
    first = text.splitlines()[0] if text else ""
    if not first.startswith(HEADER):
        return [
            f"{path}: no `{HEADER.strip()} medfactory recipe render ...` first line; re-render it"
        ]
    preset, method, stage, names, overrides, reward = render_arguments(first)
    expected = render(preset, method, stage, names, overrides, registry=registry, reward=reward,
                      report_to=report_to_of(first))  # fmt: skip
    problems = []
    if recipe_path(preset, stage, method).resolve() != path.resolve():
        problems.append(f"{path}: its command writes {recipe_path(preset, stage, method)}")
    if expected != text:
        diff = difflib.unified_diff(
            text.splitlines(),
            expected.splitlines(),
            f"{path} (checked in)",
            "rendered now",
            lineterm="",
        )
        problems.append(
            f"{path}: stale, differs from what its command renders today; run "
            f"`{first.removeprefix(HEADER)}`\n" + "\n".join(diff)
        )
    return problems


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def llamafactory_problems(path: Path, recipe: dict) -> list[str]:
    """Parse with LLaMA-Factory's own arguments; unknown keys named, with a close match."""
    from llamafactory.hparams import parser as lf

    infer = not (recipe.get("do_train") or recipe.get("do_predict") or recipe.get("do_eval"))
    arguments = dict(recipe)
    if not infer and not cuda_available():
        arguments["use_cpu"] = True
    known = {
        field
        for dataclass in (lf._INFER_ARGS if infer else lf._TRAIN_ARGS)
        for field in dataclass.__dataclass_fields__
    }
    try:
        (lf._parse_infer_args if infer else lf._parse_train_args)(arguments)
    except Exception as error:  # LLaMA-Factory raises ValueError and friends
        unused = _UNUSED.search(str(error))
        if not unused:
            return [f"{path}: LLaMA-Factory rejects it: {error}"]
        problems = []
        for key in re.findall(r"'([^']+)'", unused.group(1)):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path}: unknown key {key!r}{hint}")
        return problems
    return []


def _dataset_problems(path: Path, recipe: dict, registry: dict) -> list[str]:
    problems = []
    for key in ("dataset", "eval_dataset"):
        for name in str(recipe.get(key) or "").split(","):
            if name.strip() and name.strip() not in registry:
                problems.append(
                    f"{path}: {key} {name.strip()!r} is not in {DATASET_DIR}/dataset_info.json; "
                    "convert it with `medfactory data convert` or fix the name"
                )
    return problems


def check_recipes(paths: list[Path] | None = None, dataset_dir: Path | None = None) -> list[str]:
    """All problems of the given (default: every checked-in) recipe, each naming its file."""
    dataset_dir = dataset_dir or RECIPES.parent / DATASET_DIR
    registry = read_registry(dataset_dir)
    paths = paths if paths is not None else sorted(RECIPES.glob("*/*.yaml"))
    problems: list[str] = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            recipe = yaml.safe_load(text) or {}
            problems += _stale(path, text, registry)
        except (yaml.YAMLError, RecipeError) as error:
            problems.append(f"{path}: {error}")
            continue
        problems += llamafactory_problems(path, recipe)
        problems += _dataset_problems(path, recipe, registry)
    return problems
