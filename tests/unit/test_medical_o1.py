import json

import pytest

from converters.medical_o1 import iter_json_array, parse_medical_o1_record
from converters.records import RecordError, SourceError

RECORD = {"Question": " Q? ", "Complex_CoT": "step 1\n\nstep 2", "Response": "Answer.\n"}

COT = [
    ("think", "<think>\nstep 1\n\nstep 2\n</think>\n\nAnswer."),
    ("huatuo", "## Thinking\n\nstep 1\n\nstep 2\n\n## Final Response\n\nAnswer."),
    ("drop", "Answer."),
]


@pytest.mark.parametrize(("cot", "answer"), COT)
def test_reasoning_goes_into_the_answer_in_the_chosen_style(cot, answer):
    dialogue = parse_medical_o1_record(RECORD, cot=cot, system="sys")
    assert dialogue.turns == (("Q?", answer),)
    assert dialogue.system == "sys"


BAD = [
    ("a string", "not_an_object"),
    ([RECORD], "not_an_object"),
    ({"Question": "q", "Response": "r"}, "missing_field"),
    ({"Question": "q", "Complex_CoT": "c", "Response": ["r"]}, "field_not_string"),
    ({"Question": None, "Complex_CoT": "c", "Response": "r"}, "field_not_string"),
    ({"Question": "  ", "Complex_CoT": "c", "Response": "r"}, "empty_turn"),
    ({"Question": "q", "Complex_CoT": "c", "Response": ""}, "empty_turn"),
]


@pytest.mark.parametrize(("record", "reason"), BAD)
def test_every_reject_reason(record, reason):
    with pytest.raises(RecordError) as error:
        parse_medical_o1_record(record)
    assert error.value.reason == reason


def test_array_elements_come_with_their_line_numbers(tmp_path):
    path = tmp_path / "o1.json"
    path.write_text(json.dumps([RECORD, {"x": 1}, RECORD], indent=2))
    lines = path.read_text().splitlines()
    found = list(iter_json_array(path))
    assert [element for _, element in found] == [RECORD, {"x": 1}, RECORD]
    for line_no, _ in found:
        assert lines[line_no - 1].strip() == "{"


def test_real_upstream_records_parse(fixtures_dir):
    found = list(iter_json_array(fixtures_dir / "medical_o1" / "medical_o1_sft_en_first2.json"))
    assert [line for line, _ in found] == [2, 7]
    for _, record in found:
        ((question, answer),) = parse_medical_o1_record(record).turns
        assert question == record["Question"].strip()
        assert answer.startswith("<think>\n" + record["Complex_CoT"].strip()[:40])
        assert answer.endswith("\n</think>\n\n" + record["Response"].strip())


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"Question": "q"}', "line 1 column 1: expected '['"),
        ('[\n  {"Question": "q"},\n  {"Question": \n', "line 4 column 1: Expecting value"),
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
    ],
)
def test_a_broken_file_is_one_clear_error(tmp_path, text, where):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SourceError) as error:
        list(iter_json_array(path))
    assert str(path) in str(error.value)
    assert where in str(error.value)


def test_broken_utf8_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"Question": "\xff"}]')
    with pytest.raises(SourceError, match="byte 15 is not UTF-8"):
        list(iter_json_array(path))
