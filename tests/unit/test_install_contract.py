"""The Makefile's environment choices, checked against the real Makefile."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.+]*$")


def pins(extra: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "tools/pins.py", extra], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("extra", ["train", "dev", "serve-gpu", "serve-cpu", "rl"])
def test_every_environment_dependency_is_pinned_exactly(extra):
    requirements = pins(extra)
    assert requirements
    assert all(PIN.match(r) for r in requirements), requirements


def test_unknown_extra_names_the_known_ones():
    out = subprocess.run(
        [sys.executable, "tools/pins.py", "serve-tpu"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "serve-cpu" in out.stderr and "serve-gpu" in out.stderr


def flavour(tmp_path: Path, nvidia_smi_exit: int | None) -> str:
    """What `make` chooses for .venv-vllm with a given (or no) nvidia-smi on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    if nvidia_smi_exit is not None:
        tool = bin_dir / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\nexit {nvidia_smi_exit}\n")
        tool.chmod(0o755)
    out = subprocess.run(
        ["make", "-s", "--eval", "print-flavour: ; @echo $(VLLM_FLAVOUR)", "print-flavour"],
        cwd=REPO,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_vllm_flavour_follows_nvidia_smi(tmp_path):
    assert flavour(tmp_path / "a", nvidia_smi_exit=0) == "gpu"
    assert flavour(tmp_path / "b", nvidia_smi_exit=9) == "cpu"
    assert flavour(tmp_path / "c", nvidia_smi_exit=None) == "cpu"
