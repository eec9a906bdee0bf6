"""De-identification: what Presidio with our recognizers replaces, and what it must leave."""

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import re2

from converters.deid.engine import DeidOptions, deidentifier, re2_pattern
from converters.deid.evaluation import score
from converters.deid.patterns import RULES, alternation, luhn_valid
from medfactory.dev.deid_faker_set import faker_set
from medfactory.dev.deid_samples import labelled_set, parse_marked

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "tests" / "data" / "deid_heldout.txt"


def deid(*texts: str, pseudonymize: bool = False) -> list[str]:
    return deidentifier(DeidOptions(pseudonymize=pseudonymize)).record(list(texts), Counter())


# (text, what strict de-identification must make of it)
CASES = [
    ("患者张伟，男，45岁，头痛3天。", "患者[NAME]，男，45岁，头痛3天。"),
    ("姓名：欧阳娜娜  住院号：ZY2023001", "姓名：[NAME]  住院号：[RECORD_NO]"),
    ("王医生说要复查，谢谢医生！由医生决定。", "[NAME]医生说要复查，谢谢医生！由医生决定。"),
    ("家住广东省深圳市南山区科技园路1号3栋502室。", "家住[ADDRESS]。"),
    ("我母亲今年93岁，血压160/100mmHg。", "我母亲今年[AGE]岁，血压160/100mmHg。"),
    ("出生日期：1958年3月12日，2023年5月6日就诊。", "出生日期：[DOB]，2023年5月6日就诊。"),
    ("门诊号MZ-2024-88812，检查号：CT20240315008", "门诊号[RECORD_NO]，检查号：[RECORD_NO]"),
    ("12床患者夜间血氧88%，床旁心电监护。", "[RECORD_NO]床患者夜间血氧88%，床旁心电监护。"),
    ("银行卡6222 0212 3456 7890 128，车牌粤B12345。", "银行卡[BANK_CARD]，车牌[PLATE]。"),
    ("护照号：E12345678，港澳通行证C87654321。", "护照号：[PASSPORT]，港澳通行证[PASSPORT]。"),
    ("加我微信zhangwei_88，或QQ：123456789。", "加我微信[WECHAT]，或QQ：[QQ]。"),
    ("身份证11010519491231002X，电话13912345678。", "身份证[ID_NUMBER]，电话[PHONE]。"),
    ("Patient John Smith, MRN: 00123456, DOB: 03/12/1958.", "Patient [NAME], MRN: [RECORD_NO], DOB: [DOB]."),  # noqa: E501
    ("Mr. O'Neil lives at 42 Baker Street, Springfield.", "[NAME] lives at [ADDRESS]."),
    ("Call (555) 123-4567 or jsmith@example.com; SSN 412-55-8790.", "Call [PHONE] or [EMAIL]; SSN [SSN]."),  # noqa: E501
    ("She is 97 years old; metformin 500 mg, HbA1c 8.2%.", "She is [AGE] years old; metformin 500 mg, HbA1c 8.2%."),  # noqa: E501
    ("护士王芳于今晨巡视，陈建国（35岁）诉头晕。", "护士[NAME]于今晨巡视，[NAME]（35岁）诉头晕。"),
    ("预约人李娜，155-6542-8125；座机0571 8765 4321。", "预约人[NAME]，[PHONE]；座机[PHONE]。"),
    ("患者1990年5月12日出生，车牌渝R-90682。", "患者[DOB]出生，车牌[PLATE]。"),
    ("家住江西省南昌市东湖区八一大道461号2栋3单元602，邮编330000。", "家住[ADDRESS]，邮编330000。"),
    ("Referred by Kathy Moore, MD, for HbA1c of 9.1%.", "Referred by [NAME], for HbA1c of 9.1%."),
    ("Lives at 445 Andrew Mission Suite 956, Melissaview, IL 88127.", "Lives at [ADDRESS]."),
    ("Call (471)562-4154x359 or 001-655-501-7642.", "Call [PHONE] or [PHONE]."),
    ("张伟(男,45岁)于2024年3月2日入院，主管护师李娜巡视。", "[NAME](男,45岁)于2024年3月2日入院，主管护师[NAME]巡视。"),  # noqa: E501
    ("Terri Reynolds presented to the ED with chest pain.", "[NAME] presented to the ED with chest pain."),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_identifiers_become_typed_placeholders(text, expected):
    assert deid(text) == [expected]


MEDICAL = [
    "血压150/95mmHg，心率88次/分，体温38.5℃，空腹血糖7.8mmol/L，HbA1c 8.2%。",
    "阿莫西林0.5g每日3次，布洛芬混悬液5ml，生理盐水250ml静滴。",
    "2023年5月6日复查，白细胞12.5×10^9/L，肌酐132μmol/L，孕32周。",
    "患者常规检查未见异常，建议3个月后复查，由医生决定是否停药。",
    "BP 150/95, creatinine 1.8 mg/dL, seen on 2024-03-15, follow-up in 2 weeks.",
    "门静脉高压患者大量呕血，母亲诉患儿夜间咳嗽，医生和家属谈话。",
    "患者曾于2023年手术，病灶位于左肺，由家属陪同；医生周一出诊，上周三于门诊复查。",
    "Diabetes Mellitus presented a challenge; the Heart Failure Clinic reports 12 cases.",
]


@pytest.mark.parametrize("text", MEDICAL)
def test_medical_text_is_left_as_it_is(text):
    assert deid(text) == [text]


def test_a_name_found_in_one_turn_is_replaced_in_every_turn():
    question, answer = deid("患者张伟，男，45岁。", "张伟的血压偏高，张伟需要复查。")
    assert "张伟" not in question + answer
    assert answer == "[NAME]的血压偏高，[NAME]需要复查。"


def test_pseudonyms_are_consistent_within_a_record_and_distinct_between_people():
    texts = deid(
        "患者张伟，男，由女儿张丽陪同，电话13912345678。",
        "张伟的情况张丽已知晓，请拨13912345678或13800138000。",
        pseudonymize=True,
    )
    assert texts[0] == "患者A，男，由女儿B陪同，电话[PHONE_1]。"
    assert texts[1] == "A的情况B已知晓，请拨[PHONE_1]或[PHONE_2]。"


def test_counts_and_audit_entries_name_what_was_replaced():
    counts, audit = Counter(), []
    engine = deidentifier(DeidOptions())
    engine.record(["患者张伟，电话13912345678，住院号ZY2023001。"], counts, audit)
    assert counts == {"name": 1, "phone": 1, "record_no": 1}
    assert [(a["entity"], a["original"], a["replacement"]) for a in audit] == [
        ("NAME", "张伟", "[NAME]"),
        ("PHONE", "13912345678", "[PHONE]"),
        ("RECORD_NO", "ZY2023001", "[RECORD_NO]"),
    ]
    assert audit[0]["context"].startswith("患者【张伟】，电话")
    assert audit[0]["rule"] == "name after a label (zh)"


def test_checksums_decide_for_numbers_without_a_label():
    assert luhn_valid("6222021234567890128") and not luhn_valid("6222021234567890127")
    # 18 digits with a wrong ID checksum and no label: not an ID, and not a card either
    assert deid("结果为110105194912310022") == ["结果为110105194912310022"]
    assert deid("身份证110105194912310022") == ["身份证[ID_NUMBER]"]  # a label says what it is


def test_a_weaker_find_of_another_type_is_replaced_where_it_reaches_beyond_a_stronger_one():
    from presidio_analyzer import RecognizerResult

    from converters.deid.engine import _without_overlaps

    card = RecognizerResult("BANK_CARD", 2, 21, 0.8)  # 6217 0012 3456 7890
    phone = RecognizerResult("PHONE", 7, 21, 0.85)  # its last twelve digits, a stronger rule
    address = RecognizerResult("ADDRESS", 0, 30, 0.6)  # the same type as neither
    same = RecognizerResult("PHONE", 5, 12, 0.6)  # a weaker reading of the same phone
    spans = lambda results: [(r.entity_type, r.start, r.end) for r in results]  # noqa: E731
    assert spans(_without_overlaps([card, phone, same])) == [("BANK_CARD", 2, 7), ("PHONE", 7, 21)]
    assert spans(_without_overlaps([phone, address])) == [
        ("ADDRESS", 0, 7),
        ("PHONE", 7, 21),
        ("ADDRESS", 21, 30),
    ]


def test_alternation_groups_words_by_their_first_character():
    words = "患者|患儿|病人|护士|护士长|我|我叫"
    assert alternation(words) == "护(?:士长|士)|患(?:儿|者)|我(?:叫)?|病(?:人)"
    assert all(re.fullmatch(alternation(words), word) for word in words.split("|"))


def test_re2_rewriting_drops_negative_lookarounds_and_consumes_positive_ones():
    assert re2_pattern(r"(?<![0-9])\d{2}(?=岁)") == r"\p{Nd}{2}(?:岁)"
    assert (
        re2_pattern(r"(?<=(?:住院号)[：:\s]{0,3})[A-Z]\d+")
        == r"(?:(?:住院号)[：:\s\p{Z}\x{1c}-\x{1f}\x{85}]{0,3})[A-Z]\p{Nd}+"
    )  # noqa: E501
    assert re2_pattern("[\\u4e00-\\u9fa5](?!x)\\b") == "[\\x{4e00}-\\x{9fa5}]\\b"
    assert re2_pattern(r"[(?=)]a") == r"[(?=)]a"  # inside a class, not a look-ahead


def texts_to_check() -> list[str]:
    """Texts with and without identifiers, Chinese and English."""
    items = labelled_set(300, seed=3) + faker_set(300, seed=4)
    heldout = [parse_marked(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    return [item["text"] for item in items + [h for h in heldout if h]] + MEDICAL


def test_the_precheck_finds_every_text_each_recognizer_matches():
    """The pre-check may say a recognizer matches where it does not (Presidio then finds
    nothing), never the reverse: that would be an identifier left in place."""
    engine = deidentifier(DeidOptions())
    texts = texts_to_check() + [
        "card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, NHS 401 023 2137",
        "server 192.168.1.20; SSN 412-55-8790",
    ]
    for text, hints in zip(texts, engine.candidates(texts), strict=True):
        everything = engine.analyzer.analyze(text, engine.language, nlp_artifacts=engine.artifacts)
        assert {result.entity_type for result in everything} <= hints, text


def test_a_context_kept_out_with_keep_out_finds_what_a_look_behind_finds():
    """The plain twin of Presidio's patterns: `\\K` only makes them faster."""
    import regex

    flags = regex.DOTALL | regex.MULTILINE
    texts = texts_to_check()
    for rule in (rule for rule in RULES if rule.before):
        fast = regex.compile(rule.regex, flags)
        plain = regex.compile(f"(?<=(?:{rule.before})){rule.body}", flags)
        for text in texts:
            assert [m.span() for m in fast.finditer(text)] == [
                m.span() for m in plain.finditer(text)
            ], (rule.name, text)


def test_every_rule_compiles_for_re2():
    for rule in RULES:
        re2.compile(re2_pattern(rule.forward))


def test_quality_on_the_generated_the_faker_and_the_hand_written_sets():
    engine = deidentifier(DeidOptions())
    heldout = [parse_marked(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    for items in (labelled_set(300, seed=11), faker_set(300, seed=5), [h for h in heldout if h]):
        result = score(items, engine)
        assert result["medical_numbers_changed"] == []
        for entity, row in result["entities"].items():
            goal = 0.99 if entity in ("PHONE", "ID_NUMBER", "RECORD_NO") else 0.95
            assert row["recall"] is None or row["recall"] >= goal, (entity, result["misses"])
            assert row["precision"] is None or row["precision"] >= 0.9, result["false_alarms"]


def test_scoring_counts_leaks_and_false_alarms():
    item = {
        "text": "患者张伟，电话13912345678，血压150/95mmHg",
        "spans": [{"start": 2, "end": 4, "entity": "NAME"}],  # the phone is left unlabelled
        "keep": [{"start": 24, "end": 33}],
    }
    result = score([item], deidentifier(DeidOptions()))
    assert result["entities"]["NAME"] == {
        "labelled": 1, "recall": 1.0, "replaced": 1, "precision": 1.0
    }  # fmt: skip
    assert result["entities"]["PHONE"]["precision"] == 0.0
    assert result["false_alarms"][0]["text"] == "13912345678"
    assert result["medical_numbers_changed"] == []


def test_an_installed_ner_model_finds_names_without_context(tmp_path):
    """The documented option, with a real spaCy pipeline built here (none can be
    downloaded): its PERSON entities are replaced as names, the patterns still run."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Zelda Quint"}])
    nlp.to_disk(tmp_path / "model")
    config = tmp_path / "ner.yaml"
    config.write_text(
        "nlp_engine_name: spacy\n"
        f"models:\n  - lang_code: en\n    model_name: {tmp_path / 'model'}\n"
        "ner_model_configuration:\n  model_to_presidio_entity_mapping:\n    PERSON: PERSON\n",
        encoding="utf-8",
    )
    text = "Zelda Quint came back today, phone 13912345678."
    assert deid(text) == ["Zelda Quint came back today, phone [PHONE]."]  # no context: kept
    engine = deidentifier(DeidOptions(ner_config=str(config)))
    assert engine.candidates([text]) == [None]  # with a model, every text is analysed
    assert engine.record([text], Counter()) == ["[NAME] came back today, phone [PHONE]."]


def test_an_ner_configuration_that_does_not_load_is_one_message(tmp_path):
    from converters.deid.engine import Deidentifier, DeidError

    with pytest.raises(DeidError, match="no such file"):
        Deidentifier(DeidOptions(ner_config=str(tmp_path / "missing.yaml")))
    config = tmp_path / "ner.yaml"
    config.write_text(
        "nlp_engine_name: spacy\nmodels:\n  - lang_code: en\n    model_name: "
        f"{tmp_path / 'not-a-model'}\n",
        encoding="utf-8",
    )
    with pytest.raises(DeidError, match="'.*not-a-model' is not installed and no such folder"):
        Deidentifier(DeidOptions(ner_config=str(config)))
    config.write_text(
        "nlp_engine_name: spacy\nmodels:\n  - lang_code: en\n    model_name: xx_missing_model\n"
    )
    with pytest.raises(DeidError, match="python -m spacy download xx_missing_model"):
        Deidentifier(DeidOptions(ner_config=str(config)))


def test_presidios_own_recognizers_find_what_they_know():
    text = (
        "Server 192.168.1.20, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, "
        "NHS 401 023 2137, SSN 412-55-8790."
    )
    assert deid(text) == [
        "Server [IP], card [BANK_CARD], IBAN [BANK_CARD], NHS [RECORD_NO], SSN [SSN]."
    ]


def test_scoring_reads_the_common_annotation_shapes():
    engine = deidentifier(DeidOptions())
    text = "患者张伟，电话13912345678。"
    ours = {"text": text, "spans": [{"start": 2, "end": 4, "entity": "NAME"}]}
    doccano = {"text": text, "label": [[2, 4, "PERSON"], [7, 18, "PHONE_NUMBER"]]}
    other = {"text": text, "entities": [{"start": 7, "end": 18, "type": "PHONE_NUMBER"}]}
    assert score([ours], engine)["entities"]["NAME"]["recall"] == 1.0
    result = score([doccano, other], engine)
    # Presidio's names for the types read as ours, so the goals apply to them
    assert result["entities"]["NAME"] == {
        "labelled": 1, "recall": 1.0, "replaced": 2, "precision": 0.5
    }  # fmt: skip
    assert result["entities"]["PHONE"]["labelled"] == 2
    assert "PERSON" not in result["entities"] and "PHONE_NUMBER" not in result["entities"]
    # the name in `other` is not labelled there: one false alarm of four replacements
    assert result["recall"] == 1.0 and result["precision"] == 0.75


def test_a_missing_ner_model_is_one_line_before_the_nlp_stack_is_imported(tmp_path):
    """Said while the options are read, not after seconds of importing spaCy and Presidio."""
    config = tmp_path / "ner.yaml"
    config.write_text(
        "nlp_engine_name: spacy\nmodels:\n  - lang_code: zh\n    model_name: zh_core_web_trf\n",
        encoding="utf-8",
    )
    source = tmp_path / "t.csv"
    source.write_text("q,a\n头痛三天,测血压\n", encoding="utf-8")
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from medfactory.cli import cli\n"
        f"args = ['data', 'convert', 'table', {str(source)!r}, '--column', 'question=q',\n"
        "        '--column', 'answer=a', '--name', 'x',\n"
        f"        '--dataset-dir', {str(tmp_path / 'ds')!r}, '--ner-config', {str(config)!r}]\n"
        "result = CliRunner().invoke(cli, args)\n"
        "print(result.exit_code, result.output.strip())\n"
        "print(sorted(m for m in ('spacy', 'presidio_analyzer') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    outcome, imported = done.stdout.strip().splitlines()
    assert outcome == (
        f"1 Error: --ner-config {config}: the spaCy model 'zh_core_web_trf' is not installed "
        "and no such folder exists; install it first (python -m spacy download "
        "zh_core_web_trf) or give the folder it is in"
    )
    assert imported == "[]"
    assert not (tmp_path / "ds").exists()
