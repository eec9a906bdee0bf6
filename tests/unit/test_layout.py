"""The layout's rules, checked on the source: who may import whom, what a command may do."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["converters", "deploy"])
def test_converters_and_deploy_never_import_medfactory(folder):
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in imported_modules(path) if m.startswith("medfactory")
        )
        for path in python_files(folder)
    }
    assert {f: m for f, m in offenders.items() if m} == {}


def test_converters_never_import_deploy():
    offenders = [
        p
        for p in python_files("converters")
        if any(m.startswith("deploy") for m in imported_modules(p))
    ]
    assert offenders == []


def test_evaluation_never_imports_the_review_or_ab_packages():
    """Review and A/B (the clinicians' side) build on evaluation, never the reverse."""
    offenders = [
        p
        for p in python_files("medfactory/evaluation")
        if any(m.startswith(("medfactory.review", "medfactory.ab")) for m in imported_modules(p))
    ]
    assert offenders == []


def test_nothing_imports_the_tests():
    for folder in ("medfactory", "converters", "deploy", "benchmarks"):
        for path in python_files(folder):
            assert not any(m.startswith("tests") for m in imported_modules(path)), path


# What only a domain module may use: processes, servers, sweeps, reports.
NOT_IN_COMMANDS = (
    "subprocess",
    "deploy.process.stop_group",
    "deploy.process.wait_until_up",
    "deploy.server.Server",
    "deploy.loadtest.summarize",
    "deploy.loadtest.ResourceSampler",
    "deploy.loadtest_report",
    "medfactory.evaluation.compare.markdown_report",
    "medfactory.evaluation.compare.bar_chart",
)


def test_command_modules_hold_no_domain_logic():
    offenders = {
        str(path.relative_to(REPO)): sorted(set(imported_modules(path)) & set(NOT_IN_COMMANDS))
        for path in python_files("medfactory/cli")
    }
    assert {f: m for f, m in offenders.items() if m} == {}


# --- what a command may do: parse, call one function, print -----------------------------

# Calls that write to disk. A command hands its options to a domain function, which
# writes (through medfactory/reporting.py for reports); the command prints.
WRITING_METHODS = {"write_text", "write_bytes", "mkdir", "makedirs", "touch", "dump"}
WRITING_FUNCTIONS = {
    ("json", "dump"), ("os", "makedirs"), ("shutil", "copy"), ("shutil", "copyfile"),
    ("shutil", "copytree"), ("shutil", "move"),
}  # fmt: skip
WRITE_MODES = set("wax+")

# A loop over runs: a `for` statement in a command's body whose iterable names a
# parameter holding several values (an argument with nargs=-1, an option with
# multiple=True: the files, arms or recipes the user gave) or a name that says it holds
# runs (runs, files, paths, predictions, inputs, graded, scored). Going through them one
# by one -- score this file, judge that one -- is the domain's work. A comprehension
# that maps a parser over an option (`[parse_arm(a) for a in arms]`) is parsing and
# allowed, and so are loops in helpers that only print.
RUN_WORDS = {"run", "file", "path", "prediction", "input", "graded", "scored"}


def _says_runs(name: str) -> bool:
    """`files`, `scored_runs`, `input_paths` say they hold runs; `running` does not."""
    return any(word.removesuffix("s") in RUN_WORDS for word in name.lower().split("_"))


def _open_mode(call: ast.Call) -> str:
    """The mode of `open(PATH, MODE)` or `PATH.open(MODE)`, "r" when not given."""
    is_method = isinstance(call.func, ast.Attribute)
    positional = call.args[0 if is_method else 1 :]
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and positional:
        mode = positional[0]
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


def writes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of every call in `tree` that writes a file or makes a folder."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", None) if isinstance(func, ast.Attribute) else None
        if name == "open" and set(_open_mode(node)) & WRITE_MODES:
            found.append((node.lineno, f"open(..., {_open_mode(node)!r})"))
        elif (owner, name) in WRITING_FUNCTIONS or (
            name in WRITING_METHODS and name != "dump" and owner not in ("click",)
        ):
            found.append((node.lineno, f"{owner + '.' if owner else ''}{name}"))
    return found


