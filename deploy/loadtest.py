"""Run locust against a served model and report what LLM serving is judged by.

Metric definitions follow `vllm bench serve`:
  TTFT  time to the first non-empty content chunk;
  ITL   the gaps between later content chunks;
  TPOT  (E2EL - TTFT) / (output tokens - 1), per request with more than one token;
  E2EL  end-to-end latency of the whole streamed request;
  throughput: completed requests and output tokens per second of the run;
  goodput: requests per second that met every --slo (ttft, tpot, e2el in ms).
Token counts are the server's own (`usage`). The server's CPU and memory
(its whole process tree) and, with `nvidia-smi`, GPU use are sampled meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from deploy.loadtest_report import write_report

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LoadSpec:
    url: str
    model: str
    prompts: list[list[dict]]
    users: int
    spawn_rate: float
    duration_s: float
    max_tokens: int = 128
    ignore_eos: bool = True
    temperature: float = 0.0
    api_key: str | None = None


def tpot(e2el: float, ttft: float, tokens: int) -> float | None:
    """Time per output token after the first, in the unit of the times; None below two tokens."""
    return (e2el - ttft) / (tokens - 1) if tokens > 1 else None


def run_locust(
    spec: LoadSpec, out: Path, locust: Path, web: bool = False, label: str | None = None
) -> Path:
    """One locust run (headless unless `web`); returns its per-request records file.

    The run is bounded twice: locust's own --run-time, and a hard deadline after
    which its whole process group is killed.
    """
    label = label or f"u{spec.users}"
    out.mkdir(parents=True, exist_ok=True)
    prompts, records = out / "prompts.jsonl", out / f"requests-{label}.jsonl"
    prompts.write_text("".join(json.dumps({"messages": m}) + "\n" for m in spec.prompts))
    records.unlink(missing_ok=True)
    env = {
        **os.environ,
        "MEDFACTORY_LT_PROMPTS": str(prompts),
        "MEDFACTORY_LT_RECORDS": str(records),
        "MEDFACTORY_LT_MODEL": spec.model,
        "MEDFACTORY_LT_MAX_TOKENS": str(spec.max_tokens),
        "MEDFACTORY_LT_IGNORE_EOS": "1" if spec.ignore_eos else "0",
        "MEDFACTORY_LT_TEMPERATURE": str(spec.temperature),
    }
    if spec.api_key:
        env["MEDFACTORY_LT_API_KEY"] = spec.api_key
    argv = [str(locust), "-f", str(LOCUSTFILE), "--host", spec.url]
    argv += ["--users", str(spec.users), "--spawn-rate", str(spec.spawn_rate)]
    if web:
        argv += ["--web-host", "127.0.0.1", "--autostart", "--run-time", f"{spec.duration_s:.0f}s"]
        subprocess.run(argv, env=env, check=False)
        return records
    argv += ["--headless", "--run-time", f"{spec.duration_s:.0f}s", "--stop-timeout", "10"]
    argv += ["--csv", str(out / f"locust-{label}"), "--only-summary", "--exit-code-on-error", "0"]
    with (out / f"locust-{label}.log").open("w") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout=spec.duration_s + 60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return records


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values) * 1000  # milliseconds
    stats = {"mean": float(array.mean()), "median": float(np.median(array))}
    stats.update({f"p{p}": float(np.percentile(array, p)) for p in PERCENTILES})
    return stats


def summarize(records: list[dict], duration_s: float, slo_ms: dict[str, float]) -> dict:
    """One load level's metrics from its per-request records.

    Throughputs divide by the span from the first request's start to the last
    one's end (as `vllm bench serve` does); `duration_s` is the fallback.
    """
    ok = [r for r in records if r.get("ok")]
    if ok:
        duration_s = max(r["start"] + r["e2el"] for r in ok) - min(r["start"] for r in records)
    failed = [r for r in records if not r.get("ok")]
    output_tokens = sum(r["completion_tokens"] for r in ok)
    per_token = [tpot(r["e2el"], r["ttft"], r["completion_tokens"]) for r in ok]
    values = {
        "ttft": [r["ttft"] for r in ok],
        "tpot": [t for t in per_token if t is not None],
        "itl": [gap for r in ok for gap in r["itl"]],
        "e2el": [r["e2el"] for r in ok],
    }
    summary = {
        "duration_s": duration_s,
        "completed": len(ok),
        "failed": len(failed),
        "failures_by_type": dict(Counter(r.get("error_type", "unknown") for r in failed)),
        "prompt_tokens": sum(r["prompt_tokens"] for r in ok),
        "output_tokens": output_tokens,
        "request_throughput": len(ok) / duration_s,
        "output_throughput": output_tokens / duration_s,
        "total_token_throughput": (output_tokens + sum(r["prompt_tokens"] for r in ok))
        / duration_s,
        **{f"{name}_ms": _stats(v) for name, v in values.items()},
    }
    if slo_ms:
        good = [r for r in ok if _meets(r, slo_ms)]
        summary["goodput"] = len(good) / duration_s
        summary["slo_ms"] = slo_ms
    return summary


def _meets(record: dict, slo_ms: dict[str, float]) -> bool:
    per_token = tpot(record["e2el"], record["ttft"], record["completion_tokens"]) or 0.0
    measured = {
        "ttft": record["ttft"] * 1000,
        "e2el": record["e2el"] * 1000,
        "tpot": per_token * 1000,
    }
    return all(measured[name] <= limit for name, limit in slo_ms.items())


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft=500,tpot=50` -> {"ttft": 500.0, "tpot": 50.0} (milliseconds)."""
    slo = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name.strip() not in ("ttft", "tpot", "e2el") or not value:
            raise ValueError(f"--slo {text!r}: expected NAME=MS pairs of ttft, tpot, e2el")
        slo[name.strip()] = float(value)
    return slo


