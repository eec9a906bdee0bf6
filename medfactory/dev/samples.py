"""Write the bundled sample files under dataset_info/samples/ (deterministic).

The samples are in the exact upstream formats (HuatuoGPT-sft-data-v1 jsonl,
medical-o1-reasoning-SFT JSON arrays) and were composed for this project from
the clinical notes below. Besides ordinary records they hold every awkward
case the converters must handle: ASCII colons, trailing questions, duplicates
and near-duplicates, personal identifiers, malformed lines, broken UTF-8.

A third file is a hospital export: a GBK-encoded CSV with Chinese column names,
identifiers in the patients' words, an empty answer, a repeated row, a blank row.

    python -m medfactory.dev.samples    # rewrites the files; run `make data` after
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "dataset_info" / "samples"

# condition, typical complaint, follow-up question, advice, examination, medicine
CONDITIONS = [
    (
        "感冒",
        "鼻塞流涕、咽痛，体温37.8℃",
        "需要吃抗生素吗？",
        "多休息、多饮水，对症使用退热药",
        "一般无需检查，高热不退时查血常规",
        "对乙酰氨基酚",
    ),
    (
        "急性胃肠炎",
        "腹泻每天五六次，伴恶心",
        "能吃东西吗？",
        "清淡饮食，少量多次补充口服补液盐",
        "大便常规",
        "蒙脱石散",
    ),
    (
        "高血压",
        "头晕，血压160/100mmHg",
        "降压药需要一直吃吗？",
        "低盐饮食、规律运动，遵医嘱长期服药",
        "24小时动态血压、肾功能",
        "氨氯地平",
    ),
    (
        "2型糖尿病",
        "口渴多饮，空腹血糖9.6mmol/L",
        "饮食上要注意什么？",
        "控制总热量，主食定量，餐后适当运动",
        "糖化血红蛋白HbA1c、尿微量白蛋白",
        "二甲双胍",
    ),
    (
        "偏头痛",
        "一侧搏动性头痛，怕光怕声",
        "头痛发作时怎么办？",
        "安静避光处休息，记录头痛日记找诱因",
        "必要时头颅磁共振",
        "布洛芬",
    ),
    (
        "过敏性鼻炎",
        "早晨连续打喷嚏、清水样鼻涕",
        "会不会变成哮喘？",
        "避开过敏原，坚持鼻腔冲洗",
        "过敏原检测",
        "氯雷他定",
    ),
    (
        "缺铁性贫血",
        "乏力、面色苍白，血红蛋白95g/L",
        "吃什么补血？",
        "多吃红肉、动物肝脏，同时查找失血原因",
        "血清铁蛋白、大便潜血",
        "硫酸亚铁",
    ),
    (
        "腰椎间盘突出",
        "腰痛向左腿放射，弯腰加重",
        "需要做手术吗？",
        "多数保守治疗有效，避免久坐和弯腰搬重物",
        "腰椎磁共振",
        "塞来昔布",
    ),
    (
        "胃食管反流",
        "饭后烧心、反酸，夜间加重",
        "睡觉时要注意什么？",
        "睡前3小时不进食，床头抬高15到20厘米",
        "胃镜",
        "奥美拉唑",
    ),
    (
        "尿路感染",
        "尿频尿急尿痛两天",
        "多喝水有用吗？",
        "多饮水勤排尿，按疗程用药",
        "尿常规、尿培养",
        "呋喃妥因",
    ),
    (
        "甲状腺功能亢进",
        "心慌、手抖、体重两个月下降5公斤",
        "这个病能治好吗？",
        "规范治疗多数可控制，避免高碘饮食",
        "甲功五项、甲状腺超声",
        "甲巯咪唑",
    ),
    (
        "支气管哮喘",
        "夜间咳嗽、胸闷，听诊有哮鸣音",
        "吸入激素安全吗？",
        "规律使用吸入药物，随身携带缓解药",
        "肺功能及支气管舒张试验",
        "布地奈德福莫特罗",
    ),
    (
        "湿疹",
        "小腿皮肤瘙痒、红斑渗出",
        "可以用热水烫吗？",
        "避免热水烫洗和搔抓，坚持使用保湿霜",
        "一般无需检查",
        "糠酸莫米松乳膏",
    ),
    (
        "痛风",
        "夜间第一跖趾关节红肿剧痛，尿酸520μmol/L",
        "平时能喝啤酒吗？",
        "戒酒，少吃动物内脏和海鲜，多饮水",
        "血尿酸、关节超声",
        "秋水仙碱",
    ),
    (
        "幽门螺杆菌感染",
        "上腹隐痛，呼气试验阳性",
        "家里人需要一起查吗？",
        "共同进餐的家人建议一起检查，使用公筷",
        "碳13呼气试验",
        "四联疗法",
    ),
    (
        "失眠",
        "入睡困难，每晚只睡4小时，持续两个月",
        "安眠药会上瘾吗？",
        "固定作息，睡前不看手机，白天不补觉",
        "睡眠评估量表",
        "短期小剂量艾司唑仑",
    ),
    (
        "颈椎病",
        "颈肩酸痛，右手指尖发麻",
        "枕头怎么选？",
        "枕头高度约一拳，避免长时间低头",
        "颈椎磁共振",
        "甲钴胺",
    ),
    (
        "急性扁桃体炎",
        "咽痛明显，扁桃体肿大有脓点，发热39℃",
        "会传染吗？",
        "注意休息和口腔卫生，细菌感染需足疗程用药",
        "血常规、咽拭子",
        "阿莫西林",
    ),
    (
        "脂肪肝",
        "体检超声提示中度脂肪肝，转氨酶轻度升高",
        "能逆转吗？",
        "减重5%到10%、戒酒，多数可以好转",
        "肝功能、血脂",
        "一般先不用药",
    ),
    (
        "带状疱疹",
        "右侧胸背部成簇水疱，烧灼样疼痛",
        "以后还会再发吗？",
        "尽早抗病毒治疗，保持皮损清洁",
        "一般临床诊断即可",
        "伐昔洛韦",
    ),
    (
        "妊娠期贫血",
        "孕24周，血红蛋白98g/L",
        "补铁会影响胎儿吗？",
        "规范补铁对胎儿安全，同时补充维生素C促进吸收",
        "血常规、铁蛋白",
        "多糖铁复合物",
    ),
    (
        "小儿发热",
        "孩子3岁，发热38.9℃，精神尚可",
        "什么时候要去医院？",
        "精神差、抽搐、持续高热超过3天应及时就医",
        "血常规",
        "布洛芬混悬液",
    ),
    (
        "冠心病",
        "活动后胸闷，休息5分钟缓解",
        "平时运动要注意什么？",
        "循序渐进的有氧运动，出现胸痛立即停止",
        "心电图、冠脉CTA",
        "阿司匹林",
    ),
    (
        "骨质疏松",
        "绝经后腰背痛，骨密度T值-2.8",
        "补钙就够了吗？",
        "补钙和维生素D同时要抗骨质疏松治疗，防跌倒",
        "骨密度、血钙",
        "阿仑膦酸钠",
    ),
    (
        "慢性胃炎",
        "饭后饱胀、嗳气半年",
        "需要长期吃药吗？",
        "规律饮食，少吃辛辣刺激食物",
        "胃镜",
        "莫沙必利",
    ),
]
PATIENTS = ["我", "我妈妈", "我爸爸", "我爱人", "我孩子", "我奶奶", "我同事"]
AGES = ["25岁", "32岁", "45岁", "58岁", "67岁", "8岁", "73岁"]
DURATIONS = ["两天", "一周", "半个月", "一个月", "三个月", "半年"]
CLOSINGS = ["谢谢医生！", "明白了，谢谢。", "好的，我去医院看看。", "还需要复查吗？"]


def huatuo_dialogue(rng: random.Random) -> dict:
    name, complaint, followup, advice, exam, drug = rng.choice(CONDITIONS)
    who, age, days = rng.choice(PATIENTS), rng.choice(AGES), rng.choice(DURATIONS)
    first_q = f"{who}{age}，{complaint}，已经{days}了，是不是{name}？该怎么办？\n"
    first_a = (
        f"根据您的描述，考虑{name}的可能性较大。建议到医院做{exam}明确诊断。"
        f"平时{advice}。药物方面可在医生指导下使用{drug}，不要自行加量或停药。"
    )
    data = [f"问：{first_q}", f"答：{first_a}"]
    if rng.random() < 0.55:
        data += [f"问：{followup}\n", f"答：{followup_answer(name, advice, drug, rng)}"]
    if rng.random() < 0.25:
        closing = rng.choice(CLOSINGS)
        reply = (
            "一般建议治疗后2到4周复查，有不适随时就诊。"
            if "复查" in closing
            else "不客气，祝早日康复。"
        )
        data += [f"问：{closing}\n", f"答：{reply}"]
    return {"data": data}


def followup_answer(name: str, advice: str, drug: str, rng: random.Random) -> str:
    return rng.choice(
        [
            f"{name}的处理关键在于坚持，{advice}。{drug}是否需要长期使用，要根据复查结果由医生决定。",
            f"这个问题很常见。{advice}，如果症状加重或出现新的不适，请及时就医。",
            f"不必过于担心，{name}是可以控制的。请按医嘱使用{drug}，并定期随访。",
        ]
    )


def huatuo_awkward() -> list[bytes]:
    """Lines that exercise every branch of the HuatuoGPT reader."""
    lines = [
        {
            "data": [
                "问:头晕乏力一周，血压90/60mmHg，要紧吗？",
                "答:血压偏低，注意补充水分和营养，起身要慢，症状持续请就医。",
            ]
        },
        {
            "data": [
                "问：孩子咳嗽三天了\n",
                "答：建议先观察体温和精神状态，多饮水。",
                "问：晚上咳得厉害怎么办？\n",
            ]
        },
        {"data": ["答：先回答再提问的记录", "问：这是错误的顺序"]},
        {"data": ["问：连续两个问题", "问：顺序错了", "答：回答"]},
        {"data": ["问：   ", "答：空问题"]},
        {"data": ["问：有人吗？\n"]},
        {"data": []},
        {"data": ["问：没有前缀的回答", "没有角色前缀"]},
        {"data": ["问：数字回合", 42]},
        {"dialogue": ["问：键名错了", "答：应该是data"]},
        ["问：顶层是数组", "答：不是对象"],
        {
            "data": [
                "问：请联系我，电话13912345678，邮箱li.si@example.com，身份证11010519491231002X。\n",
                "答：请不要在网上公开个人信息。您可以拨打医院座机010-65123456预约，或访问https://www.example-hospital.cn/booking。",
            ]
        },
        {
            "data": [
                "问：我血压180/110mmHg，HbA1c 8.2%，2023年5月12日开始服用二甲双胍500mg每日两次，正常吗？\n",
                "答：血压明显偏高，需要尽快就诊调整降压方案；HbA1c 8.2%提示血糖控制欠佳，二甲双胍剂量需由医生评估。",
            ]
        },
        {"data": ["问：长记录" + "症状描述很长。" * 2400, "答：请简要描述主要症状。"]},
    ]
    encoded = [json.dumps(line, ensure_ascii=False).encode() for line in lines]
    encoded.append(
        b'{"data": ["\xe9\x97\xae\xef\xbc\x9a\xff\xfe broken bytes", "\xe7\xad\x94\xef\xbc\x9aok"]}'
    )
    encoded.append(
        b'{"data": ["\xe9\x97\xae\xef\xbc\x9a\xe7\xbc\xba\xe5\xb0\x91\xe6\x8b\xac\xe5\x8f\xb7", '
    )
    encoded.append(b"not json at all")
    return encoded


def write_huatuo(rng: random.Random) -> None:
    dialogues = [huatuo_dialogue(rng) for _ in range(300)]
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in dialogues]
    # An exact duplicate and a near-duplicate (spacing and punctuation only).
    lines.append(lines[3])
    near = {"data": [t.replace("，", ", ").replace("。", ".") for t in dialogues[5]["data"]]}
    lines.append(json.dumps(near, ensure_ascii=False).encode())
    awkward = huatuo_awkward()
    for i, line in enumerate(awkward):  # spread through the file, not bunched at its end
        lines.insert(20 + i * 19, line)
    lines.insert(40, b"")  # a blank line is not a record
    (OUT / "huatuo_sample.jsonl").write_bytes(b"\n".join(lines) + b"\n")


# medical-o1: vignette, reasoning steps, answer
CASES_ZH = [
    (
        "一名{age}岁男性，突发胸骨后压榨性疼痛{minutes}分钟，伴大汗，心电图示V1-V4导联ST段抬高。最可能的诊断是什么？应如何紧急处理？",
        [
            "胸骨后压榨性疼痛持续时间长，伴大汗，是典型的缺血性胸痛表现。",
            "V1-V4导联ST段抬高提示前壁心肌受累。",
            "结合症状和心电图，应考虑急性前壁ST段抬高型心肌梗死，时间就是心肌。",
        ],
        "最可能的诊断是急性前壁ST段抬高型心肌梗死。应立即嚼服阿司匹林，联系有条件的医院尽快行急诊冠脉介入治疗（PCI），不能及时PCI时考虑溶栓。",
    ),
    (
        "一名{age}岁女性，多饮多尿三个月，体重下降{kg}公斤，空腹血糖13.2mmol/L，尿酮体阳性。首先考虑什么诊断？",
        [
            "多饮、多尿、体重下降是高血糖的典型症状。",
            "空腹血糖明显升高，已达糖尿病诊断标准。",
            "尿酮体阳性提示存在酮症，需警惕糖尿病酮症，患者相对年轻时也要考虑1型糖尿病。",
        ],
        "首先考虑糖尿病合并酮症，需要进一步查血气、血酮和胰岛自身抗体，明确糖尿病分型并及时补液和胰岛素治疗。",
    ),
    (
        "{age}岁儿童，发热{days}天，双眼结膜充血、口唇皲裂、手足硬肿，颈部淋巴结肿大。最可能的诊断及需要警惕的并发症是什么？",
        [
            "持续发热超过5天是重要线索。",
            "结膜充血、口唇改变、肢端硬肿和颈部淋巴结肿大符合皮肤黏膜淋巴结综合征的表现。",
            "该病最重要的并发症是冠状动脉损害。",
        ],
        "最可能的诊断是川崎病，需警惕冠状动脉瘤等冠状动脉病变，应尽早使用静脉丙种球蛋白和阿司匹林，并复查心脏超声。",
    ),
    (
        "一名{age}岁女性，停经{weeks}周，突发下腹剧痛伴晕厥，血压80/50mmHg，尿妊娠试验阳性。最可能的诊断是什么？",
        [
            "育龄女性停经后下腹痛，首先要想到妊娠相关急症。",
            "出现晕厥和低血压，提示腹腔内出血导致失血性休克。",
            "结合妊娠试验阳性，应高度怀疑异位妊娠破裂。",
        ],
        "最可能的诊断是异位妊娠破裂出血伴失血性休克，应立即建立静脉通路、补液备血，并急诊手术止血。",
    ),
    (
        "一名{age}岁男性，长期饮酒，呕血约{ml}毫升，查体可见蜘蛛痣、腹壁静脉曲张和脾大。出血最可能的原因是什么？",
        [
            "长期饮酒史提示酒精性肝病可能。",
            "蜘蛛痣、腹壁静脉曲张和脾大是肝硬化门静脉高压的体征。",
            "门静脉高压患者大量呕血，最常见原因是食管胃底静脉曲张破裂。",
        ],
        "最可能是肝硬化门静脉高压导致的食管胃底静脉曲张破裂出血，需要补液输血、使用生长抑素类药物，并尽早内镜下止血。",
    ),
]
CASES_EN = [
    (
        "A {age}-year-old woman presents with fatigue, weight gain, cold intolerance and constipation for {months} months. TSH is elevated and free T4 is low. What is the most likely diagnosis and first-line treatment?",
        [
            "Fatigue, weight gain, cold intolerance and constipation point to a hypometabolic state.",
            "An elevated TSH with a low free T4 means the thyroid gland itself is failing.",
            "In an iodine-sufficient region the most common cause is autoimmune (Hashimoto) thyroiditis.",
        ],
        "The most likely diagnosis is primary hypothyroidism, most often due to Hashimoto thyroiditis. First-line treatment is levothyroxine, titrated to the TSH.",
    ),
    (
        "A {age}-year-old man has had a productive cough, fever of 39.2 °C and right-sided pleuritic chest pain for {days} days. Chest X-ray shows right lower lobe consolidation. What is the most likely pathogen?",
        [
            "Acute fever, productive cough and pleuritic pain suggest pneumonia.",
            "Lobar consolidation in an otherwise healthy adult from the community is typical of a bacterial cause.",
            "The most common bacterial cause of community-acquired lobar pneumonia is Streptococcus pneumoniae.",
        ],
        "The most likely pathogen is Streptococcus pneumoniae, causing community-acquired lobar pneumonia; empirical treatment follows local guidelines, e.g. amoxicillin for a mild case.",
    ),
    (
        "A {age}-year-old woman has episodic headaches, palpitations and sweating; her blood pressure during an episode is 210/120 mmHg. What test should be ordered first?",
        [
            "Paroxysms of headache, palpitations and sweating with severe hypertension form a classic triad.",
            "This triad suggests a catecholamine-secreting tumour.",
            "The best initial test is biochemical: plasma free metanephrines or 24-hour urine metanephrines.",
        ],
        "Pheochromocytoma is suspected; the first test is plasma free metanephrines (or 24-hour urinary fractionated metanephrines), followed by imaging only after biochemical confirmation.",
    ),
    (
        "A {age}-year-old man with atrial fibrillation suddenly develops severe abdominal pain out of proportion to a soft, non-tender abdomen. Lactate is raised. What is the most likely diagnosis?",
        [
            "Atrial fibrillation is a source of emboli.",
            "Pain out of proportion to the examination is the hallmark of early intestinal ischaemia.",
            "A raised lactate supports ischaemia; the superior mesenteric artery is the usual site of embolic occlusion.",
        ],
        "The most likely diagnosis is acute mesenteric ischaemia from a superior mesenteric artery embolus; CT angiography and urgent revascularisation are needed.",
    ),
]


def medical_o1_records(cases, rng: random.Random, count: int, lead: str) -> list[dict]:
    records = []
    for _ in range(count):
        question, steps, answer = rng.choice(cases)
        values = {
            "age": rng.randint(20, 78) if "儿童" not in question else rng.randint(2, 6),
            "minutes": rng.choice([30, 40, 90, 120]),
            "kg": rng.randint(3, 9),
            "days": rng.randint(3, 9),
            "weeks": rng.randint(6, 9),
            "ml": rng.choice([300, 500, 800]),
            "months": rng.randint(2, 8),
        }
        q = question.format(**values)
        order = steps if rng.random() < 0.7 else [steps[0], *reversed(steps[1:])]
        cot = "\n\n".join([lead] + order + [rng.choice(["Let me double-check.", "再核对一下。"])])
        records.append({"Question": q, "Complex_CoT": cot, "Response": answer})
    return records


def write_medical_o1(rng: random.Random) -> None:
    zh = medical_o1_records(CASES_ZH, rng, 140, "好的，我们来梳理一下。")
    en = medical_o1_records(CASES_EN, rng, 110, "Okay, let's think this through.")
    records = zh + en
    records.insert(10, dict(records[3]))  # exact duplicate
    records.insert(30, {"Question": "缺少思维链和回答的记录"})
    records.insert(50, {"Question": "  ", "Complex_CoT": "空问题", "Response": "无"})
    records.insert(70, {"Question": "回答不是字符串", "Complex_CoT": "x", "Response": ["列表"]})
    records.insert(90, "not an object")
    records.insert(
        110,
        {
            "Question": "患者手机13698765432，邮箱wang@example.org，头痛怎么办？",
            "Complex_CoT": "先排除危险信号。",
            "Response": "无危险信号时可先休息观察，必要时就医。",
        },
    )
    (OUT / "medical_o1_sample.json").write_text(
        json.dumps(records, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


# What a hospital's export holds besides the question: identifiers in the patients'
# own words, each kind that strict de-identification replaces.
CLINIC_IDENTIFIERS = [
    "我叫王建国，电话13812345678。",
    "患者李秀英，女，91岁，住院号ZY20240311。",
    "家住广东省深圳市南山区科技园路18号3栋1202室。",
    "我女儿陈静陪我来的，她的微信号chenjing_88。",
    "身份证110105194912310021，医保卡号3301928374。",
    "床号：12，主治医生：张明。",
    "出生日期：1948年3月12日。",
    "复诊请找刘伟医生，挂号电话010-65123456。",
]
DEPARTMENTS = ["内科", "儿科", "心内科", "消化内科", "内分泌科"]


def clinic_rows(rng: random.Random, count: int = 48) -> list[list[str]]:
    """A consultation export: visit number, department, question, answer. Half the
    questions carry an identifier; one answer is empty, one row repeats another and
    one row is blank."""
    rows = []
    for i in range(count):
        name, complaint, _, advice, exam, drug = rng.choice(CONDITIONS)
        who, age = rng.choice(PATIENTS), rng.choice(AGES)
        question = f"{who}{age}，{complaint}，是不是{name}？"
        if i % 2 == 0:
            question += CLINIC_IDENTIFIERS[(i // 2) % len(CLINIC_IDENTIFIERS)]
        answer = f"考虑{name}的可能性较大。检查：{exam}。{advice}。可在医生指导下使用{drug}。"
        rows.append([f"MZ{2024000 + i}", rng.choice(DEPARTMENTS), question, answer])
    rows[7][3] = ""  # no answer: rejected, with its row
    rows.insert(20, list(rows[19]))  # the same visit exported twice
    rows.insert(30, ["", "", "", ""])  # a blank row: not a record
    return rows


def write_clinic(rng: random.Random) -> None:
    """GBK-encoded, as spreadsheets exported on Chinese Windows are."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["就诊编号", "科室", "患者提问", "医生回答"])
    writer.writerows(clinic_rows(rng))
    (OUT / "clinic_sample.csv").write_bytes(out.getvalue().encode("gbk"))


