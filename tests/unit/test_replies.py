"""Parsed replies from a model: asked again once, kept by key, a cut-short file survives."""

import json

from openai_standin import StandIn, last_user_text

from deploy.client import Endpoint
from deploy.replies import ParsedReplies, reply_key


def parse_number(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def test_a_reply_is_asked_again_once_then_kept_and_a_cut_short_line_costs_only_itself(tmp_path):
    replies = {"seven": ["7"], "garbled": ["no", "still no"], "late": ["nope", "5"]}
    asked: dict[str, int] = {}

    def reply(body: dict) -> str:
        word = last_user_text(body)
        asked[word] = asked.get(word, 0) + 1
        return replies[word][asked[word] - 1]

    path = tmp_path / "replies.jsonl"
    path.write_text(json.dumps({"key": reply_key("old"), "value": 1}) + '\n{"key": "cut sh')
    with StandIn(reply) as server:
        endpoint = Endpoint(server.url)
        endpoint.check()
        first = ParsedReplies(endpoint, path)
        assert first.ask(reply_key("old"), "old", parse_number, keep_failures=True) == (1, True)
        assert first.ask(reply_key("seven"), "seven", parse_number, keep_failures=True) == (
            7,
            False,
        )
        assert first.ask(reply_key("late"), "late", parse_number, keep_failures=False) == (5, False)
        assert first.ask(reply_key("garbled"), "garbled", parse_number, keep_failures=False) == (
            None, False,
        )  # fmt: skip
        assert first.asked == 1 + 2 + 2 and asked == {"seven": 1, "late": 2, "garbled": 2}

        again = ParsedReplies(endpoint, path)  # the cut-short line did not swallow "seven"
        assert again.kept == {reply_key("old"): 1, reply_key("seven"): 7, reply_key("late"): 5}
        replies["garbled"] = ["3"]
        asked["garbled"] = 0  # not kept: asked again next run
        assert again.ask(reply_key("garbled"), "garbled", parse_number, keep_failures=False) == (
            3, False,
        )  # fmt: skip
        assert again.asked == 1
