"""A labelled evaluation set for de-identification, written for this project.

Chinese and English medical snippets built from templates: every identifier
span is marked with its entity type, and every medical number that must
survive (doses, lab values, blood pressure, temperatures, the date of a visit,
ages under 90) is marked `KEEP`. Deterministic for a seed, so a benchmark run
is repeatable; one labelled snippet a JSON line:

    {"text": "...", "spans": [{"start": 2, "end": 4, "entity": "NAME"}, ...],
     "keep": [{"start": 9, "end": 17}, ...]}

    python -m medfactory.dev.deid_samples OUT.jsonl [--count 600] [--seed 7]
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from converters.clean import valid_id_number
from converters.deid.patterns import luhn_valid

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤温康施文"  # noqa: E501
COMPOUND_SURNAMES = ["欧阳", "司马", "诸葛", "上官"]
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂玉萍建华文红辉鹏飞斌宇浩凯健俊帆旭宁龙林欣佳怡雪梅琳婷晶燕倩颖慧莉云海峰亮成国东志新春月天小子一晓思雨嘉家金德永荣福山江波清光宏"  # noqa: E501
EN_FIRST = ["John", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emily", "James",
            "Maria", "William", "Jennifer", "Thomas", "Susan", "Daniel", "Grace", "Ahmed",
            "Priya"]  # fmt: skip
EN_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
           "Martinez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Lee", "Thompson",
           "White", "Harris", "Clark", "Lewis", "Walker", "Patel", "Nguyen", "Chen"]  # fmt: skip
PROVINCES = ["广东省", "浙江省", "江苏省", "四川省", "湖北省", "山东省", "河南省", "福建省"]
CITIES = [
    "深圳市",
    "杭州市",
    "南京市",
    "成都市",
    "武汉市",
    "青岛市",
    "郑州市",
    "厦门市",
    "北京市",
    "上海市",
]  # noqa: E501
DISTRICTS = [
    "南山区",
    "西湖区",
    "鼓楼区",
    "武侯区",
    "洪山区",
    "市南区",
    "金水区",
    "思明区",
    "朝阳区",
    "浦东新区",
]  # noqa: E501
ROADS = [
    "科技园路",
    "文三路",
    "中山北路",
    "人民南路",
    "珞喻路",
    "香港中路",
    "花园路",
    "湖滨南路",
    "建国路",
    "世纪大道",
]  # noqa: E501
EN_STREETS = ["Baker Street", "Oak Avenue", "Maple Road", "Elm Street", "Park Lane", "Hill Drive"]
EN_CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown"]
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁苏浙赣鄂桂甘晋陕吉闽贵粤川"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

# Chinese templates: {SLOT} is an identifier, {keep:SLOT} a medical value that must survive.
ZH = [
    "患者{NAME}，男，{keep:AGE}岁，因头痛3天入院，血压{keep:BP}。",
    "姓名：{NAME}  住院号：{RECORD}  床号：{BED}",
    "{NAME}，女，{AGE90}岁，住院号{RECORD}，今晨空腹血糖{keep:GLUCOSE}。",
    "家属{NAME}（患者之女）联系电话{PHONE}，已签署知情同意书。",
    "患者家住{ADDRESS}，{keep:VISIT}就诊，体温{keep:TEMP}。",
    "现住址：{ADDRESS}。身份证号：{ID}。",
    "医生您好，我叫{NAME}，今年{keep:AGE}岁，最近胃疼，吃了奥美拉唑{keep:DOSE}还是不舒服。",
    "{NAME}医生建议每日口服二甲双胍{keep:DOSE}，3个月后复查糖化血红蛋白，目前{keep:HBA1C}。",
    "主治医师：{NAME}，门诊号：{RECORD}，检查号：{RECORD}。",
    "出生日期：{DOB}，{keep:VISIT}首次就诊，诊断为2型糖尿病。",
    "患者{NAME}，出生于{DOB}，既往高血压病史10年，血压最高{keep:BP}。",
    "您好{NAME}女士，您的检验报告已出，白细胞{keep:WBC}，请到门诊复诊。",
    "{NAME}先生，{AGE90}岁，因反复咳嗽咳痰入院，病案号{RECORD}。",
    "退款请打到银行卡{CARD}，开户人{NAME}。",
    "护照号：{PASSPORT}，港澳通行证{HKPERMIT}，预约{keep:VISIT}在国际医疗部就诊。",
    "车牌{PLATE}的车主{NAME}在停车场晕倒，送急诊，心率{keep:HR}。",
    "有问题加我微信{WECHAT}，或者QQ：{QQ}，也可发邮件到{EMAIL}。",
    "报告查询：{URL}，登记号{RECORD}，检查时间{keep:VISIT}。",
    "我爸爸{NAME}今年{AGE90}岁，住在{ADDRESS}，最近走路不稳，血压{keep:BP}。",
    "{NAME}，{keep:AGE}岁，联系方式{PHONE}，地址：{ADDRESS}。",
    "患儿{NAME}，{keep:CHILD_AGE}，体重{keep:WEIGHT}，阿莫西林{keep:DOSE}每日3次。",
    "签名：{NAME}  日期：{keep:VISIT}",
    "紧急联系人：{NAME}，电话：{LANDLINE}。",
    "患者{NAME}自述{keep:VISIT}开始发热，最高体温{keep:TEMP}，{NAME}否认外伤史。",
    "孕妇{NAME}，孕{keep:GESTATION}，产检号{RECORD}，血红蛋白{keep:HB}。",
    "{NAME}护士已为{BED}床患者输注生理盐水{keep:VOLUME}。",
    "经治医生：{NAME}；记录人：{NAME}。",
    "我是{NAME}的女儿，我妈妈{AGE90}岁了，降压药吃的是氨氯地平{keep:DOSE}。",
    "请问{NAME}主任周几出诊？我的就诊卡号是{RECORD}。",
    "身份证{ID}，医保卡号{RECORD}，电话{PHONE}。",
]
EN = [
    "Patient {EN_NAME}, a {keep:AGE}-year-old man, presented with chest pain; BP {keep:BP}.",
    "Name: {EN_NAME}. MRN: {EN_RECORD}. DOB: {EN_DOB}.",
    "Mr. {EN_LAST} was admitted on {keep:EN_VISIT} with a temperature of {keep:EN_TEMP}.",
    "{EN_NAME} is a {AGE90}-year-old woman with type 2 diabetes; HbA1c {keep:HBA1C}.",
    "Contact her daughter {EN_NAME} at {EN_PHONE} or {EMAIL}.",
    "Lives at {EN_ADDRESS}. Metformin {keep:EN_DOSE} twice daily.",
    "Dr. {EN_NAME} recommended lisinopril {keep:EN_DOSE}; follow-up on {keep:EN_VISIT}.",
    "Medical record number: {EN_RECORD}; bed {BED}; SSN {SSN}.",
    "Signed by {EN_NAME}, attending physician, on {keep:EN_VISIT}.",
    "Ms. {EN_LAST}, born on {EN_DOB}, reports headaches; potassium {keep:K}.",
    "Please call {EN_PHONE} to reschedule. Patient portal: {URL}",
    "{EN_NAME} was seen in clinic today; weight {keep:EN_WEIGHT}, heart rate {keep:HR}.",
    "Passport number: {PASSPORT}. Travel clinic visit on {keep:EN_VISIT}.",
    "Her husband {EN_NAME} says she is {AGE90} years old and lives at {EN_ADDRESS}.",
    "The patient, {EN_NAME}, received amoxicillin {keep:EN_DOSE} every 8 hours.",
]


def _id_number(rng: random.Random) -> str:
    area = rng.choice(["110105", "440305", "330106", "510107", "420111"])
    birth = f"{rng.randint(1930, 2015)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = area + birth + f"{rng.randint(0, 999):03d}"
    return next(body + check for check in "0123456789X" if valid_id_number(body + check))


def _luhn_card(rng: random.Random) -> str:
    body = rng.choice(["6222", "6217", "6228", "4367", "6212"]) + "".join(
        str(rng.randint(0, 9)) for _ in range(rng.choice([11, 14]))
    )
    number = next(body + str(check) for check in range(10) if luhn_valid(body + str(check)))
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return rng.choice([" ", "-", ""]).join(groups)


def _zh_name(rng: random.Random) -> str:
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.05 else rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2, 2])))


def _fillers(rng: random.Random) -> dict:
    """One value for each slot, drawn afresh per snippet."""
    road_no = rng.randint(1, 999)
    address = rng.choice(
        [
            f"{rng.choice(PROVINCES)}{rng.choice(CITIES)}{rng.choice(DISTRICTS)}"
            f"{rng.choice(ROADS)}{road_no}号",
            f"{rng.choice(CITIES)}{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{road_no}号"
            f"{rng.randint(1, 30)}栋{rng.randint(101, 2505)}室",
            f"{rng.choice(DISTRICTS)}{rng.choice(ROADS)}{road_no}号",
        ]
    )
    first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
    month = rng.choice(["Jan", "March", "Apr", "July", "Sept", "Nov"])
    return {
        "NAME": _zh_name(rng),
        "EN_NAME": f"{first} {last}",
        "EN_LAST": last,
        "ADDRESS": address,
        "EN_ADDRESS": f"{rng.randint(1, 9999)} {rng.choice(EN_STREETS)}, {rng.choice(EN_CITIES)}",
        "PHONE": rng.choice(["13", "15", "18", "17"])
        + rng.choice("0123456789")
        + "".join(str(rng.randint(0, 9)) for _ in range(8)),
        "LANDLINE": f"0{rng.choice(['10', '21', '755', '571'])}-{rng.randint(2000000, 89999999)}",
        "EN_PHONE": f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        "ID": _id_number(rng),
        "RECORD": rng.choice(["", "ZY", "MZ", "BA"]) + str(rng.randint(10000, 99999999)),
        "EN_RECORD": rng.choice(["", "MRN-"]) + str(rng.randint(100000, 99999999)),
        "BED": str(rng.randint(1, 60)),
        "DOB": rng.choice(
            [
                f"{rng.randint(1930, 2015)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
                f"{rng.randint(1930, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            ]
        ),
        "EN_DOB": rng.choice(
            [
                f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(1930, 2015)}",
                f"{month} {rng.randint(1, 28)}, {rng.randint(1930, 2015)}",
            ]
        ),
        "AGE90": str(rng.randint(90, 104)),
        "CARD": _luhn_card(rng),
        "PASSPORT": rng.choice("EG") + "".join(str(rng.randint(0, 9)) for _ in range(8)),
        "HKPERMIT": "C" + "".join(str(rng.randint(0, 9)) for _ in range(8)),
        "PLATE": rng.choice(PLATE_PROVINCES)
        + rng.choice(PLATE_LETTERS)
        + "".join(rng.choice("0123456789" + PLATE_LETTERS) for _ in range(5)),
        "WECHAT": rng.choice(["wx_", "zhang", "li", "doc", "mama"])
        + "".join(rng.choice("abcdefghijk0123456789_") for _ in range(rng.randint(4, 9))),
        "QQ": str(rng.randint(10000, 9999999999)),
        "EMAIL": f"{rng.choice(['zhang.wei', 'jsmith', 'li_na88', 'patient01'])}@"
        f"{rng.choice(['163.com', 'qq.com', 'gmail.com', 'hospital.org.cn'])}",
        "URL": f"https://{rng.choice(['report', 'his', 'portal'])}.hospital{rng.randint(1, 99)}"
        f".cn/p?id={rng.randint(1000, 99999)}",
        "SSN": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        # medical values that must survive
        "AGE": str(rng.randint(18, 89)),
        "CHILD_AGE": f"{rng.randint(1, 11)}岁",
        "BP": f"{rng.randint(100, 190)}/{rng.randint(60, 115)}mmHg",
        "GLUCOSE": f"{rng.randint(40, 180) / 10}mmol/L",
        "VISIT": rng.choice(
            [
                f"{rng.randint(2019, 2025)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
                f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            ]
        ),
        "EN_VISIT": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "TEMP": f"{rng.randint(365, 412) / 10}℃",
        "EN_TEMP": f"{rng.randint(980, 1040) / 10}°F",
        "DOSE": f"{rng.choice([5, 10, 20, 40, 100, 250, 500, 850])}mg",
        "EN_DOSE": f"{rng.choice([5, 10, 20, 40, 250, 500])} mg",
        "HBA1C": f"{rng.randint(55, 120) / 10}%",
        "WBC": f"{rng.randint(30, 200) / 10}×10^9/L",
        "HR": f"{rng.randint(50, 140)}次/分",
        "WEIGHT": f"{rng.randint(8, 40)}kg",
        "EN_WEIGHT": f"{rng.randint(45, 120)} kg",
        "GESTATION": f"{rng.randint(8, 40)}周",
        "HB": f"{rng.randint(80, 160)}g/L",
        "VOLUME": f"{rng.choice([100, 250, 500])}ml",
        "K": f"{rng.randint(30, 55) / 10} mmol/L",
    }


ENTITY = {
    "NAME": "NAME", "EN_NAME": "NAME", "EN_LAST": "NAME", "ADDRESS": "ADDRESS",
    "EN_ADDRESS": "ADDRESS", "PHONE": "PHONE", "LANDLINE": "PHONE", "EN_PHONE": "PHONE",
    "ID": "ID_NUMBER", "RECORD": "RECORD_NO", "EN_RECORD": "RECORD_NO", "BED": "RECORD_NO",
    "DOB": "DATE_OF_BIRTH", "EN_DOB": "DATE_OF_BIRTH", "AGE90": "AGE", "CARD": "BANK_CARD",
    "PASSPORT": "PASSPORT", "HKPERMIT": "PASSPORT", "PLATE": "LICENSE_PLATE",
    "WECHAT": "WECHAT", "QQ": "QQ", "EMAIL": "EMAIL", "URL": "URL", "SSN": "SSN",
}  # fmt: skip
_SLOT = re.compile(r"\{(keep:)?([A-Z_0-9]+)\}")


def snippet(template: str, rng: random.Random) -> dict:
    """Fill one template; the same name slot twice in a template is the same person."""
    values = _fillers(rng)
    text, spans, keep, position = "", [], [], 0
    for match in _SLOT.finditer(template):
        text += template[position : match.start()]
        value = values[match.group(2)]
        start, end = len(text), len(text) + len(value)
        if match.group(1):
            keep.append({"start": start, "end": end})
        else:
            spans.append({"start": start, "end": end, "entity": ENTITY[match.group(2)]})
        text += value
        position = match.end()
    text += template[position:]
    return {"text": text, "spans": spans, "keep": keep}


def labelled_set(count: int = 600, seed: int = 7) -> list[dict]:
    """`count` snippets, two Chinese for each English one, in a seeded order."""
    rng = random.Random(seed)
    return [snippet(rng.choice(EN if i % 3 == 2 else ZH), rng) for i in range(count)]


_MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]|\{\{(.+?)\}\}")


def parse_marked(line: str) -> dict | None:
    """A hand-labelled line -> a labelled item: [[ENTITY:text]] marks an identifier,
    {{text}} a medical value that must survive; a blank or '#' line -> None."""
    if not line.strip() or line.startswith("#"):
        return None
    text, spans, keep, position = "", [], [], 0
    for match in _MARK.finditer(line):
        text += line[position : match.start()]
        value = match.group(2) if match.group(1) else match.group(3)
        start, end = len(text), len(text) + len(value)
        if match.group(1):
            spans.append({"start": start, "end": end, "entity": match.group(1)})
        else:
            keep.append({"start": start, "end": end})
        text += value
        position = match.end()
    return {"text": text + line[position:], "spans": spans, "keep": keep}


def write_set(argv: list[str], make_set: Callable[[int, int], list[dict]], seed: int) -> None:
    """`OUT.jsonl [--count 600] [--seed SEED]`: a labelled set, one item a JSON line."""
    out = Path(argv[0])
    count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 600
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else seed
    with open(out, "w", encoding="utf-8") as handle:
        for item in make_set(count, seed):
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> None:
    write_set(argv, labelled_set, seed=7)


if __name__ == "__main__":
    main(sys.argv[1:])
