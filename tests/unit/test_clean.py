from collections import Counter

import pytest

from converters.clean import fold, fold_batch, scrub_pii, valid_id_number

SCRUBBED = [
    ("电话13812345678请回电", "电话[PHONE]请回电", {"mobile": 1}),
    ("手机 138-1234-5678。", "手机 [PHONE]。", {"mobile": 1}),
    ("+86 139 1234 5678", "[PHONE]", {"mobile": 1}),
    ("座机010-65123456转", "座机[PHONE]转", {"landline": 1}),
    ("(0755)1234567", "[PHONE]", {"landline": 1}),
    ("（021）87654321", "[PHONE]", {"landline": 1}),
    ("0571 87654321", "[PHONE]", {"landline": 1}),
    ("身份证11010519491231002X", "身份证[ID_NUMBER]", {"id_number": 1}),
    ("邮箱 li.si+a@example.com.cn。", "邮箱 [EMAIL]。", {"email": 1}),
    ("见https://www.example.cn/a?b=1。", "见[URL]。", {"url": 1}),
    ("访问 www.hospital.org 预约", "访问 [URL] 预约", {"url": 1}),
]


@pytest.mark.parametrize(("text", "expected", "counts"), SCRUBBED)
def test_identifiers_become_typed_placeholders(text, expected, counts):
    found = Counter()
    assert scrub_pii(text, found) == expected
    assert found == Counter(counts)


UNTOUCHED = [
    "血压180/110mmHg，心率110次/分",
    "HbA1c 8.2%，空腹血糖7.8mmol/L",
    "二甲双胍500mg每日两次，胰岛素12U",
    "2023年5月12日起病，2023-05-12就诊，2023/05/12复查",
    "身份证110105194912310021",  # checksum fails: not an ID number
    "编号123456789012345678901",  # 21 digits
    "血小板 125×10^9/L，白细胞 13800/μl",
    "孕24周+3天，体重65kg",
    "样本号 20230512001",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_medical_numbers_are_left_alone(text):
    found = Counter()
    assert scrub_pii(text, found) == text
    assert not found


def test_id_checksum():
    assert valid_id_number("11010519491231002X")
    assert valid_id_number("11010519491231002x")
    assert not valid_id_number("110105194912310021")


def test_fold_ignores_case_width_space_and_punctuation():
    assert fold("头痛，怎么办？ Hello World!") == fold("头痛怎么办 hello　ＷＯＲＬＤ")
    assert fold("头痛") != fold("头晕")


def test_fold_of_the_bmp_is_the_same_with_characters_beyond_it_in_the_batch():
    """Batches within the BMP take a 16-bit path; it must fold exactly like the 32-bit one."""
    bmp = "".join(chr(code) for code in range(0x10000) if not 0xD800 <= code < 0xE000)
    narrow, _ = fold_batch([bmp])
    wide, _ = fold_batch([bmp, "𝟒"])  # a digit beyond the BMP
    assert wide == [narrow[0], "4".encode("utf-16-le")]


def test_fold_maps_every_script_s_digits_and_case():
    assert fold("电话１３８-١٢٣ 𝟒") == fold("电话138123 4") == "电话1381234"
    assert fold("ΣΟΦΙΑ Ärzte") == fold("σοφια ärzte")
    assert fold("a\x00b\x01c") == "abc"  # control characters never survive (U+0001 marks text ends)
