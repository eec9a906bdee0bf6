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