def _is_command(function: ast.FunctionDef) -> bool:
    """Decorated as a click command or group (`@click.command()`, `@eval_group.command()`)."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
            return True
    return False


def _several_values(call: ast.Call) -> str | None:
    """The parameter a `click.argument(..., nargs=-1)` or `click.option(...,
    multiple=True)` declares, None for any other decorator."""
    kind = getattr(call.func, "attr", None)
    flags = {k.arg: getattr(k.value, "value", None) for k in call.keywords}
    if not (kind == "argument" and flags.get("nargs") == -1) and not (
        kind == "option" and flags.get("multiple") is True
    ):
        return None
    names = [a.value for a in call.args if isinstance(a, ast.Constant)]
    plain = [n for n in names if not n.startswith("-")]
    return (plain or [max(names, key=len).lstrip("-")])[0].replace("-", "_")


def multi_valued(tree: ast.Module, function: ast.FunctionDef) -> set[str]:
    """The command's parameters that hold several values, declared on it or through a
    module-level decorator (`OVERRIDES = click.argument("overrides", nargs=-1)`)."""
    shared = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = set()
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Name):
            decorator = shared.get(decorator.id)
        if isinstance(decorator, ast.Call) and (name := _several_values(decorator)):
            found.add(name)
    return found


def loops_over_runs(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, iterable) of every `for` statement in a command's body that goes over runs."""
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or not _is_command(function):
            continue
        several = multi_valued(tree, function)
        for node in ast.walk(function):
            if not isinstance(node, ast.For | ast.AsyncFor):
                continue
            names = {n.id for n in ast.walk(node.iter) if isinstance(n, ast.Name)}
            if names & several or any(_says_runs(name) for name in names):
                found.append((node.lineno, ast.unparse(node.iter)))
    return found


def command_modules() -> list[Path]:
    return python_files("medfactory/cli")


def test_the_command_rules_catch_what_they_name():
    """The checks themselves, on a command that breaks each rule once."""
    source = """
import click, json
@click.command()
@click.argument("files", nargs=-1)
@click.option("--arm", "arms", multiple=True)
@click.option("--name")
def compare(files, arms, name, out):
    for f in files:
        score(f)
    for run in scored_runs():
        print(run)
    for arm in arms:
        check(arm)
    for line in describe(name):
        print(line)
    out.mkdir(parents=True)
    (out / "r.json").write_text("{}")
    json.dump({}, open(out / "x", "w"))
    with (out / "log").open("a") as log:
        pass
    with open(out / "in") as read_only:
        pass
    arms = [parse(a) for a in files]
def _print(report):
    for run in report["runs"]:
        print(run)
"""
    tree = ast.parse(source)
    assert [line for line, _ in loops_over_runs(tree)] == [8, 10, 12]
    assert sorted(what for _, what in writes(tree)) == sorted(
        ["out.mkdir", "write_text", "json.dump", "open(..., 'w')", "open(..., 'a')"]
    )


def test_command_modules_write_no_file_and_loop_over_no_runs():
    """A command parses its options, calls one domain function and prints; the writing
    and the going through runs one by one happen in the domain module."""
    offenders = {}
    for path in command_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [f"line {n}: writes ({w})" for n, w in writes(tree)]
        found += [f"line {n}: loops over runs ({it})" for n, it in loops_over_runs(tree)]
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


# --- no circular imports -----------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Our module -> our modules it imports (at the top or inside functions). `from
    package import module` counts as importing the module, not the package's __init__."""
    files = {
        module_name(p): p for f in ("medfactory", "converters", "deploy") for p in python_files(f)
    }
    graph = {}
    for name, path in files.items():
        edges = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                members = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [m if m in files else node.module for m in members]
            else:
                continue
            for target in targets:
                while target and target not in files:  # a name inside a module: the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_modules_import_each_other():
    """No circle in the import graph of medfactory/, converters/ and deploy/, imports
    inside functions included: two modules that need each other are one module, or
    share a third."""
    assert cycles(import_graph()) == []


def test_benchmarks_import_the_packages_without_touching_sys_path():
    for path in python_files("benchmarks"):
        assert "sys.path" not in path.read_text(encoding="utf-8"), path


def test_a_tests_folder_decides_its_markers():
    """`make test-unit` selects exactly tests/unit, `-m integration` the rest."""

    def collected(marker: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", marker, "tests"],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        return {line.split("/")[1] for line in out.stdout.splitlines() if line.startswith("tests/")}

    assert collected("not integration and not gpu") == {"unit"}
    assert collected("integration") == {"integration", "gpu"}


def test_test_files_have_unique_names():
    """The tests folders are not packages, so pytest imports each file by its
    base name: two `test_x.py` in different folders stop the whole run."""
    names = [path.name for path in python_files("tests") if path.name.startswith("test_")]
    assert sorted(set(names)) == sorted(names), sorted({n for n in names if names.count(n) > 1})
