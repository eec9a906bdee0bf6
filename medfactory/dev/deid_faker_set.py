"""A second labelled set for de-identification, with values the rules were not written from.

`deid_samples` draws its names, addresses and numbers from lists this project
wrote. Here they come from Faker's zh_CN and en_US providers instead: its
surnames and given names, its odd but well-formed addresses (…路C座, Apt. 211,
APO AA 64618), its phone formats (extensions, 001- prefixes), its ID numbers,
plates and SSNs; put into clinical phrasings of their own (a nurse's round, a
referral, an appointment, a discharge follow-up). Faker is a development
dependency, imported when a set is made.

    python -m medfactory.dev.deid_faker_set OUT.jsonl [--count 600] [--seed 3]
"""

from __future__ import annotations

import random
import re
import sys

from medfactory.dev.deid_samples import parse_marked, write_set

# {SLOT} is an identifier (its entity type), {keep:text} a medical value that must survive.
ZH = [
    "患者{NAME}，{keep:45}岁，主诉胸闷{keep:3天}，血压{keep:150/95mmHg}。",
    "{NAME}，女，{keep:62}岁，住院号{RECORD_NO}，糖化血红蛋白{keep:8.2%}。",
    "家属{NAME}签字同意手术，联系电话{PHONE}。",
    "姓名 {NAME} 性别 男 年龄 {keep:58}岁 病案号 {RECORD_NO}",
    "患者住址：{ADDRESS}，电话：{PHONE}，身份证号：{ID_NUMBER}。",
    "现住{ADDRESS}，否认疫区旅居史，体温{keep:37.8℃}。",
    "{NAME}先生您好，您的检查报告已出，白细胞{keep:11.2×10^9/L}，请复诊。",
    "护士{NAME}于{keep:2024年3月2日}巡视病房，{BED}床患者诉腹痛。",
    "出生日期：{DATE_OF_BIRTH}，高血压病史{keep:10年}，服用氨氯地平{keep:5mg}。",
    "老人今年{AGE}岁，跌倒后髋部疼痛，X线示股骨颈骨折。",
    "请家属{NAME}携带身份证{ID_NUMBER}到住院处办理手续。",
    "紧急联系人：{NAME}，关系：女儿，手机号码：{PHONE}",
    "医保卡号：{RECORD_NO}，缴费卡号{BANK_CARD}。",
    "出院随访：{NAME}，{MOBILE}，{ADDRESS}",
    "您好，我是{NAME}，加我微信{WECHAT}详细说，QQ：{QQ}。",
    "患者持护照{PASSPORT}就诊，邮箱{EMAIL}。",
    "车牌{LICENSE_PLATE}的车主{NAME}在停车场晕倒。",
    "{NAME}医生建议继续口服阿托伐他汀{keep:20mg}，{keep:3个月}后复查血脂。",
    "住院号{RECORD_NO}，{BED}床，{NAME}，男，{keep:71}岁。",
    "{NAME}（{keep:35}岁）自述停经{keep:40天}，尿HCG阳性。",
    "预约人{NAME}，预约手机号{MOBILE}，预约时间{keep:3月8日}上午。",
    "座机：{LANDLINE}，分机{keep:8021}。",
    "患者{DATE_OF_BIRTH}出生，现年{AGE}岁，长期卧床。",
    "{NAME}诉左下腹痛{keep:2天}，伴发热，最高体温{keep:38.6℃}。",
    "户籍地址：{ADDRESS}；检验号{RECORD_NO}：血红蛋白{keep:98g/L}。",
    "患者由妻子{NAME}陪同来诊，血压{keep:130/85mmHg}，心率{keep:78次/分}。",
]
EN = [
    "Patient {NAME}, {keep:54}-year-old male, BP {keep:142/88} mmHg, HR {keep:96} bpm.",
    "Contact: {NAME}, phone {PHONE}, email {EMAIL}.",
    "MRN: {RECORD_NO}. Admitted on {keep:03/14/2024} for pneumonia.",
    "Dr. {LAST} prescribed metformin {keep:500 mg} twice daily.",
    "Home address: {ADDRESS}.",
    "DOB: {DATE_OF_BIRTH}; HbA1c {keep:7.4%}.",
    "{NAME} is a {AGE}-year-old woman with dementia.",
    "SSN {SSN} on file for billing.",
    "Mr. {LAST} called from {PHONE} about his potassium of {keep:5.9 mmol/L}.",
    "The patient lives at {ADDRESS} with his daughter.",
    "{NAME}, DOB {DATE_OF_BIRTH}, MRN {RECORD_NO}",
    "Referred by {NAME}, MD, for an HbA1c of {keep:9.1%}.",
    "Emergency contact: {NAME} (spouse) {PHONE}",
    "Mrs. {LAST}, aged {AGE}, fell at home; INR {keep:2.4}.",
]
_SLOT = re.compile(r"\{(keep:)?([^{}]+)\}")
# Slots that stand for another entity type: a bed number is a record number, and so on.
_ENTITY_OF_SLOT = {"BED": "RECORD_NO", "LAST": "NAME", "MOBILE": "PHONE", "LANDLINE": "PHONE"}
_DATE_FORMATS_ZH = ["%Y年%m月%d日", "%Y-%m-%d", "%Y/%m/%d", "%Y年%m月"]
_DATE_FORMATS_EN = ["%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d"]