# subject, question, options, the correct letter: a small exam with known answers
EXAM = [
    ("心血管", "成人高血压的诊断标准（诊室血压）是", ["≥120/80 mmHg", "≥130/85 mmHg", "≥140/90 mmHg", "≥160/100 mmHg"], "C"),
    ("心血管", "急性ST段抬高型心肌梗死最常见的病因是", ["冠状动脉粥样硬化斑块破裂伴血栓形成", "主动脉夹层", "心肌炎", "肺栓塞"], "A"),
    ("心血管", "成人静息状态下正常心率范围是", ["40-60次/分", "60-100次/分", "100-120次/分", "120-150次/分"], "B"),
    ("心血管", "心房颤动患者预防卒中的主要措施是", ["补钾", "抗凝治疗", "利尿", "吸氧"], "B"),
    ("心血管", "硝酸甘油缓解心绞痛的常用给药途径是", ["舌下含服", "肌内注射", "口服吞服", "皮下注射"], "A"),
    ("心血管", "下列哪项是急性心力衰竭的典型表现", ["咳粉红色泡沫痰", "皮肤黄染", "多尿", "便秘"], "A"),
    ("内分泌", "胰岛素由哪种细胞分泌", ["胰岛α细胞", "胰岛β细胞", "肝细胞", "肾小管上皮细胞"], "B"),
    ("内分泌", "糖化血红蛋白（HbA1c）主要反映过去多长时间的平均血糖", ["1周", "2-3个月", "1年", "1天"], "B"),
    ("内分泌", "2型糖尿病无禁忌证时首选的口服降糖药是", ["二甲双胍", "格列本脲", "阿卡波糖", "胰岛素"], "A"),
    ("内分泌", "甲状腺功能减退症的典型实验室表现是", ["TSH降低、FT4升高", "TSH升高、FT4降低", "TSH正常、FT4升高", "TSH降低、FT4降低"], "B"),
    ("内分泌", "空腹血浆葡萄糖达到多少可诊断糖尿病", ["≥5.6 mmol/L", "≥6.1 mmol/L", "≥7.0 mmol/L", "≥11.1 mmol/L"], "C"),
    ("内分泌", "糖尿病酮症酸中毒的首要治疗措施是", ["大量补液", "口服降糖药", "限制饮水", "立即手术"], "A"),
    ("药理", "阿司匹林小剂量长期服用的主要目的是", ["退热", "抗血小板聚集", "降血糖", "降血脂"], "B"),
    ("药理", "青霉素最严重的不良反应是", ["过敏性休克", "便秘", "脱发", "失眠"], "A"),
    ("药理", "华法林抗凝治疗需要监测的指标是", ["血糖", "INR", "血钾", "尿酸"], "B"),
    ("药理", "他汀类药物最主要的作用是降低", ["甘油三酯", "低密度脂蛋白胆固醇", "血尿酸", "血糖"], "B"),
    ("药理", "对乙酰氨基酚过量最主要损害的器官是", ["肝脏", "肺", "心脏", "骨骼"], "A"),
    ("药理", "ACE抑制剂最常见的不良反应是", ["干咳", "多毛", "低血糖", "耳鸣"], "A"),
    ("急救", "成人心肺复苏胸外按压的频率是", ["60-80次/分", "80-100次/分", "100-120次/分", "140-160次/分"], "C"),
    ("急救", "成人心肺复苏胸外按压的深度是", ["2-3 cm", "3-4 cm", "5-6 cm", "7-8 cm"], "C"),
    ("急救", "怀疑脑卒中时最重要的处理是", ["在家观察", "立即拨打急救电话尽快送医", "口服降压药后睡觉", "热敷头部"], "B"),
    ("急救", "严重过敏反应（过敏性休克）的首选药物是", ["肾上腺素", "地塞米松", "氯雷他定", "葡萄糖酸钙"], "A"),
    ("急救", "成人气道异物完全梗阻时应采用", ["拍打胸口", "海姆立克急救法", "喝水冲下", "催吐"], "B"),
    ("急救", "高热惊厥患儿发作时应", ["往嘴里塞东西防咬舌", "侧卧防误吸并保持呼吸道通畅", "用力按住四肢", "立即喂退烧药"], "B"),
]  # fmt: skip


