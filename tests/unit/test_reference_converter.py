"""The fast converter against a plain one, byte for byte.

The fast path folds chunks in numpy, pre-screens for identifiers, keys and
splits in arrays, de-duplicates through sorted runs and converts in several
processes. `plain_convert` below does the same job the obvious way, one
record at a time; both must write the same split files.
"""

import hashlib
import itertools
import json
import random
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters import sources
from converters.clean import fold, scrub_pii
from converters.convert import ConvertOptions, NothingConverted, convert
from converters.deid.engine import deidentifier
from converters.formats import FORMATS
from converters.records import RecordError
from converters.sources import SOURCES
from converters.split import SPLIT_NAMES

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "dataset_info" / "samples"


def plain_fold(text: str) -> str:
    """Letters and numbers only; full-width and every script's digits as ASCII; lower case."""
    kept = []
    for char in text:
        if not char.isalnum():
            continue
        if char.isdecimal():
            char = str(unicodedata.decimal(char))
        elif "\uff10" <= char <= "\uff5e":
            char = chr(ord(char) - 0xFEE0)
        kept.append("i" if char == "İ" else char.lower())
    return "".join(kept)


def plain_split(folded: str, seed: int, ratios: tuple[float, ...]) -> str:
    digest = hashlib.blake2b(
        folded.encode("utf-16-le", "surrogatepass"), digest_size=8, key=str(seed).encode()
    ).digest()
    point = float(int.from_bytes(digest, "big")) / 2.0**64
    edges = list(itertools.accumulate(ratios))
    index = sum(edge <= point for edge in edges)
    return SPLIT_NAMES[min(index, len(ratios) - 1)]


def plain_convert(source: str, path: Path, options: ConvertOptions) -> dict[str, bytes]:
    if path.suffix == ".jsonl":
        records = [line.rstrip(b"\r") for line in path.read_bytes().split(b"\n") if line.strip()]
    else:
        records = json.loads(path.read_text(encoding="utf-8"))
    written = {split: b"" for split in SPLIT_NAMES[: len(options.split)]}
    seen_lines, seen_folds = set(), set()
    for payload in records:
        try:
            dialogue = SOURCES[source].parse(payload, options)
        except RecordError:
            continue
        if options.deid == "basic":
            turns = tuple(
                (scrub_pii(q, Counter()), scrub_pii(a, Counter())) for q, a in dialogue.turns
            )
            dialogue = dialogue._replace(turns=turns, system=scrub_pii(dialogue.system, Counter()))
        elif options.deid == "strict":  # Presidio on every record: no pre-check
            texts = [dialogue.system, *(text for pair in dialogue.turns for text in pair)]
            system, *rest = deidentifier(options.deid_options).record(texts, Counter())
            turns = tuple(zip(rest[0::2], rest[1::2], strict=True))
            dialogue = dialogue._replace(turns=turns, system=system)
        if options.max_chars and len(dialogue.text) > options.max_chars:
            continue
        line = json.dumps(FORMATS[options.fmt](dialogue), ensure_ascii=False, separators=(",", ":"))
        folded = plain_fold(dialogue.text)
        if options.dedup and (line in seen_lines or folded in seen_folds):
            continue
        seen_lines.add(line)
        seen_folds.add(folded)
        written[plain_split(folded, options.seed, options.split)] += line.encode() + b"\n"
    return written


def fast_convert(source: str, path: Path, options: ConvertOptions) -> dict[str, bytes]:
    try:
        summary = convert(source, [path], options)
    except NothingConverted:
        return {split: b"" for split in SPLIT_NAMES[: len(options.split)]}
    folder = Path(options.dataset_dir)
    return {
        split: (folder / f"{options.name}_{split}.jsonl").read_bytes() if count else b""
        for split, count in summary.written.items()
        if split in SPLIT_NAMES[: len(options.split)]
    }


@pytest.mark.parametrize(
    ("source", "sample", "fmt", "workers"),
    [
        ("huatuo", "huatuo_sample.jsonl", "sharegpt", 2),
        ("huatuo", "huatuo_sample.jsonl", "alpaca", 1),
        ("medical-o1", "medical_o1_sample.json", "alpaca", 2),
        ("medical-o1", "medical_o1_sample.json", "sharegpt", 1),
    ],
)
def test_the_bundled_samples_convert_as_the_plain_converter_does(
    tmp_path, monkeypatch, source, sample, fmt, workers
):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4096)  # many chunks, across the processes
    monkeypatch.setattr(sources, "CHUNK_RECORDS", 16)
    options = ConvertOptions(fmt, "s", tmp_path, seed=7, system="你是医生。", workers=workers)
    fast = fast_convert(source, SAMPLES / sample, options)
    assert all(fast.values())
    assert fast == plain_convert(source, SAMPLES / sample, options)


def test_the_fold_of_every_code_point_is_the_plain_fold():
    everything = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    assert fold(everything) == plain_fold(everything)
    assert fold("头痛😀，ＡＢ１２ ٣") == "头痛ab123"  # emoji and punctuation go


# Texts that reach every branch: CJK, full-width, other scripts' digits, emoji,
# punctuation and space, identifiers, and near-copies of one another.
PIECES = st.sampled_from(
    ["头痛", "发热三天", "血压180/110mmHg", "ＡＢ", "Ab", "١٢", "😀", "，", "。", " ", "\u3000",
     "13912345678", "139-1234-5678", "a.b@x.cn", "https://x.org/p", "www.y.com",
     "11010519491231002X", "010-12345678", "İ", "ß", "\t", "!", "x", "7", "5㎎"]
)  # fmt: skip
TEXT = st.lists(PIECES, min_size=1, max_size=8).map("".join)
DIALOGUE = st.lists(TEXT, min_size=1, max_size=4).map(
    lambda texts: {"data": [("问：" if i % 2 == 0 else "答：") + t for i, t in enumerate(texts)]}
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(DIALOGUE, max_size=25),
    st.integers(0, 2**31),
    st.sampled_from([(0.7, 0.2, 0.1), (0.5, 0.5), (1.0,)]),
    st.sampled_from(["sharegpt", "alpaca"]),
    st.sampled_from(["off", "basic"]),
)
def test_generated_dialogues_convert_as_the_plain_converter_does(
    tmp_path_factory, dialogues, seed, split, fmt, deid
):
    folder = tmp_path_factory.mktemp("r")
    rng = random.Random(seed)
    lines = [json.dumps(d, ensure_ascii=False) for d in dialogues]
    lines += rng.sample(lines, k=len(lines) // 3)  # exact copies, anywhere
    rng.shuffle(lines)
    path = folder / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = ConvertOptions(fmt, "g", folder, split=split, seed=seed, deid=deid, workers=1)
    assert fast_convert("huatuo", path, options) == plain_convert("huatuo", path, options)


IDENTIFIERS = [
    "a.b@x.cn", "https://x.org/p", "http://x.org", "www.y.com", "11010519491231002X",
    "13912345678", "+86 139 1234 5678", "010-12345678", "(0755)87654321", "（021）1234567",
]  # fmt: skip


@pytest.mark.parametrize("identifier", IDENTIFIERS)
def test_a_lone_identifier_is_scrubbed_as_the_plain_converter_does(tmp_path, identifier):
    """Nothing else in the record that the identifier pre-check could notice."""
    record = {"data": [f"问：我的联系方式是{identifier}", "答：好的，请注意休息。"]}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    options = ConvertOptions("sharegpt", "one", tmp_path, split=(1.0,), workers=1)
    fast = fast_convert("huatuo", path, options)
    assert identifier not in fast["train"].decode()
    assert fast == plain_convert("huatuo", path, options)
