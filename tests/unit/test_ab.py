"""The live A/B pieces that need no server: arms, the split, the record, the report, monitor."""

import math
import re
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from deploy.gateway import (
    Arm,
    Exchange,
    Feedback,
    GatewayError,
    assign,
    conversation_key,
    parse_arm,
)
from deploy.monitor import Row, histogram_quantile, parse_metrics, table
from deploy.process import free_port
from medfactory.ab.recorder import StoreRecorder, exchanges_since, parse_since
from medfactory.ab.report import build_ab_report
from medfactory.cli import cli
from medfactory.review.errors import StoreError
from medfactory.store.db import open_store

# --- arms and the split ---------------------------------------------------------


def test_an_arm_is_parsed_with_its_model_and_weight():
    assert parse_arm("base=http://h:8000/v1/,model=tiny,weight=2.5") == Arm(
        "base", "http://h:8000", "tiny", 2.5
    )
    assert parse_arm("lora=https://h") == Arm("lora", "https://h", None, 1.0)


def test_an_arm_takes_replicas_and_an_index():
    arm = parse_arm("tuned=http://gpu1:8000/v1+http://gpu2:8000,model=lora,rag=guidelines,top=5")
    assert arm.endpoints == ("http://gpu1:8000", "http://gpu2:8000")
    assert (arm.model, arm.rag, arm.top) == ("lora", "guidelines", 5)
    plain = parse_arm("a=http://h")
    assert plain.endpoints == ("http://h",) and plain.rag is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("http://h:8000", "expected NAME=ENDPOINT"),
        ("a=", "expected NAME=ENDPOINT"),
        ("a=h:8000", "http:// or https://"),
        ("a=http://h,weight=0", "positive number"),
        ("a=http://h,weight=x", "positive number"),
        ("a=http://h,modle=x", "'modle=x' is not model=NAME, weight=W, rag=INDEX or top=K"),
        ("a=http://h,model=x,model=y", "each at most once"),
        ("a=http://h+http://h/v1", "a replica is listed twice"),
        ("a=http://h+gpu2:8000", "http:// or https://"),
        ("a=http://h,rag=g,top=0", "top must be a whole number"),
        ("a=http://h,top=2", "top=K goes with rag=INDEX"),
    ],
)
def test_a_wrong_arm_is_one_message_naming_it(text, says):
    with pytest.raises(GatewayError, match=f"--arm '{re.escape(text)}'.*{says}"):
        parse_arm(text)


def test_the_split_is_stable_and_follows_the_weights():
    arms = [Arm("a", "http://h", "m", 1), Arm("b", "http://h", "m", 3)]
    counts = Counter(assign("ab", f"user-{i}", arms).name for i in range(20_000))
    assert abs(counts["b"] / 20_000 - 0.75) < 0.015
    # Another experiment draws again: the same user may land elsewhere.
    moved = sum(
        assign("ab", f"user-{i}", arms) != assign("trial-2", f"user-{i}", arms) for i in range(400)
    )
    assert 100 < moved < 200  # 2 * 0.25 * 0.75 = 37.5 % expected


def test_the_hash_is_sha256_of_experiment_and_user_onto_cumulative_weights():
    import hashlib

    arms = [Arm("a", "http://h", weight=1), Arm("b", "http://h", weight=1), Arm("c", "http://h")]
    for user in ("alice", "Dr. 王", "x" * 300):
        digest = hashlib.sha256(f"ab\x00{user}".encode()).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64
        assert assign("ab", user, arms).name == "abc"[int(share * 3)]