def write_exam() -> None:
    """EvalScope's multiple-choice layout: id, subject, question, A-D, answer."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["id", "subject", "question", "A", "B", "C", "D", "answer"])
    for number, (subject, question, options, answer) in enumerate(EXAM, 1):
        writer.writerow([number, subject, question, *options, answer])
    (OUT / "medical_exam_sample.csv").write_text(out.getvalue(), encoding="utf-8")


# Documents for `data synthesize`: a Markdown guideline, a DOCX protocol, an English PDF.
HYPERTENSION_MD = """# 高血压基层诊疗要点

本资料为示例文档，供演示从指南生成问答之用，内容依据公开的高血压防治指南整理。

## 诊断

在未使用降压药物的情况下，非同日3次测量诊室血压，收缩压≥140 mmHg和/或舒张压≥90 mmHg，可诊断为高血压。家庭血压的诊断标准为≥135/85 mmHg，24小时动态血压的诊断标准为平均≥130/80 mmHg。测量前应安静休息至少5分钟，测量时坐位、上臂与心脏处于同一水平。

## 生活方式干预

所有高血压患者都应进行生活方式干预。每日食盐摄入应少于5克；增加蔬菜、水果和低脂奶制品的摄入；规律进行中等强度有氧运动，每周4到7次，每次30到60分钟；控制体重，使体重指数保持在18.5到23.9之间；戒烟并限制饮酒。

