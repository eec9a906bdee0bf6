"""The two environments `make install` builds are the pinned, working ones."""

import importlib.metadata as metadata
import json
import subprocess
import sys
from pathlib import Path

from medfactory import paths

REPO = Path(__file__).resolve().parents[2]


def pinned(extra: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "tools/pins.py", extra], cwd=REPO, capture_output=True, text=True
    ).stdout
    return dict(r.split("==") for r in out.split())


def test_training_environment_has_the_pinned_versions():
    assert Path(sys.prefix).resolve() == paths.train_venv().resolve()
    for name, version in pinned("train").items():
        assert metadata.version(name) == version, name
    assert paths.llamafactory_cli().is_file()


def test_server_environment_imports_vllm_and_lacks_the_broken_cuda_builds():
    flavour = "gpu" if "gpu" in next(paths.vllm_venv().glob(".installed-*")).name else "cpu"
    name, version = next(iter(pinned(f"serve-{flavour}").items()))
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, vllm\n"
        f"print(json.dumps({{'version': m.version({name!r}),\n"
        "  'present': [p for p in ('torchvision', 'torchaudio', 'torchcodec') if u.find_spec(p)]}))"
    )
    out = subprocess.run(
        [str(paths.vllm_python()), "-c", probe], capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["version"] == version
    if flavour == "cpu":
        assert found["present"] == []