def test_turns_of_one_chat_share_a_conversation_key():
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}]
    later = [*first, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    assert conversation_key("u", first) == conversation_key("u", later)
    assert conversation_key("u", first) != conversation_key("v", first)
    assert conversation_key("u", first) != conversation_key("u", [{"role": "user", "content": "x"}])


def test_a_gateway_whose_backend_is_down_refuses_to_start_naming_arm_and_address(tmp_path):
    port = free_port()
    result = CliRunner().invoke(
        cli,
        ["gateway", "--arm", f"lora=http://127.0.0.1:{port},model=m", "--port", str(free_port()),
         "--db", f"sqlite:///{tmp_path / 'ab.db'}"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"arm 'lora' (http://127.0.0.1:{port}): no server answers" in result.output
    assert "Traceback" not in result.output


# --- the record and the report --------------------------------------------------


def exchange(user, arm, completion_id, error=None, ttft=None, latency=1.0, tokens=5):
    return Exchange(
        "ab", user, arm, f"{arm}-model", "c-" + user, [{"role": "user", "content": "q"}],
        stream=ttft is not None, completion_id=completion_id, answer="a", finish_reason="stop",
        prompt_tokens=10, completion_tokens=tokens, ttft=ttft, latency=latency, error=error,
    )  # fmt: skip


@pytest.fixture
def recorder(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    arms = [Arm("base", "http://h", "m"), Arm("lora", "http://h", "l")]
    return StoreRecorder(store, "ab", arms)


def test_feedback_needs_the_users_own_completion_and_a_later_one_keeps_what_it_does_not_resend(
    recorder,
):
    recorder.record(exchange("alice", "lora", "c1"))
    assert recorder.feedback(Feedback("c1", "bob", 1, "", "")) is None
    assert recorder.feedback(Feedback("c9", "alice", 1, "", "")) is None
    assert recorder.feedback(Feedback("c1", "alice", 1, "", "")) == "lora"
    assert recorder.feedback(Feedback("c1", "alice", None, " better ", "")) == "lora"
    (row,) = exchanges_since(recorder.store, "ab")
    assert (row["rating"], row["correction"]) == (1, "better")
    recorder.feedback(Feedback("c1", "alice", -1, "", "too long"))
    (row,) = exchanges_since(recorder.store, "ab")
    assert (row["rating"], row["correction"], row["comment"]) == (-1, "better", "too long")


def test_assignments_survive_a_restart_of_the_recorder(recorder):
    recorder.assign("alice", "lora")
    recorder.assign("bob", "base")
    again = StoreRecorder(recorder.store, "ab", [Arm("base", "http://h", "m")])
    assert again.assignments() == {"alice": "lora", "bob": "base"}
    assert StoreRecorder(recorder.store, "other", []).assignments() == {}


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def test_the_report_counts_per_arm_and_its_intervals_match_the_formulas(recorder):
    rng = np.random.default_rng(3)
    thumbs = {"base": (12, 18), "lora": (25, 5)}  # up, down
    n = 0
    for arm, (up, down) in thumbs.items():
        for rating in [1] * up + [-1] * down + [None] * 4:
            n += 1
            user = f"{arm}-u{n % 7}"
            ttft = float(rng.uniform(0.05, 0.2)) if n % 2 else None
            recorder.record(exchange(user, arm, f"c{n}", ttft=ttft, latency=0.1 * (n % 10 + 1)))
            if rating is not None:
                recorder.feedback(Feedback(f"c{n}", user, rating, "fix" if n % 9 == 0 else "", ""))
    recorder.record(exchange("base-u1", "base", "c-err", error="HTTP 500: boom", latency=9.0))

    report = build_ab_report(recorder.store, "ab")
    base, lora = report["arms"]["base"], report["arms"]["lora"]
    assert (base["requests"], base["answers"], base["errors"]["count"]) == (35, 34, 1)
    assert (lora["thumbs_up"], lora["thumbs_down"], base["users"]) == (25, 5, 7)
    low, high = wilson(25, 30)
    assert lora["thumbs_up_rate"]["per_answer"]["low"] == pytest.approx(low)
    assert lora["thumbs_up_rate"]["per_answer"]["high"] == pytest.approx(high)
    low, high = wilson(1, 35)
    assert base["errors"]["per_answer"]["low"] == pytest.approx(low)
    rows = exchanges_since(recorder.store, "ab")
    base_latencies = [r["latency"] for r in rows if r["arm"] == "base" and not r["error"]]
    assert base["latency_s"]["p95"] == pytest.approx(np.percentile(base_latencies, 95))
    assert base["corrections"] + lora["corrections"] == sum(1 for r in rows if r["correction"])

    (comparison,) = report["comparisons"]
    assert (comparison["arm"], comparison["control"]) == ("lora", "base")
    diff = comparison["thumbs_up_rate"]["per_answer"]
    assert diff["difference"] == pytest.approx(25 / 30 - 12 / 30)
    # Newcomb's hybrid score interval, from the two Wilson intervals.
    (l1, u1), (l2, u2) = wilson(25, 30), wilson(12, 30)
    p1, p2 = 25 / 30, 12 / 30
    newcomb_low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    newcomb_high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert (diff["low"], diff["high"]) == pytest.approx((newcomb_low, newcomb_high))
    pooled = 37 / 60
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / 30))
    assert diff["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    clustered = comparison["thumbs_up_rate"]["per_clinician"]
    assert clustered["difference"] == pytest.approx(diff["difference"])
    assert clustered["method"] == "GEE" and 0 <= clustered["p_value"] <= 1

    since = build_ab_report(recorder.store, "ab", since=9e12)
    assert since["arms"]["base"]["requests"] == 0
    assert since["comparisons"][0]["thumbs_up_rate"]["per_answer"]["p_value"] is None
    assert since["comparisons"][0]["thumbs_up_rate"]["per_clinician"]["p_value"] is None


def heavy_user_record(recorder) -> None:
    """Ten clinicians a side rate half their answers up; one clinician of lora rates 100
    answers, 95 up. Per answer lora is far ahead; per clinician it is one person."""
    n = 0
    for arm, users in (
        ("base", [f"b{i}" for i in range(10)]),
        ("lora", [f"l{i}" for i in range(9)]),
    ):
        for user in users:
            for rating in (1, 1, -1, -1):
                n += 1
                recorder.record(exchange(user, arm, f"c{n}"))
                recorder.feedback(Feedback(f"c{n}", user, rating, "", ""))
    for i in range(100):
        n += 1
        recorder.record(exchange("heavy", "lora", f"c{n}"))
        recorder.feedback(Feedback(f"c{n}", "heavy", 1 if i < 95 else -1, "", ""))


def test_one_heavy_clinician_decides_per_answer_but_not_per_clinician(recorder, tmp_path):
    heavy_user_record(recorder)
    report = build_ab_report(recorder.store, "ab")
    rate = report["comparisons"][0]["thumbs_up_rate"]
    answer, clinician = rate["per_answer"], rate["per_clinician"]
    assert answer["difference"] == pytest.approx(113 / 136 - 0.5)
    assert answer["low"] > 0 and answer["p_value"] < 0.001  # "significant" per answer
    assert clinician["low"] <= 0 <= clinician["high"]  # not per clinician
    assert clinician["high"] - clinician["low"] > answer["high"] - answer["low"]
    assert clinician["method"] == "GEE" and clinician["p_value"] > 0.05
    lora = report["arms"]["lora"]["thumbs_up_rate"]
    assert lora["per_clinician"]["users"] == 10
    assert lora["per_clinician"]["high"] - lora["per_clinician"]["low"] > (
        lora["per_answer"]["high"] - lora["per_answer"]["low"]
    )

    from medfactory.ab.report import write_ab_report

    write_ab_report(recorder.store, "ab", tmp_path / "out")
    page = (tmp_path / "out" / "report.md").read_text()
    assert "per answer [95 %]" in page and "per clinician (clustered) [95 %]" in page
    assert "cluster bootstrap over users (2000 resamples, seed 0)" in page
    assert (tmp_path / "out" / "report.png").stat().st_size > 0


def test_the_cluster_bootstrap_resamples_users_as_a_plain_loop_does():
    """The vectorised bootstrap against its plain twin: draw users, pool their answers."""
    from medfactory.stats.clustered import Clusters, clustered_rates

    rng = np.random.default_rng(5)
    pairs = {
        arm: [(f"{arm}{u}", int(rng.random() < p)) for u in range(7) for _ in range(u + 1)]
        for arm, p in (("a", 0.4), ("b", 0.7))
    }
    arms = {arm: Clusters.of(found) for arm, found in pairs.items()}
    result = clustered_rates(arms, resamples=1000, seed=11)

    twin = np.random.default_rng(11)
    draws = {}
    for arm, clusters in arms.items():
        by_user = {u: [o for who, o in pairs[arm] if who == u] for u in clusters.users}
        users = list(clusters.users)
        picks = twin.integers(0, len(users), size=(1000, len(users)))
        rates = []
        for row in picks:
            answers = [o for i in row for o in by_user[users[i]]]
            rates.append(sum(answers) / len(answers))
        draws[arm] = np.array(rates)
        expected = np.percentile(draws[arm], [2.5, 97.5])
        assert [result["rates"][arm]["low"], result["rates"][arm]["high"]] == pytest.approx(
            expected
        )
    expected = np.percentile(draws["b"] - draws["a"], [2.5, 97.5])
    difference = result["differences"]["b"]
    assert [difference["low"], difference["high"]] == pytest.approx(expected)


def test_the_clustered_p_value_falls_back_to_a_permutation_where_gee_cannot_fit():
    from medfactory.stats.clustered import Clusters, clustered_p_value

    one_each = clustered_p_value(Clusters.of([("x", 1), ("x", 0)]), Clusters.of([("y", 1)] * 3))
    assert one_each == {"p_value": 1.0, "method": "permutation of users"}
    apart = clustered_p_value(  # every lora answer up, every base answer down: GEE separates
        Clusters.of([(f"l{i}", 1) for i in range(5)]), Clusters.of([(f"b{i}", 0) for i in range(5)])
    )
    assert apart["method"] == "permutation of users"
    assert apart["p_value"] == pytest.approx(2 / 252, abs=0.004)  # exact: 2 of C(10, 5)
    same = clustered_p_value(Clusters.of([("a", 1)]), Clusters.of([("b", 1)]))
    assert same["p_value"] == 1.0


def test_an_unknown_experiment_or_a_bad_since_is_one_message(recorder):
    with pytest.raises(StoreError, match="no A/B experiment 'nope'.*it has: ab.*--experiment ab"):
        build_ab_report(recorder.store, "nope")
    with pytest.raises(StoreError, match="--since 'yesterday'"):
        parse_since("yesterday")
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-12-01T00:00:00+00:00") == 1796083200.0


def test_the_experiment_is_experiment_everywhere_and_name_an_old_alias_with_a_warning(recorder):
    db = ["--db", str(recorder.store.engine.url)]
    recorder.record(exchange("alice", "lora", "c1"))
    recorder.feedback(Feedback("c1", "alice", 1, "", ""))
    runner = CliRunner()
    ok = runner.invoke(cli, ["ab", "report", "--experiment", "ab", "--json", *db])
    assert ok.exit_code == 0, ok.output
    old = runner.invoke(cli, ["ab", "report", "--name", "ab", "--json", *db])
    assert old.exit_code == 0, old.output
    assert "warning: --name ab is deprecated here; say --experiment ab" in old.stderr
    wrong = runner.invoke(cli, ["ab", "report", "--experiment", "abtest", *db])
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    assert "pass --experiment as given to `medfactory gateway`, e.g. --experiment ab" in (
        wrong.output
    )
    for command in (["gateway", "--arm", "a=http://127.0.0.1:1"], ["ab", "export", "--name", "x"]):
        page = runner.invoke(cli, [*command, "--help"]).output
        assert "--experiment" in page


def test_a_scripted_run_replaces_its_own_record_and_never_a_real_experiment(recorder):
    from medfactory.dev.abtest import replace_scripted_record

    recorder.record(exchange("clinician-01", "lora", "c1"))
    recorder.feedback(Feedback("c1", "clinician-01", 1, "", ""))
    replace_scripted_record(recorder.store, "ab")
    with pytest.raises(StoreError, match="no A/B experiment 'ab'"):
        exchanges_since(recorder.store, "ab")
    again = StoreRecorder(recorder.store, "ab", [Arm("lora", "http://h", "l")])
    again.record(exchange("dr-wang", "lora", "c2"))
    with pytest.raises(StoreError, match="users other than the scripted.*'dr-wang'.*--experiment"):
        replace_scripted_record(recorder.store, "ab")
    assert len(exchanges_since(recorder.store, "ab")) == 1


def test_one_name_per_concept_the_gateway_exchange_and_its_stored_row():
    from medfactory.store import db

    assert not hasattr(db, "Exchange") and db.ExchangeRow.__tablename__ == "exchanges"


# --- monitor --------------------------------------------------------------------

PAGE = """# TYPE t histogram
t_bucket{arm="a",le="0.1"} 2
t_bucket{arm="a",le="0.5"} 6
t_bucket{arm="a",le="1.0"} 10
t_bucket{arm="a",le="+Inf"} 10
t_count{arm="a"} 10
t_sum{arm="a"} 4.2
"""


def test_histogram_quantiles_interpolate_as_prometheus_does():
    samples = parse_metrics(PAGE)
    buckets = [
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "t_bucket"
    ]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (5 - 2) / 4)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * (9.5 - 6) / 4)
    assert histogram_quantile(0.99, [(0.1, 0), (float("inf"), 3)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 0), (float("inf"), 0)]) is None


