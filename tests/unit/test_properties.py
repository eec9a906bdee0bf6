"""Whatever bytes arrive, the converters neither crash nor lose a record."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters.convert import ConvertOptions, convert

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


@SETTINGS
@given(st.lists(LINE, max_size=30))
def test_huatuo_any_bytes(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("h")
    source = folder / "in.jsonl"
    source.write_bytes(b"\n".join(lines))
    summary = convert("huatuo", [source], ConvertOptions("sharegpt", "p", folder, workers=1))
    records = sum(1 for line in lines if line.strip())
    assert summary.read == records
    assert summary.read == summary.accounted


@SETTINGS
@given(st.lists(O1_RECORD, max_size=20), st.sampled_from(["think", "huatuo", "drop"]))
def test_medical_o1_any_records(tmp_path_factory, records, cot):
    folder = tmp_path_factory.mktemp("m")
    source = folder / "in.json"
    source.write_text(json.dumps(records, ensure_ascii=False))
    summary = convert(
        "medical-o1", [source], ConvertOptions("alpaca", "p", folder, cot=cot, workers=1)
    )
    assert summary.read == len(records) == summary.accounted
