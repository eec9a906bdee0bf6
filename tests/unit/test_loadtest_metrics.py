"""Load-test metrics from per-request records, as `vllm bench serve` defines them."""

import pytest

from deploy.loadtest import parse_duration, parse_slo, parse_sweep, summarize, tpot
from deploy.loadtest_report import markdown


def record(start, ttft, e2el, tokens, itl=(0.01,), prompt=20):
    return {
        "start": start, "ok": True, "ttft": ttft, "e2el": e2el, "itl": list(itl),
        "prompt_tokens": prompt, "completion_tokens": tokens,
    }  # fmt: skip


RECORDS = [
    record(100.0, 0.1, 1.1, 11),  # TPOT (1.1 - 0.1) / 10 = 100 ms
    record(100.5, 0.3, 2.3, 21),  # TPOT 100 ms
    record(101.0, 0.2, 1.0, 1),  # one token: no TPOT
    {"start": 101.5, "ok": False, "error_type": "ConnectionError"},
    {"start": 101.6, "ok": False, "error_type": "HTTP 500"},
    {"start": 101.7, "ok": False, "error_type": "ConnectionError"},
]


def test_summary_follows_vllm_bench_definitions():
    summary = summarize(RECORDS, duration_s=60, slo_ms={})
    # Throughput is over the span of the requests: 100.0 -> 102.8 (100.5 + 2.3).
    assert summary["duration_s"] == pytest.approx(2.8)
    assert summary["completed"] == 3 and summary["failed"] == 3
    assert summary["failures_by_type"] == {"ConnectionError": 2, "HTTP 500": 1}
    assert summary["output_tokens"] == 33
    assert summary["output_throughput"] == pytest.approx(33 / 2.8)
    assert summary["request_throughput"] == pytest.approx(3 / 2.8)
    assert summary["total_token_throughput"] == pytest.approx((33 + 60) / 2.8)
    assert summary["tpot_ms"]["mean"] == pytest.approx(100.0)
    assert summary["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert summary["ttft_ms"]["median"] == pytest.approx(200.0)
    assert summary["e2el_ms"]["p99"] == pytest.approx(1100 + 0.98 * 1200)  # numpy, linear
    assert summary["itl_ms"]["mean"] == pytest.approx(10.0)


def test_goodput_counts_requests_meeting_every_slo():
    summary = summarize(RECORDS, duration_s=60, slo_ms={"ttft": 250, "tpot": 150})
    assert summary["goodput"] == pytest.approx(2 / 2.8)  # the 300 ms TTFT one misses


def test_no_successful_request_keeps_the_fallback_duration():
    summary = summarize(RECORDS[3:], duration_s=60, slo_ms={})
    assert summary["completed"] == 0 and summary["ttft_ms"] is None
    assert summary["request_throughput"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ttft=500,tpot=50", {"ttft": 500.0, "tpot": 50.0}), ("e2el=2000", {"e2el": 2000.0})],
)
def test_parse_slo(text, expected):
    assert parse_slo(text) == expected


@pytest.mark.parametrize("text", ["ttft", "latency=5", "ttft=fast"])
def test_parse_slo_rejects_unknown_names_and_values(text):
    with pytest.raises(ValueError):
        parse_slo(text)


def test_durations_and_sweeps():
    assert parse_duration("60s") == 60 and parse_duration("2m") == 120
    assert parse_duration("90") == 90
    assert parse_sweep("1,2,4") == [1, 2, 4]
    for bad in ("1,x", "0,2"):
        with pytest.raises(ValueError, match="user counts"):
            parse_sweep(bad)
    with pytest.raises(ValueError, match="expected seconds"):
        parse_duration("soon")


def test_tpot_excludes_the_first_token_and_needs_two():
    assert tpot(e2el=1.0, ttft=0.2, tokens=5) == pytest.approx(0.2)
    assert tpot(e2el=1.0, ttft=0.2, tokens=1) is None


def test_markdown_report_shows_each_level_and_the_definitions():
    level = {"users": 2, **summarize(RECORDS, 60, {}), "resources": {}}
    report = {
        "endpoint": "http://x", "model": "m", "dataset": "d_test", "max_tokens": 16,
        "ignore_eos": True, "temperature": 0.0, "duration_s": 60, "levels": [level],
    }  # fmt: skip
    text = markdown(report, [])
    assert "TTFT is the time to the first non-empty content chunk" in text
    assert "| 2 | 3 | 3 | 1.07 | 11.8 | 200.0 /" in text
    assert "ConnectionError: 2" in text