def test_a_row_past_a_threshold_is_red():
    from rich.console import Console

    quiet = Row("gateway", "a", {"requests_per_s": 1.0, "error_rate": 0.01, "latency_p95_s": 2.0,
                                 "thumbs_up": 0, "thumbs_down": 0})  # fmt: skip
    failing = Row("gateway", "b", {**quiet.values, "error_rate": 0.2})
    slow = Row("gateway", "c", {**quiet.values, "latency_p95_s": 12.0})
    assert not quiet.alarming(0.05, 10)
    assert failing.alarming(0.05, None) and slow.alarming(None, 10)
    view = table([quiet, failing, slow], 0.05, 10, 5)
    assert [row.style for row in view.rows] == [None, "bold red", "bold red"]
    console = Console(record=True, width=160)
    console.print(view)
    assert "20.0%" in console.export_text()


def test_a_chat_page_without_its_gateway_or_a_gateway_on_a_taken_port_is_one_message(tmp_path):
    import socket

    chat = CliRunner().invoke(
        cli, ["chat", "--gateway", f"http://127.0.0.1:{free_port()}", "--port", str(free_port())]
    )
    assert chat.exit_code == 1 and "Traceback" not in chat.output
    assert "no gateway answers at" in chat.output and "`medfactory gateway`" in chat.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = CliRunner().invoke(
            cli, ["gateway", "--arm", "a=http://127.0.0.1:1", "--port", str(port),
                  "--db", f"sqlite:///{tmp_path / 'ab.db'}"],
        )  # fmt: skip
    assert (
        gateway.exit_code == 1 and f"port {port} on 127.0.0.1 is already in use" in gateway.output
    )