## 药物治疗

常用的五类降压药物是血管紧张素转换酶抑制剂（ACEI）、血管紧张素Ⅱ受体拮抗剂（ARB）、钙通道阻滞剂（CCB）、噻嗪类利尿剂和β受体阻滞剂。ACEI最常见的不良反应是干咳，不能耐受时可换用ARB。妊娠期妇女禁用ACEI和ARB。血压≥160/100 mmHg或高于目标值20/10 mmHg的患者，可起始联合用药。

## 何时转诊

出现血压≥180/110 mmHg并伴有剧烈头痛、胸痛、呼吸困难、言语不清或肢体无力时，提示高血压急症，应立即拨打120或到急诊就诊。
"""

DIABETES_DOCX = [
    ("Title", "2型糖尿病基层管理规范（示例）"),
    ("Heading 1", "诊断标准"),
    (
        None,
        "典型糖尿病症状加随机血糖≥11.1 mmol/L，或空腹血糖≥7.0 mmol/L，或口服葡萄糖耐量试验2小时血糖≥11.1 mmol/L，或糖化血红蛋白≥6.5%，可诊断糖尿病。无典型症状者需改日复查确认。",
    ),
    ("Heading 1", "药物治疗"),
    (
        None,
        "二甲双胍是2型糖尿病无禁忌证时的首选药物，应从小剂量开始，随餐服用以减少胃肠道反应。估算肾小球滤过率低于30 ml/min/1.73m²时禁用二甲双胍。合并动脉粥样硬化性心血管疾病的患者，可加用有心血管获益证据的SGLT2抑制剂或GLP-1受体激动剂。",
    ),
    ("Heading 1", "低血糖的识别与处理"),
    (
        None,
        "低血糖表现为心慌、出汗、手抖、饥饿感，严重时出现意识障碍。血糖低于3.9 mmol/L且意识清醒时，应立即口服15到20克葡萄糖，15分钟后复测血糖；意识不清者不可经口喂食，应立即拨打120。",
    ),
]

ASTHMA_PDF = [
    "Asthma in adults: a sample primary care summary",
    "This sample document was written to demonstrate drafting questions from guidelines.",
    "Diagnosis. Asthma causes wheeze, breathlessness, chest tightness and cough that vary",
    "over time. Spirometry with a bronchodilator reversibility test supports the diagnosis;",
    "an increase in FEV1 of 12 percent and 200 ml after a bronchodilator is significant.",
    "Treatment. Inhaled corticosteroids are the basis of long-term control. A short-acting",
    "beta2 agonist relieves symptoms; needing it more than twice a week means poor control.",
    "Inhaler technique and adherence should be checked at every review.",
    "Emergencies. Severe breathlessness, inability to complete sentences or blue lips signal",
    "a life-threatening attack: call emergency services at once.",
]


def write_docx(path: Path, paragraphs: list[tuple[str | None, str]]) -> None:
    import docx

    document = docx.Document()
    document.core_properties.created = datetime.datetime(2026, 1, 1)  # the same bytes each time
    for style, text in paragraphs:
        document.add_paragraph(text, style=style)
    document.save(str(path))


def write_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF of text lines in Helvetica, written by hand (no PDF library needed)."""
    text = " ".join(
        f"({line.replace(chr(92), chr(92) * 2).replace('(', chr(92) + '(').replace(')', chr(92) + ')')}) Tj T*"
        for line in lines
    )
    stream = f"BT /F1 10 Tf 14 TL 50 780 Td {text} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))


def write_documents() -> None:
    folder = OUT / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hypertension.md").write_text(HYPERTENSION_MD, encoding="utf-8")
    write_docx(folder / "diabetes.docx", DIABETES_DOCX)
    write_pdf(folder / "asthma.pdf", ASTHMA_PDF)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    write_huatuo(random.Random(20260101))
    write_medical_o1(random.Random(20260102))
    write_clinic(random.Random(20260103))
    write_exam()
    write_documents()
    print(
        f"wrote {OUT}/huatuo_sample.jsonl, medical_o1_sample.json, clinic_sample.csv "
        "medical_exam_sample.csv and documents/"
    )
