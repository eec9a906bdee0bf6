"""A labelled set of names with rare surnames (the whole Hundred Family Surnames list: 宰,
莘, 双, 乜, 缑, 闻人, 宗政 ...), in the contexts a hospital export names a person in, with
medicines that start with a surname's character (王不留行, 白术, 常山) and diagnoses
(高血压) that must survive. Scored by benchmarks/deid.py like the other labelled sets.

    python -m medfactory.dev.deid_rare_surnames [COUNT] [SEED] > rare_surnames.jsonl
"""

from __future__ import annotations

import random
import re
import sys

from medfactory.dev.deid_samples import write_set

RARE_SURNAMES = (
    "宰莘双乜缑谯笪堵沃蔚毋贡汲蓬卻琴昌凤滑弓牧仰咸籍苍扶寿慎弘禄巢钦汝墨"
    "水经家松山秋怀能通充习鱼终步广东越融空养须后红益法有归爱言福"
)
RARE_COMPOUNDS = ("闻人", "宗政", "濮阳", "淳于", "鲜于", "闾丘", "亓官", "颛孙", "漆雕", "公羊")
GIVEN = "超平娟伟芳敏静丽强磊军洋勇艳杰涛明兰霞刚玉萍华红辉鹏飞斌宇浩凯健俊帆旭宁欣佳怡雪梅琳婷"
# {N}: the name; {M}: a medical word that must survive.
TEMPLATES = (
    "患者{N}，住院号{R}，因胸闷3天入院。",
    "病人{N}，既往{M}病史。",
    "家属{N}，电话已留。",
    "{N}女士今日复诊，血压150/95mmHg。",
    "{N}先生，主诉头晕2天。",
    "{N}同志，请到3号诊室。",
    "我是{N}，想咨询一下{M}的用法。",
    "我叫{N}，最近睡不好。",
    "姓名：{N} 性别：女 年龄：45岁",
    "{N}，女，32岁，因{M}就诊。",
    "{N}，男，60岁，处方{M}。",
    "联系人：{N}，与患者关系：女儿。",
    "患者{N}（住院号{R}）用{M}后好转。",
)
MEDICAL = (
    "王不留行",
    "白术",
    "高血压",
    "常山",
    "白芍",
    "黄芪",
    "高血脂",
    "金银花",
    "石斛",
    "马齿苋",
)


def _name(rng: random.Random) -> str:
    surname = rng.choice(RARE_COMPOUNDS) if rng.random() < 0.15 else rng.choice(RARE_SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def rare_surname_set(count: int = 300, seed: int = 5) -> list[dict]:
    """`count` labelled snippets: each name a NAME span, each medical word a keep span."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        template = TEMPLATES[i % len(TEMPLATES)]
        text, spans, keep = "", [], []
        for part in re.split(r"(\{[NMR]\})", template):
            value = {
                "{N}": _name(rng),
                "{M}": rng.choice(MEDICAL),
                "{R}": str(rng.randrange(10**7, 10**8)),
            }.get(part, part)
            span = {"start": len(text), "end": len(text) + len(value)}
            if part == "{M}":
                keep.append(span)
            elif part in ("{N}", "{R}"):
                spans.append({**span, "entity": "NAME" if part == "{N}" else "RECORD_NO"})
            text += value
        items.append({"text": text, "spans": spans, "keep": keep})
    return items


def main(argv: list[str]) -> None:
    write_set(argv, rare_surname_set, seed=5)


if __name__ == "__main__":
    main(sys.argv[1:])