def _values(zh, en, rng: random.Random) -> dict:
    """Slot -> a function making a value, for the Chinese and the English templates."""

    def mobile() -> str:
        number = zh.phone_number()
        return rng.choice([number, f"+86 {number}", f"{number[:3]}-{number[3:7]}-{number[7:]}"])

    def landline() -> str:
        area, number = rng.randint(10, 999), rng.randint(2000000, 89999999)
        return rng.choice([f"0{area}-{number}", f"(0{area}){number}"])

    def record_no() -> str:
        return rng.choice(
            [
                str(rng.randint(100000, 9999999)),
                f"ZY{rng.randint(2019, 2025)}{rng.randint(10000, 99999)}",
                f"MZ{rng.randint(1000000, 9999999)}",
            ]
        )

    def address() -> str:
        return rng.choice(
            [
                zh.address().rsplit(" ", 1)[0],  # 福建省丽娟市清浦潜江街H座 (the postcode left out)
                f"{zh.province()}{zh.city()}{zh.district()}区{zh.street_name()}"
                f"{rng.randint(1, 999)}号",
            ]
        )

    shared = {"AGE": lambda: str(rng.randint(90, 104)), "EMAIL": en.email}
    chinese = {
        "NAME": zh.name,
        "RECORD_NO": record_no,
        "BED": lambda: str(rng.randint(1, 60)),
        "PHONE": lambda: rng.choice([mobile, landline])(),
        "MOBILE": mobile,
        "LANDLINE": landline,
        "ID_NUMBER": zh.ssn,
        "ADDRESS": address,
        "DATE_OF_BIRTH": lambda: zh.date_of_birth(maximum_age=85).strftime(
            rng.choice(_DATE_FORMATS_ZH)
        ),
        "BANK_CARD": lambda: zh.credit_card_number(card_type=rng.choice(["visa", "mastercard"])),
        "WECHAT": lambda: (
            f"{rng.choice('abcdefghkmnpqrstwxyz')}{en.user_name()[:8]}{rng.randint(10, 999)}"
        ),
        "QQ": lambda: str(rng.randint(10000, 3999999999)),
        "PASSPORT": lambda: f"{rng.choice('EG')}{rng.randint(10000000, 99999999)}",
        "LICENSE_PLATE": zh.license_plate,
    }
    english = {
        "NAME": lambda: f"{en.first_name()} {en.last_name()}",
        "LAST": en.last_name,
        "PHONE": en.phone_number,
        "RECORD_NO": lambda: str(rng.randint(100000, 99999999)),
        "ADDRESS": lambda: en.address().replace("\n", ", "),
        "DATE_OF_BIRTH": lambda: en.date_of_birth().strftime(rng.choice(_DATE_FORMATS_EN)),
        "SSN": en.ssn,
    }
    return {"zh": shared | chinese, "en": shared | english}


def _marked(template: str, values: dict) -> str:
    """A template filled, in the hand-labelled notation ([[ENTITY:text]], {{text}})."""

    def fill(match: re.Match) -> str:
        if match.group(1):
            return "{{" + match.group(2) + "}}"
        slot = match.group(2)
        return f"[[{_ENTITY_OF_SLOT.get(slot, slot)}:{values[slot]()}]]"

    return _SLOT.sub(fill, template)


def faker_set(count: int = 600, seed: int = 3) -> list[dict]:
    """`count` labelled snippets, three Chinese to one English, the same for a seed."""
    from faker import Faker

    zh, en = Faker("zh_CN"), Faker("en_US")
    zh.seed_instance(seed)
    en.seed_instance(seed)
    rng = random.Random(seed)
    values = _values(zh, en, rng)
    items = []
    for i in range(count):
        language = "en" if i % 4 == 3 else "zh"
        template = rng.choice(EN if language == "en" else ZH)
        items.append(parse_marked(_marked(template, values[language])))
    return items


def main(argv: list[str]) -> None:
    write_set(argv, faker_set, seed=3)


if __name__ == "__main__":
    main(sys.argv[1:])
