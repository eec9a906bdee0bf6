"""The Chinese README says what the English one says: the same make targets and commands."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE = re.compile(r"\bmake ([a-z][a-z-]*)")
# `medfactory` and its command words, up to the first option or argument.
COMMAND = re.compile(r"\bmedfactory((?: [a-z][a-z-]*(?![\w/.]))+)")


def mentions(path: Path) -> tuple[set[str], set[str]]:
    """make targets and `medfactory` commands in the code: blocks and inline spans."""
    text = path.read_text(encoding="utf-8")
    text = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", text, re.S))
    targets = set(MAKE.findall(text))
    commands = {" ".join(match.split()[:2]) for match in COMMAND.findall(text)}
    return targets, commands


def test_both_readmes_name_the_same_targets_and_commands():
    english, chinese = mentions(REPO / "README.md"), mentions(REPO / "README.zh-CN.md")
    assert english[0] == chinese[0], "make targets differ"
    assert english[1] == chinese[1], "medfactory commands differ"


def test_every_make_target_is_in_both_readmes():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.M)) - {"help"}
    for readme in ("README.md", "README.zh-CN.md"):
        assert targets <= mentions(REPO / readme)[0], readme


def test_each_readme_links_the_other():
    assert "(README.zh-CN.md)" in (REPO / "README.md").read_text().split("\n\n")[1]
    assert "(README.md)" in (REPO / "README.zh-CN.md").read_text().split("\n\n")[1]