def test_a_store_error_never_quotes_what_was_said(tmp_path):
    """The store hides statement parameters, so a failed write cannot put a prompt in a log."""
    import sqlalchemy as sa

    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    with pytest.raises(sa.exc.IntegrityError) as error, store.session() as session:
        session.execute(
            sa.text("insert into arm_users (id, experiment_id, user, arm) values (1, 99, :u, 'a')"),
            {"u": "患者王某某的问题"},
        )
    assert "患者王某某" not in str(error.value)


def test_a_question_typed_while_an_answer_streams_is_kept_and_the_answer_is_the_history():
    from medfactory.ab.chat import create_chat_page

    class StreamingGateway:  # the gateway's stream, chunk by chunk, at the network boundary
        def stream(self, user, conversation, messages):
            for text in ("发", "发烧超过", "发烧超过三天请就医"):
                yield text, "chatcmpl-1", "a"

    page = create_chat_page(StreamingGateway(), lang="en")
    ask = next(block.fn for block in page.fns.values() if block.name == "ask")
    updates = list(ask("孩子发烧怎么办？", [], "Dr. Li", "conversation-1", {}, None))
    boxes = [update[1] for update in updates]
    assert boxes[0] == ""  # the question is taken from the box
    # every later update leaves the box as it is: the clinician may be typing there
    assert all(isinstance(box, dict) and "value" not in box for box in boxes[1:])
    asked = {"role": "user", "content": "孩子发烧怎么办？"}
    # the history the next question is sent with follows the stream, to the whole answer
    assert [update[2] for update in updates[1:]] == [
        [asked, {"role": "assistant", "content": text}]
        for text in ("发", "发烧超过", "发烧超过三天请就医", "发烧超过三天请就医")
    ]
    assert updates[-1][3] == {"1": "chatcmpl-1"}