class ResourceSampler:
    """Samples a process tree's CPU and memory (and the GPUs, with nvidia-smi) each second."""

    def __init__(self, pid: int | None, interval: float = 1.0):
        self.pid, self.interval = pid, interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        processes: dict[int, psutil.Process] = {}
        while not self._stop.is_set():
            sample = {"t": time.time()}
            if self.pid:
                try:
                    root = psutil.Process(self.pid)
                    tree = [root, *root.children(recursive=True)]
                    cpu, rss = 0.0, 0
                    for proc in tree:
                        proc = processes.setdefault(proc.pid, proc)  # keeps cpu_percent's state
                        cpu += proc.cpu_percent(None)
                        rss += proc.memory_info().rss
                    sample.update(cpu_percent=cpu, rss_mib=rss / 2**20)
                except psutil.Error:
                    pass
            sample.update(gpu_samples())
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        usable = self.samples[1:] or self.samples  # cpu_percent's first reading is 0
        result = {}
        for key in ("cpu_percent", "rss_mib", "gpu_util_percent", "gpu_memory_mib"):
            values = [s[key] for s in usable if key in s]
            if values:
                result[key] = {"mean": float(np.mean(values)), "max": float(np.max(values))}
        return result


def gpu_samples() -> dict:
    try:
        query = "--query-gpu=utilization.gpu,memory.used"
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        return {}
    rows = [line.split(",") for line in out.stdout.strip().splitlines() if line.strip()]
    return {
        "gpu_util_percent": sum(float(r[0]) for r in rows) / len(rows),
        "gpu_memory_mib": sum(float(r[1]) for r in rows),
    }


def server_pid(host: str, port: int) -> int | None:
    """The local process listening on host:port (None for a remote server)."""
    import psutil

    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):
        return None
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid
    return None


def parse_duration(text: str) -> float:
    """'60s', '2m', '1h' or '90' -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)?", text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected seconds, e.g. 60s, 2m or 90")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


def parse_sweep(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: concurrency levels, each at least one user."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: expected user counts, e.g. 1,2,4,8") from None
    if not levels or min(levels) < 1:
        raise ValueError(f"{text!r}: expected positive user counts, e.g. 1,2,4,8")
    return levels


def run_sweep(
    base: LoadSpec,
    levels: list[int],
    out: Path,
    locust: Path,
    slo_ms: dict[str, float],
    dataset: str,
    on_level: Callable[[int, dict | None], None] = lambda *_: None,
) -> dict:
    """One locust run per concurrency level; returns the report (also written to `out`).

    `on_level(users, None)` is called as a level starts, `on_level(users, summary)`
    when it ends. The server's resources are sampled when it runs on this machine.
    """
    parsed = urlparse(base.url)
    pid = server_pid(parsed.hostname or "", parsed.port or 80)
    summaries = []
    for users in levels:
        on_level(users, None)
        started = time.monotonic()
        with ResourceSampler(pid) as sampler:
            records = read_records(run_locust(replace(base, users=users), out, locust))
        summary = {"users": users, **summarize(records, base.duration_s, slo_ms)}
        summary["resources"] = sampler.summary()
        summary["wall_s"] = time.monotonic() - started
        summaries.append(summary)
        on_level(users, summary)
    report = {
        "endpoint": base.url, "model": base.model, "dataset": dataset,
        "max_tokens": base.max_tokens, "ignore_eos": base.ignore_eos,
        "temperature": base.temperature, "duration_s": base.duration_s, "server_pid": pid,
        "levels": summaries,
    }  # fmt: skip
    write_report(out, report)
    return report


def headline(level: dict) -> str:
    """One line for a finished level: counts, throughput, TTFT and TPOT."""
    ttft, per_token = level.get("ttft_ms") or {}, level.get("tpot_ms") or {}
    text = (
        f"  {level['completed']} ok, {level['failed']} failed; "
        f"{level['request_throughput']:.2f} req/s, {level['output_throughput']:.1f} output tok/s"
    )
    if ttft:
        text += f"; TTFT mean {ttft['mean']:.0f} ms (p99 {ttft['p99']:.0f})"
    if per_token:
        text += f"; TPOT mean {per_token['mean']:.1f} ms"
    return text
