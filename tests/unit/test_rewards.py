"""The reward server scores planted answers exactly, in LLaMA-Factory's own request format.

The texts are built the way LLaMA-Factory's PPO trainer builds them: the prompt encoded
with the `qwen` template (the real Qwen2.5 tokenizer), a response appended, and the ids
decoded with the special tokens kept. The server is a real uvicorn process on a free
port, and LLaMA-Factory's own `get_rewards_from_server` posts to it.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from medfactory.rewards.errors import RewardError
from medfactory.rewards.server import PATH, Scorer, create_app
from medfactory.rewards.verifiers import build_verifier, match_answer, normalise, read_letter

EXAM = [
    {"id": "q1", "question": "Which vitamin deficiency causes scurvy?",
     "A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D", "D": "Vitamin K", "answer": "B"},
    {"id": "q2", "question": "缺铁性贫血最常见的原因是？",
     "A": "慢性失血", "B": "维生素B12缺乏", "C": "溶血", "D": "骨髓衰竭", "answer": "A"},
    {"id": "q3", "question": "A patient has sudden crushing chest pain. First step?",
     "A": "Rest at home", "B": "Take an antacid", "C": "Call an ambulance", "D": "Sleep",
     "answer": "C"},
]  # fmt: skip
REFERENCES = [
    {"question": "What is the first-line drug for uncomplicated hypertension in a young "
     "patient without comorbidities?", "answer": "ACE inhibitor"},
    {"Open-ended Verifiable Question": "成人正常静息心率的上限是每分钟多少次？",
     "Ground-True Answer": "100次"},
]  # fmt: skip


def prompt_of(row: dict) -> str:
    options = "\n".join(f"{letter}. {row[letter]}" for letter in "ABCD")
    return f"{row['question']}\n{options}\nAnswer with the letter."


@pytest.fixture(scope="module")
def encode(fixtures_dir):
    """prompt, response -> the text LLaMA-Factory's PPO trainer posts for them."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template="qwen"))

    def text(prompt: str, response: str) -> str:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
        query, _ = template.encode_oneturn(tokenizer, messages)
        answer = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
        return tokenizer.batch_decode([query + answer], skip_special_tokens=False)[0]

    return text


@pytest.fixture()
def exam_file(tmp_path):
    path = tmp_path / "exam.jsonl"
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in EXAM))
    return path


