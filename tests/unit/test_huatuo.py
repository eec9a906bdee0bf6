import json

import pytest

from converters.huatuo import parse_huatuo_line
from converters.records import RecordError


def line(*turns) -> bytes:
    return json.dumps({"data": list(turns)}, ensure_ascii=False).encode()


GOOD = [
    # (input line, expected turns, trailing question dropped)
    (line("问：头痛怎么办？\n", "答：多休息。"), (("头痛怎么办？", "多休息。"),), False),
    (line("问:ASCII 冒号", "答:也可以"), (("ASCII 冒号", "也可以"),), False),
    (
        line("问：一", "答：二", "问：三\n", "答：四"),
        (("一", "二"), ("三", "四")),
        False,
    ),
    (line("问：一", "答：二", "问：没有回答的追问\n"), (("一", "二"),), True),
    (line("问：  前后空白  \n", "答：\n回答\n"), (("前后空白", "回答"),), False),
    (
        json.dumps({"data": ["问：额外键", "答：保留"], "id": 7}, ensure_ascii=False).encode(),
        (("额外键", "保留"),),
        False,
    ),
]


@pytest.mark.parametrize(("raw", "turns", "dropped"), GOOD)
def test_dialogues_are_read_with_prefixes_stripped(raw, turns, dropped):
    dialogue = parse_huatuo_line(raw)
    assert dialogue.turns == turns
    assert dialogue.dropped_trailing_question is dropped
    assert dialogue.system == ""


def test_system_prompt_is_carried():
    assert parse_huatuo_line(line("问：a", "答：b"), system="你是医生").system == "你是医生"


BAD = [
    (b'{"data": ["\xe9\x97\xae\xef\xbc\x9a\xff", "x"]}', "invalid_utf8"),
    (b'{"data": [', "invalid_json"),
    (b"not json", "invalid_json"),
    ('["问：a", "答：b"]'.encode(), "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (json.dumps({"dialogue": ["问：a", "答：b"]}).encode(), "no_data_list"),
    (json.dumps({"data": "问：a"}).encode(), "no_data_list"),
    (line("问：a", 42), "turn_not_string"),
    (line("问：a", None), "turn_not_string"),
    (line("问：a", "回答没有前缀"), "missing_role_prefix"),
    (line("问a", "答：b"), "missing_role_prefix"),
    (line("答：先回答", "问：后提问"), "answer_first"),
    (line("答：只有回答"), "answer_first"),
    (line("问：一", "问：二", "答：三"), "broken_alternation"),
    (line("问：一", "答：二", "答：三", "问：四"), "broken_alternation"),
    (line("问：   ", "答：b"), "empty_turn"),
    (line("问：a", "答：\n"), "empty_turn"),
    (line("问：只有问题"), "no_answered_question"),
    (line(), "no_answered_question"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_every_reject_reason(raw, reason):
    with pytest.raises(RecordError) as error:
        parse_huatuo_line(raw)
    assert error.value.reason == reason
    assert error.value.detail
