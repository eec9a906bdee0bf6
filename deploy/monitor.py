"""`monitor`: vLLM's and the gateway's Prometheus metrics, read every few seconds.

Each refresh scrapes `/metrics`, and every figure is over the last interval
(counter and histogram bucket differences between two scrapes), the way a
Prometheus `rate()` and `histogram_quantile()` would show it; gauges are read
as they are. Quantiles interpolate inside a bucket, as Prometheus does.
"""

from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

VLLM = "vllm"
GATEWAY = "gateway"
REPLICA = "replica"  # one server of a gateway arm
FINISH_REASONS = ("stop", "length", "abort", "error")
CSV_COLUMNS = (
    "time", "source", "name", "requests_per_s", "errors_per_s", "error_rate", "running",
    "waiting", "kv_cache_usage", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s",
    "thumbs_up", "thumbs_down", "finished", "healthy",
)  # fmt: skip


class MonitorError(RuntimeError):
    pass


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(url: str, api_key: str | None = None, timeout: float = 5.0) -> Samples:
    base = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        reply = requests.get(f"{base}/metrics", headers=headers, timeout=timeout)
    except requests.RequestException:
        raise MonitorError(f"no metrics at {base}/metrics: nothing answers there") from None
    if reply.status_code != 200:
        raise MonitorError(f"{base}/metrics answered HTTP {reply.status_code}; check the key")
    return parse_metrics(reply.text)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # the top finite bound, as Prometheus answers
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _group(samples: Samples, name: str, key: str) -> dict[str, dict[tuple, float]]:
    """Samples of metric `name` grouped by the value of label `key`."""
    grouped: dict[str, dict[tuple, float]] = defaultdict(dict)
    for (sample, labels), value in samples.items():
        if sample == name:
            found = dict(labels)
            if key in found:
                grouped[found[key]][labels] = value
    return grouped


def _sum(samples: Samples, name: str, key: str, value: str, **where: str) -> float:
    total = 0.0
    for (sample, labels), number in samples.items():
        found = dict(labels)
        if (
            sample == name
            and found.get(key) == value
            and all(found.get(k) == v for k, v in where.items())
        ):
            total += number
    return total


def _delta(now: Samples, before: Samples, name: str, key: str, value: str, **where) -> float:
    return _sum(now, name, key, value, **where) - _sum(before, name, key, value, **where)


def _buckets(now: Samples, before: Samples, name: str, key: str, value: str) -> list:
    """(le, count in the interval) of one labelled histogram; summed over other labels."""
    counts: dict[float, float] = defaultdict(float)
    for (sample, labels), number in now.items():
        found = dict(labels)
        if sample == f"{name}_bucket" and found.get(key) == value:
            counts[float(found["le"])] += number - before.get((sample, labels), 0.0)
    return sorted(counts.items())


@dataclass
class Row:
    source: str
    name: str  # vLLM's model name or the gateway's arm
    values: dict = field(default_factory=dict)

    def alarming(self, max_error_rate: float | None, max_p95: float | None) -> bool:
        rate = self.values.get("error_rate")
        p95 = self.values.get("latency_p95_s")
        return bool(
            (max_error_rate is not None and rate is not None and rate > max_error_rate)
            or (max_p95 is not None and p95 is not None and p95 > max_p95)
        )


def vllm_rows(now: Samples, before: Samples, seconds: float) -> list[Row]:
    rows = []
    for model in sorted(_group(now, "vllm:num_requests_running", "model_name")):

        def delta(name: str, model=model, **where: str) -> float:
            return _delta(now, before, name, "model_name", model, **where)

        finished = {
            r: delta("vllm:request_success_total", finished_reason=r) for r in FINISH_REASONS
        }
        total = sum(delta("vllm:request_success_total", finished_reason=r) for r in _reasons(now))
        errors = finished["error"] + finished["abort"]
        ttft = _buckets(now, before, "vllm:time_to_first_token_seconds", "model_name", model)
        e2e = _buckets(now, before, "vllm:e2e_request_latency_seconds", "model_name", model)
        rows.append(Row(VLLM, model, {
            "requests_per_s": total / seconds, "errors_per_s": errors / seconds,
            "error_rate": errors / total if total else None,
            "running": _sum(now, "vllm:num_requests_running", "model_name", model),
            "waiting": _sum(now, "vllm:num_requests_waiting", "model_name", model),
            "kv_cache_usage": _sum(now, "vllm:kv_cache_usage_perc", "model_name", model),
            "ttft_p50_s": histogram_quantile(0.5, ttft),
            "ttft_p95_s": histogram_quantile(0.95, ttft),
            "latency_p50_s": histogram_quantile(0.5, e2e),
            "latency_p95_s": histogram_quantile(0.95, e2e),
            "finished": " ".join(f"{r}={finished[r]:.0f}" for r in FINISH_REASONS),
        }))  # fmt: skip
    return rows


def _reasons(samples: Samples) -> set[str]:
    return {
        dict(labels)["finished_reason"]
        for (name, labels) in samples
        if name == "vllm:request_success_total"
    }