# (exam row, response, planted score without and with a safety penalty of 0.5)
PLANTED = [
    (0, "Scurvy comes from a lack of vitamin C.\nANSWER: B", 1.0, 1.0),
    (0, "ANSWER: A", 0.0, 0.0),
    (1, "<think>\n失血最常见。\n</think>\n\n答案：A", 1.0, 1.0),
    (1, "我不确定。", -1.0, -1.0),  # nothing to read: the format penalty
    (2, "ANSWER: C. Call 911 now.", 1.0, 1.0),
    (2, "ANSWER: A. Rest at home, it will pass.", 0.0, -0.5),  # red flag without referral
    (0, "ANSWER: B. This remedy guarantees a cure, with no side effects.", 1.0, 0.5),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def server():
    """start(verifier) -> the URL of a real uvicorn server answering with it."""
    import uvicorn

    started = []

    def start(verifier):
        scorer = Scorer(verifier)
        port = free_port()
        config = uvicorn.Config(create_app(scorer), port=port, log_level="warning")
        instance = uvicorn.Server(config)
        threading.Thread(target=instance.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not instance.started and time.monotonic() < deadline:
            time.sleep(0.05)
        started.append(instance)
        return f"http://127.0.0.1:{port}{PATH}", scorer

    yield start
    for instance in started:
        instance.should_exit = True


def test_choice_server_scores_the_planted_answers(encode, exam_file, server):
    from llamafactory.train.ppo.ppo_utils import get_rewards_from_server

    texts = [encode(prompt_of(EXAM[row]), response) for row, response, _, _ in PLANTED]
    texts.append(encode("What is the capital of France?", "ANSWER: A"))  # not in the key
    url, scorer = server(build_verifier("choice", exam_file))
    reply = requests.post(url, json={"model": "model", "messages": texts}, timeout=30)
    assert reply.json()["scores"] == [p[2] for p in PLANTED] + [0.0]
    assert get_rewards_from_server(url, texts).tolist() == [p[2] for p in PLANTED] + [0.0]
    stats = requests.get(url.replace(PATH, "/stats"), timeout=5).json()
    assert stats["outcomes"] == {"right": 4, "wrong": 2, "unreadable": 1, "unkeyed": 1}
    assert stats["scored"] == 8 and len(scorer.cache) == 8  # the second request: all cached
    assert "What is the capital of France?" in stats["unkeyed"][0]


def test_safety_penalty_is_added_to_the_verifier(encode, exam_file, server):
    from llamafactory.train.ppo.ppo_utils import get_rewards_from_server

    texts = [encode(prompt_of(EXAM[row]), response) for row, response, _, _ in PLANTED]
    url, scorer = server(build_verifier("choice", exam_file, safety_penalty=0.5))
    assert get_rewards_from_server(url, texts).tolist() == [p[3] for p in PLANTED]
    assert scorer.outcomes["unsafe"] == 2
    alone = build_verifier("safety")  # the lint alone: 0, or minus the default penalty of 1
    assert [r.score for r in alone.score_all(texts)] == [0, 0, 0, 0, 0, -1, -1]


def test_match_verifier_normalises_and_reads_the_final_answer(encode, tmp_path):
    key = tmp_path / "verifiable.json"
    key.write_text(json.dumps(REFERENCES, ensure_ascii=False))
    verifier = build_verifier("match", key)
    hypertension, heart_rate = (r.get("question") or r["Open-ended Verifiable Question"]
                                for r in REFERENCES)  # fmt: skip
    cases = [
        (hypertension, "Several classes work.\nFinal answer: ACE-inhibitor.", 1.0),
        (hypertension, "Final answer: beta blocker", 0.0),
        (heart_rate, "<think>\n正常范围60到100。\n</think>\n\n答案：100 次", 1.0),
        (heart_rate, "", -1.0),
    ]
    scores = [r.score for r in verifier.score_all([encode(q, a) for q, a, _ in cases])]
    assert scores == [expected for _, _, expected in cases]


def test_readers():
    assert read_letter("the answer is (D).", 4) == "D"
    assert read_letter("Answer: E", 4) is None  # not one of the options
    assert match_answer("Reasoning.\nThe final answer is: 42 mg\nThanks") == "42 mg"
    assert normalise("ACE-Inhibitor。") == normalise("ace inhibitor") == "aceinhibitor"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "choice"}, "--verifier choice needs --answers FILE"),
        ({"name": "grpo"}, "unknown verifier 'grpo'; known: choice, match, judge, model, safety"),
        ({"name": "judge"}, "--verifier judge needs --judge-endpoint URL"),
        ({"name": "model"}, "--verifier model needs --reward-model DIR"),
        ({"name": "model", "reward_model": "/nonexistent"}, "no value_head.safetensors"),
        ({"name": "match", "answers": "/nonexistent.csv"}, "no such answer key"),
    ],
)
def test_mistakes_are_named(arguments, message):
    from pathlib import Path

    if "reward_model" in arguments:
        arguments["reward_model"] = Path(arguments["reward_model"])
    with pytest.raises(RewardError, match=message):
        build_verifier(**arguments)


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model, tmp_path_factory):
    """A LoRA reward model as LLaMA-Factory's rm stage saves it: an adapter on the tiny
    model and value_head.safetensors (random weights: what is checked is the loading)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    hidden = model.config.hidden_size
    save_file({"v_head.summary.weight": torch.randn(1, hidden) / hidden**0.5,
               "v_head.summary.bias": torch.tensor([0.25])},
              folder / "value_head.safetensors")  # fmt: skip
    return folder


def llamafactory_scores(tiny_model, folder, texts) -> list[float]:
    """The value at the last token, from the model LLaMA-Factory itself loads."""
    import torch
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_model, load_tokenizer

    model_args, _, finetuning_args, _ = get_infer_args(
        {"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(folder),
         "template": "qwen", "finetuning_type": "lora", "infer_dtype": "float32"}
    )  # fmt: skip
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    model = load_model(tokenizer, model_args, finetuning_args, False, add_valuehead=True)
    scores = []
    with torch.no_grad():
        for text in texts:  # a text, or its token ids
            ids = (
                torch.tensor([text])
                if isinstance(text, list)
                else tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            )
            _, _, values = model(input_ids=ids, return_dict=True, use_cache=False)
            scores.append(float(values[0, -1]))
    return scores


def test_model_verifier_scores_each_answer_closed_as_the_reward_model_was_trained(
    fixtures_dir, tiny_model, reward_model_dir, server
):
    """LLaMA-Factory's pairwise trainer reads the value after `<|im_end|>\n`; the PPO
    trainer posts answers ending at the bare eos, or cut off at max_new_tokens. The
    server scores each as that finished turn, prompt and answer as posted (a system
    prompt, leading newlines, a stray header), with the value LLaMA-Factory's own
    loading of the reward model gives there."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from llamafactory.train.ppo.ppo_utils import get_rewards_from_server
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template="qwen"))

    def encode(prompt: str, response: str, system: str | None) -> tuple[str, str]:
        """(what the PPO trainer posts, what the pairwise trainer trained on)"""
        asked = [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
        query, _ = template.encode_oneturn(tokenizer, asked, system)
        answer = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
        finished = [asked[0], {"role": "assistant", "content": response}]
        trained = sum(template.encode_oneturn(tokenizer, finished, system), [])
        return tokenizer.decode(query + answer), tokenizer.decode(trained)

    answers = [
        (prompt_of(EXAM[0]), PLANTED[0][1], None),
        (prompt_of(EXAM[1]), "\n\n" + PLANTED[2][1], "你是一名全科医生。"),
        (prompt_of(EXAM[2]), "ANSWER: C<|im_start|>assistant\nno", None),
    ]
    sent, closed = zip(*(encode(*answer) for answer in answers), strict=True)
    cut = [text.removesuffix("<|im_end|>") for text in sent[:2]]  # no eos: max_new_tokens
    # padded to the batch's longest answer; stopped on another special token
    cut += [sent[0] + "<|endoftext|>" * 2, sent[2].removesuffix("<|im_end|>") + "<|im_start|>"]
    assert "你是一名全科医生。" in sent[1] and all(t.endswith("<|im_end|>\n") for t in closed)
    verifier = build_verifier("model", reward_model=reward_model_dir)
    assert verifier.model._loaded is None  # loaded at the first score, not at the start
    url, _ = server(verifier)
    scores = get_rewards_from_server(url, [*sent, *cut]).tolist()
    expected = llamafactory_scores(
        tiny_model, reward_model_dir, [*closed, closed[0], closed[1], closed[0], closed[2]]
    )
    assert scores == pytest.approx(expected, abs=1e-4)
    assert len(set(scores[:3])) == 3  # the texts score differently
    # read where the texts end, the values are others: the head was not trained there
    assert llamafactory_scores(tiny_model, reward_model_dir, [*sent, *cut]) != pytest.approx(
        expected, abs=1e-3
    )


def test_eval_reward_calibrates_the_reward_model_against_the_clinicians_verdicts(
    fixtures_dir, tiny_model, reward_model_dir, tmp_path
):
    """`eval reward --calibrate STUDY`: the reward model prefers, of each settled item's
    two answers, the one it scores higher on the finished turn; Cohen's kappa against
    the clinicians' verdicts is scikit-learn's on the same labels."""
    from click.testing import CliRunner
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from sklearn.metrics import cohen_kappa_score
    from test_review import people, predictions, rate_as_preferring
    from transformers import AutoTokenizer

    from medfactory.cli import cli
    from medfactory.review.settled import settled_items
    from medfactory.review.studies import StudySpec, create_study
    from medfactory.store.db import open_store

    db = f"sqlite:///{tmp_path / 'review.db'}"
    store = open_store(db)
    files = [predictions(tmp_path, "base", 8), predictions(tmp_path, "lora", 8)]
    for number, file in enumerate(files):  # answers of many lengths: the model's picks vary
        rows = [json.loads(line) for line in file.read_text().splitlines()]
        file.write_text("".join(
            json.dumps({**r, "predict": r["predict"] + " 多休息。" * ((i + number) % 4)},
                       ensure_ascii=False) + "\n" for i, r in enumerate(rows)
        ))  # fmt: skip
    create_study(store, StudySpec("r1", files, ["d1"], overlap=1, seed=7))
    wanted = ["lora", "base", "lora", "lora", "base", "base"]  # items 7 and 8 stay unrated
    rater = people(store)["d1"]
    for position, version in enumerate(wanted, 1):
        rate_as_preferring(store, rater, version, position)
    items = settled_items(store, "r1")
    store.close()
    assert len(items) == len(wanted)

    tokenizer = AutoTokenizer.from_pretrained(fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template="qwen"))

    def finished(item: dict, side: str) -> list[int]:
        [system, user] = item["conversation"]
        messages = [user, {"role": "assistant", "content": item[f"{side}_answer"]}]
        return sum(template.encode_oneturn(tokenizer, messages, system["content"]), [])

    texts = [finished(item, side) for item in items for side in ("left", "right")]
    scores = llamafactory_scores(tiny_model, reward_model_dir, texts)
    model = ["left" if scores[2 * n] > scores[2 * n + 1] else "right" for n in range(len(items))]
    clinicians = [item["verdict"] for item in items]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"conversations": [{"from": "human", "value": "q0"}],
                                 "chosen": {"from": "gpt", "value": "a"},
                                 "rejected": {"from": "gpt", "value": "b"}}) + "\n")  # fmt: skip
    arguments = ["eval", "reward", str(pairs), "--reward-model", str(reward_model_dir),
                 "--calibrate", "r1", "--db", db]  # fmt: skip
    run = CliRunner().invoke(cli, [*arguments, "--json"])
    assert run.exit_code == 0, run.output
    calibration = json.loads(run.stdout)["calibration"]
    assert [p["clinicians"] for p in calibration["pairs"]] == clinicians
    assert [p["judge"] for p in calibration["pairs"]] == model
    sides = [p[f"{side}_score"] for p in calibration["pairs"] for side in ("left", "right")]
    assert sides == pytest.approx(scores, abs=1e-4)  # each answer as its finished turn
    expected = cohen_kappa_score(clinicians, model, labels=["left", "right", "tie"])
    assert calibration["kappa"] == pytest.approx(expected)
    assert calibration["compared"] == len(items) and len(set(model)) == 2
    assert calibration["without_a_side"] == 0
    printed = CliRunner().invoke(cli, arguments).stdout
    assert f"Cohen's kappa {expected:.3f}" in printed and f"over {len(items)} settled" in printed


def test_eval_reward_counts_chosen_above_rejected(tiny_model, reward_model_dir, tmp_path):
    from medfactory.rewards.accuracy import reward_accuracy
    from medfactory.rewards.model import RewardModel
    from medfactory.stats.intervals import wilson

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"conversations": [{"from": "human", "value": prompt_of(row)}],
             "chosen": {"from": "gpt", "value": f"ANSWER: {row['answer']}"},
             "rejected": {"from": "gpt", "value": "I am not sure, maybe rest."}}
            for row in EXAM]  # fmt: skip
    pairs.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    result = reward_accuracy(pairs, RewardModel(reward_model_dir, template="qwen"))
    correct = sum(s["chosen"] > s["rejected"] for s in result["scores"])
    assert result["pairs"] == 3 and result["correct"] == correct
    assert (result["accuracy"], result["low"], result["high"]) == wilson(correct, 3)
    from click.testing import CliRunner

    from medfactory.cli import cli

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": []}\n')
    run = CliRunner().invoke(cli, ["eval", "reward", str(bad), "--reward-model",
                                   str(reward_model_dir)])  # fmt: skip
    assert run.exit_code == 1 and f"{bad}:1: needs conversations, chosen and rejected" in run.output
