"""Servers started in the background: one record per port, for `serve status|stop`.

A record holds the server's process-group id and what it serves; a record
whose process group is gone is stale and removed when read.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.process import group_alive, healthy, stop_group
from deploy.server import ServerSpec


@dataclass(frozen=True)
class Instance:
    port: int
    host: str
    pid: int  # leader of the server's process group
    backend: str
    model: str
    served_model_name: str
    template: str | None
    log: str
    started: float

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def record(state_dir: Path, spec: ServerSpec, pid: int, log: Path) -> Instance:
    instance = Instance(
        spec.port, spec.host, pid, spec.backend, str(spec.model), spec.model_name,
        spec.template, str(log), time.time(),
    )  # fmt: skip
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{spec.port}.json"
    path.with_suffix(".tmp").write_text(json.dumps(asdict(instance), indent=1))
    path.with_suffix(".tmp").replace(path)
    return instance


def running(state_dir: Path) -> list[Instance]:
    instances = []
    for path in sorted(Path(state_dir).glob("*.json")):
        try:
            instance = Instance(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if group_alive(instance.pid):
            instances.append(instance)
        else:
            path.unlink(missing_ok=True)
    return instances


def is_healthy(instance: Instance) -> bool:
    return healthy(instance.url)


def stop(state_dir: Path, instance: Instance) -> None:
    stop_group(instance.pid)
    (Path(state_dir) / f"{instance.port}.json").unlink(missing_ok=True)


class NoSuchInstance(LookupError):
    """The server to stop cannot be told from the others; the message lists them."""


def choose(running_now: list[Instance], port: int | None, every: bool) -> list[Instance]:
    """The servers `serve stop` means: the one on `port`, all, or the only one."""
    ports = ", ".join(str(i.port) for i in running_now) or "none"
    if port is not None:
        chosen = [i for i in running_now if i.port == port]
        if not chosen:
            raise NoSuchInstance(f"no server of ours on port {port} (running: {ports})")
        return chosen
    if every or len(running_now) <= 1:
        return running_now
    raise NoSuchInstance(f"several servers run (ports {ports}); pass --port or --all")