def gateway_rows(now: Samples, before: Samples, seconds: float) -> list[Row]:
    prefix = "medfactory_gateway_"
    rows = []
    for arm in sorted(_group(now, f"{prefix}requests_total", "arm")):

        def delta(name: str, arm=arm, **where: str) -> float:
            return _delta(now, before, prefix + name, "arm", arm, **where)

        requests_, errors = delta("requests_total"), delta("errors_total")
        ttft = _buckets(now, before, f"{prefix}time_to_first_token_seconds", "arm", arm)
        latency = _buckets(now, before, f"{prefix}request_latency_seconds", "arm", arm)
        rows.append(Row(GATEWAY, arm, {
            "requests_per_s": requests_ / seconds, "errors_per_s": errors / seconds,
            "error_rate": errors / requests_ if requests_ else None,
            "ttft_p50_s": histogram_quantile(0.5, ttft),
            "ttft_p95_s": histogram_quantile(0.95, ttft),
            "latency_p50_s": histogram_quantile(0.5, latency),
            "latency_p95_s": histogram_quantile(0.95, latency),
            "thumbs_up": _sum(now, f"{prefix}feedback_total", "arm", arm, rating="up"),
            "thumbs_down": _sum(now, f"{prefix}feedback_total", "arm", arm, rating="down"),
        }))  # fmt: skip
    return rows + replica_rows(now, before, seconds)


def replica_rows(now: Samples, before: Samples, seconds: float) -> list[Row]:
    """A row per replica of the arms that have several: attempts, failures, in flight, up."""
    prefix = "medfactory_gateway_replica_"
    grouped = _group(now, f"{prefix}requests_total", "arm")
    rows = []
    for arm in sorted(grouped):
        urls = sorted({dict(labels)["replica"] for labels in grouped[arm]})
        if len(urls) < 2:
            continue
        for url in urls:

            def delta(name: str, url=url, arm=arm) -> float:
                return _delta(now, before, prefix + name, "replica", url, arm=arm)

            sent, failed = delta("requests_total"), delta("errors_total")
            rows.append(Row(REPLICA, f"{arm} {url}", {
                "requests_per_s": sent / seconds, "errors_per_s": failed / seconds,
                "error_rate": failed / sent if sent else None,
                "running": _sum(now, f"{prefix}in_flight", "replica", url, arm=arm),
                "healthy": _sum(now, f"{prefix}healthy", "replica", url, arm=arm) == 1,
            }))  # fmt: skip
    return rows


class Monitor:
    """Scrapes the sources; `refresh()` returns the rows of the last interval."""

    def __init__(self, endpoint: str | None, gateway: str | None, api_key: str | None = None,
                 gateway_api_key: str | None = None, csv_path: Path | None = None):  # fmt: skip
        if not endpoint and not gateway:
            raise MonitorError("nothing to watch: pass --endpoint (vLLM) and/or --gateway")
        self.sources = []
        if endpoint:
            self.sources.append((VLLM, endpoint, api_key, vllm_rows))
        if gateway:
            self.sources.append((GATEWAY, gateway, gateway_api_key, gateway_rows))
        self.before = {name: scrape(url, key) for name, url, key, _ in self.sources}
        self.at = time.time()
        self.csv_path = csv_path
        if csv_path and not csv_path.exists():
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            with csv_path.open("w", newline="") as handle:
                csv.writer(handle).writerow(CSV_COLUMNS)

    def refresh(self) -> list[Row]:
        now_at = time.time()
        seconds = max(now_at - self.at, 1e-6)
        rows = []
        for name, url, key, rows_of in self.sources:
            now = scrape(url, key)
            rows += rows_of(now, self.before[name], seconds)
            self.before[name] = now
        self.at = now_at
        if self.csv_path:
            with self.csv_path.open("a", newline="") as handle:
                writer = csv.writer(handle)
                for row in rows:
                    values = {"time": f"{now_at:.3f}", "source": row.source, "name": row.name}
                    values |= row.values
                    writer.writerow(["" if values.get(c) is None else values.get(c, "")
                                     for c in CSV_COLUMNS])  # fmt: skip
        return rows

    def run(self, interval: float, iterations: int | None, show) -> list[Row] | None:
        """Refresh every `interval` seconds, `show`ing each refresh's rows, until
        `iterations` or Ctrl-C; the last rows (None when there was none)."""
        rows, done = None, 0
        try:
            while iterations is None or done < iterations:
                time.sleep(interval)
                rows = self.refresh()
                done += 1
                show(rows)
        except KeyboardInterrupt:
            pass
        return rows


def table(rows: list[Row], max_error_rate: float | None, max_p95: float | None, interval: float):
    """A rich table of the rows; a row past a threshold is red."""
    from rich.table import Table

    view = Table(title=f"medfactory monitor (last {interval:g} s)", expand=False)
    for column in ("source", "model / arm", "req/s", "errors", "running", "waiting", "KV cache",
                   "TTFT p50/p95 ms", "latency p50/p95 ms", "thumbs up/down"):  # fmt: skip
        view.add_column(column)

    def ms(value):
        return "-" if value is None else f"{value * 1000:.0f}"

    for row in rows:
        v = row.values
        rate = v.get("error_rate")
        down = row.source == REPLICA and not v.get("healthy")
        view.add_row(
            row.source + (" (out)" if down else ""), row.name, f"{v['requests_per_s']:.2f}",
            "-" if rate is None else f"{rate:.1%}",
            _plain(v.get("running")), _plain(v.get("waiting")),
            "-" if v.get("kv_cache_usage") is None else f"{v['kv_cache_usage']:.0%}",
            f"{ms(v.get('ttft_p50_s'))} / {ms(v.get('ttft_p95_s'))}",
            f"{ms(v.get('latency_p50_s'))} / {ms(v.get('latency_p95_s'))}",
            f"{v['thumbs_up']:.0f} / {v['thumbs_down']:.0f}" if row.source == GATEWAY else "-",
            style="bold red" if down or row.alarming(max_error_rate, max_p95) else None,
        )  # fmt: skip
    return view


def _plain(value) -> str:
    return "-" if value is None else f"{value:.0f}"
