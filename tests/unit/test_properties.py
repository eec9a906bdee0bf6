"""Whatever bytes arrive, the converters neither crash nor lose a record."""

import json
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters.clean import fold, fold_batch, scrub_pii
from converters.convert import ConvertOptions, NothingConverted, convert
from converters.huatuo import _parse_carefully, parse_huatuo_line
from converters.records import RecordError

TURN = st.builds(
    lambda role, colon, text: role + colon + text,
    st.sampled_from(["问", "答", "Q", ""]),
    st.sampled_from(["：", ":", ""]),
    st.text(max_size=30),
)
JSON_LINE = st.builds(
    lambda turns: json.dumps({"data": turns}, ensure_ascii=False).encode(),
    st.lists(st.one_of(TURN, st.integers(), st.none()), max_size=6),
)
LINE = st.one_of(st.binary(max_size=80), JSON_LINE).map(lambda b: b.replace(b"\n", b" "))
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
O1_RECORD = st.one_of(
    JSON_VALUE,
    st.fixed_dictionaries(
        {
            "Question": st.text(max_size=30),
            "Complex_CoT": st.text(max_size=30),
            "Response": st.text(max_size=30),
        }
    ),
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def convert_or_summary(*args):
    """The summary, also of an input of which nothing could be converted."""
    try:
        return convert(*args)
    except NothingConverted as failure:
        assert failure.summary.written == {"train": 0, "val": 0, "test": 0}
        return failure.summary


@SETTINGS
@given(st.lists(LINE, max_size=30))
def test_huatuo_any_bytes(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("h")
    source = folder / "in.jsonl"
    source.write_bytes(b"\n".join(lines))
    summary = convert_or_summary(
        "huatuo", [source], ConvertOptions("sharegpt", "p", folder, workers=1)
    )
    records = sum(1 for line in lines if line.strip())
    assert summary.read == records
    assert summary.read == summary.accounted


@SETTINGS
@given(st.lists(O1_RECORD, max_size=20), st.sampled_from(["think", "huatuo", "drop"]))
def test_medical_o1_any_records(tmp_path_factory, records, cot):
    folder = tmp_path_factory.mktemp("m")
    source = folder / "in.json"
    source.write_text(json.dumps(records, ensure_ascii=False))
    summary = convert_or_summary(
        "medical-o1", [source], ConvertOptions("alpaca", "p", folder, cot=cot, workers=1)
    )
    assert summary.read == len(records) == summary.accounted


def _parsed_or_reason(parse, *args):
    try:
        return parse(*args)
    except RecordError as error:
        return error.reason


SHORT_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "\n", "\u3000"]))
ALTERNATING = st.builds(
    lambda pairs, trailing: [turn for pair in pairs for turn in pair] + trailing,
    st.lists(
        st.tuples(
            st.builds(str.__add__, st.sampled_from(["问：", "问:"]), SHORT_TEXT),
            st.builds(str.__add__, st.sampled_from(["答：", "答:"]), SHORT_TEXT),
        ),
        max_size=3,
    ),
    st.lists(st.builds(str.__add__, st.just("问："), SHORT_TEXT), max_size=1),
)


@SETTINGS
@given(
    st.one_of(ALTERNATING, st.lists(st.one_of(TURN, st.integers(), st.none()), max_size=6)),
    st.booleans(),
)
def test_huatuo_fast_path_agrees_with_the_careful_one(turns, as_object):
    """The one-pass parse of well-formed lines gives what the careful checks give."""
    record = {"data": turns} if as_object else turns
    raw = json.dumps(record, ensure_ascii=False).encode()
    assert _parsed_or_reason(parse_huatuo_line, raw) == _parsed_or_reason(
        _parse_carefully, record, ""
    )


PII_LIKE = st.builds(
    lambda parts: "".join(parts),
    st.lists(
        st.one_of(
            st.sampled_from(
                ["@", "www.", "://", "http", "-", " ", "(", "）", "+86", "\x01", "\x00"]
            ),
            st.text("0123456789０１２３٤٥", min_size=1, max_size=12),
            st.text(max_size=6),
        ),
        max_size=8,
    ),
)


@SETTINGS
@given(st.lists(PII_LIKE, max_size=8))
def test_fold_batch_matches_fold_and_flags_every_identifier(texts):
    """Batched, each text folds as it does alone; a text the scrubber would change is flagged."""
    keys, suspect = fold_batch(texts)
    assert [str(key, "utf-16-le", "surrogatepass") for key in keys] == [fold(t) for t in texts]
    for text, flagged in zip(texts, suspect, strict=True):
        if scrub_pii(text, Counter()) != text:
            assert flagged, text
