from converters.formats import dataset_entry, to_alpaca, to_sharegpt
from converters.records import Dialogue

MULTI = Dialogue(turns=(("q1", "a1"), ("q2", "a2")), system="sys")
SINGLE = Dialogue(turns=(("q", "a"),))


def test_alpaca_keeps_earlier_turns_in_history():
    assert to_alpaca(MULTI) == {
        "instruction": "q2",
        "input": "",
        "output": "a2",
        "system": "sys",
        "history": [["q1", "a1"]],
    }
    assert to_alpaca(SINGLE) == {"instruction": "q", "input": "", "output": "a", "history": []}


def test_sharegpt_alternates_human_and_gpt():
    assert to_sharegpt(MULTI) == {
        "conversations": [
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": "a2"},
        ],
        "system": "sys",
    }


def test_alpaca_entry_declares_history_and_system():
    entry = dataset_entry("alpaca", "x.jsonl", with_system=True)
    assert entry["formatting"] == "alpaca"
    assert entry["columns"]["history"] == "history"
    assert entry["columns"]["system"] == "system"
    assert "system" not in dataset_entry("alpaca", "x.jsonl", with_system=False)["columns"]


def test_sharegpt_entry_names_the_tags():
    entry = dataset_entry("sharegpt", "x.jsonl", with_system=False)
    assert entry == {
        "file_name": "x.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
            "system_tag": "system",
        },
    }
