"""Registered splits read back as chat messages, as LLaMA-Factory would feed them."""

import pytest

from converters.conversations import load_conversations
from converters.convert import ConvertOptions, convert
from converters.registry import RegistryError

DIALOGUE = '{"data": ["问：头痛三天了", "答：有发烧吗？", "问：没有", "答：建议休息观察。"]}\n'


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt"])
def test_both_formats_give_the_same_messages_with_system_and_history(tmp_path, fmt):
    source = tmp_path / "in.jsonl"
    source.write_text(DIALOGUE, encoding="utf-8")
    options = ConvertOptions(
        dataset_dir=tmp_path, fmt=fmt, name="d", split=(1.0,), system="你是医生。", workers=1
    )
    convert("huatuo", [source], options)
    [conversation] = load_conversations(tmp_path, "d_train")
    assert conversation.messages == [
        {"role": "system", "content": "你是医生。"},
        {"role": "user", "content": "头痛三天了"},
        {"role": "assistant", "content": "有发烧吗？"},
        {"role": "user", "content": "没有"},
    ]
    assert conversation.reference == "建议休息观察。"


def test_alpaca_input_is_joined_to_the_instruction_like_llamafactory(tmp_path):
    record = '[{"instruction": "翻译", "input": "fever", "output": "发热"}]'
    (tmp_path / "a.json").write_text(record)
    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"}}')
    [conversation] = load_conversations(tmp_path, "a")
    assert conversation.messages == [{"role": "user", "content": "翻译\nfever"}]


def test_unknown_dataset_lists_the_registered_ones(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"}}')
    with pytest.raises(RegistryError, match=r"no dataset 'b' \(registered: a\)"):
        load_conversations(tmp_path, "b")


def test_record_not_matching_its_entry_names_the_line(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"conversations": [{"from": "human", "value": "q"}]}\n')
    (tmp_path / "dataset_info.json").write_text(
        '{"s": {"file_name": "s.jsonl", "formatting": "sharegpt"}}'
    )
    with pytest.raises(RegistryError, match=r"s.jsonl:1: .*last message is not an answer"):
        load_conversations(tmp_path, "s")
