"""What counts as an identifier in Chinese and English medical text, as regular expressions.

Each rule is one Presidio pattern: its entity type, a regex in the syntax of
the `regex` module (which Presidio uses; it allows the variable-length
look-behinds that keep context words such as 住院号 out of the replaced span),
a score, and optionally a checksum. Without an NER model, a name or an address
is found by its context: a title, a field label, a kinship word, an
administrative unit. Medical numbers (doses, lab values, blood pressure, the
date of a visit) match none of these, by construction: numbers are taken only
after a label, or in shapes no measurement has (an 11-digit mobile number, an
18-digit ID with a valid checksum, a card number with a valid Luhn digit).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.clean import PII_KINDS, valid_id_number

# The placeholder each entity type is replaced with.
PLACEHOLDERS = {
    "NAME": "[NAME]",
    "ADDRESS": "[ADDRESS]",
    "RECORD_NO": "[RECORD_NO]",
    "DATE_OF_BIRTH": "[DOB]",
    "AGE": "[AGE]",
    "BANK_CARD": "[BANK_CARD]",
    "PASSPORT": "[PASSPORT]",
    "LICENSE_PLATE": "[PLATE]",
    "WECHAT": "[WECHAT]",
    "QQ": "[QQ]",
    "PHONE": "[PHONE]",
    "ID_NUMBER": "[ID_NUMBER]",
    "EMAIL": "[EMAIL]",
    "URL": "[URL]",
    "SSN": "[SSN]",
    "IP_ADDRESS": "[IP]",
}


# Which type a span gets when two rules find the same span with the same score (18
# digits can pass both the ID and the Luhn checksum): the more specific first.
PRECEDENCE = (
    "ID_NUMBER", "PHONE", "EMAIL", "URL", "SSN", "PASSPORT", "BANK_CARD", "RECORD_NO",
    "DATE_OF_BIRTH", "AGE", "LICENSE_PLATE", "WECHAT", "QQ", "IP_ADDRESS", "NAME", "ADDRESS",
)  # fmt: skip


def _cjk_without(excluded: str) -> str:
    """A character class of the CJK unified ideographs minus `excluded`, as ranges:
    one table lookup per character, where a look-ahead per character costs several."""
    codes = sorted({ord(c) for c in excluded if "\u4e00" <= c <= "\u9fa5"})
    ranges, start = [], 0x4E00
    for code in [*codes, 0x9FA6]:
        if code > start:
            ranges.append(f"{chr(start)}-{chr(code - 1)}" if code - 1 > start else chr(start))
        start = code + 1
    return f"[{''.join(ranges)}]"


def alternation(words: str) -> str:
    """'患者|患儿|病人' -> '患(?:者|儿)|病人': alternatives grouped by their first
    character, which `re` tests once instead of once per word."""
    groups: dict[str, list[str]] = {}
    for word in sorted(set(words.split("|")), key=lambda w: (-len(w), w)):
        groups.setdefault(word[0], []).append(word[1:])
    return "|".join(
        first + (f"(?:{'|'.join(rest)})" if len(rest) > 1 or rest[0] else "")
        if all(rest)
        else first + (f"(?:{'|'.join(r for r in rest if r)})?" if any(rest) else "")
        for first, rest in groups.items()
    )


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


@dataclass(frozen=True)
class Rule:
    """One pattern. `before` is the context that must precede the identifier (a label,
    a title) and is not replaced; `body` is the identifier itself."""

    entity: str
    name: str
    body: str
    before: str = ""
    score: float = 0.85
    valid: Callable[[str], bool] | None = None  # a checksum the match must pass
    invalid: Callable[[str], bool] | None = None  # a match that is not what the rule seeks

    @property
    def regex(self) -> str:
        r"""Presidio's form: the context matched, then `\K` (the `regex` module's "keep
        out"), so only the body is replaced. A look-behind would do the same, but it is
        tried at every position of the text: 4-10x slower than a context that starts
        with its own first character."""
        return f"(?:{self.before})\\K(?:{self.body})" if self.before else self.body

    @property
    def forward(self) -> str:
        """The pre-check's form, which finds a text wherever `regex` does: the context
        then the body."""
        return f"(?:{self.before})(?:{self.body})" if self.before else self.body


# --- building blocks ------------------------------------------------------------

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
_SEP = r"[：:#＃\s]{0,3}(?:为|是|is)?\s?"  # between a label and its value

# The 300 most common Chinese surnames (over 95 % of the population), rarer ones that are
# no everyday characters, and the compound ones; not 由, which starts 患者由家属陪同.
_SINGLE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕"
    "屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧"
    "闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥"
    "南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支"
    "卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿鲜印"
    "逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭"
    "萧傅阎赖洪贝钮荀糜宓蓟鄂濮郦邴贲酆麴羿隗郗钭韶逄璩郏宦庾暨殳夔厍訾蒯竺桓"
    # the rest of the Hundred Family Surnames that are no everyday characters
    "汲蓬鬱莘贡堵宰卻沃蔚毋乜缑谯笪琴昌凤滑弓牧仰暴咸籍苍扶寿慎弘禄巢钦汝墨"
)
# The Hundred Family Surnames that are everyday characters (山, 东, 双, 有, 经 ...): a name
# only where the context says one comes (患者双娟娟，; 双娟娟，女，32岁), never before a
# mere title or verb, where they start words (经医生, 有医生, 家人陪同).
_EVERYDAY_SURNAMES = "水经家松山秋怀从能双通别充习鱼终步广东越融空养须后红益法有归年爱言福"
_COMPOUND_SURNAMES = (
    "欧阳|司马|诸葛|上官|东方|皇甫|令狐|慕容|尉迟|公孙|长孙|宇文|司徒|夏侯|轩辕|端木|独孤|南宫|"
    "西门|百里|呼延|万俟|东郭|申屠|第五|澹台|公冶|太史|钟离|赫连|拓跋|闻人|宗政|濮阳|淳于|"
    "单于|太叔|仲孙|鲜于|闾丘|司空|亓官|司寇|仉督|子车|颛孙|巫马|公西|漆雕|乐正|壤驷|公良|"
    "夹谷|宰父|谷梁|段干|百里|东门|南门|羊舌|微生|梁丘|左丘|公羊|归海|伯赏|商牟"
)
_SURNAME = f"(?:{_COMPOUND_SURNAMES}|[{_SINGLE_SURNAMES}])"
# Characters that end a name where no punctuation does: function words, the words of a
# case history (因, 于, 诉, 出现 ...), body parts and symptoms, and 某, which marks a
# name already masked. A given name is one or two characters outside this set.
_NOT_IN_NAME = (
    "的了是在因于自今昨近前后入出来去到以对被把从为已仍也都就还才说诉称述感觉患病症痛咳血热某"
    "岁男女伴及与等各每该其此这那个位名年日周次时分点性头腹胸背腰腿手足眼耳口鼻喉肺肝胃肾"
    "反术诊查服用行既否未无有不需要应能会将曾现经再又并而但或即且得着过给让使被几多少低"
    "左右内外先士医师夫护主任科室床号院由陪代带问请叫称签同表回做看找打拿交送接办答讲告知认确"
    "携拒巡"
)
_GIVEN = _cjk_without(_NOT_IN_NAME)
_NAME_END = rf"(?=[{_NOT_IN_NAME}]|[\s，,。.；;、：:！!？?（()）“”\"'0-9]|$)"
# Everyday words that start with a surname's character (患者常规检查, 患者平素体健, 与患者关系):
# never a name. The words of case histories, and the common words of jieba's dictionary
# (its word frequencies; names, which it tags nr, left out).
_CASE_HISTORY_WORDS = (
    "常规|常见|常有|常常|常伴|常用|平素|平时|平卧|平均|平稳|平衡|全身|全部|全天|全血|全麻|明显|"
    "明确|明日|明天|高血|高热|高烧|高度|高压|高危|白细|白天|白色|时间|时常|时有|经常|应该|应用|"
    "应当|应激|方面|方法|安全|安静|安眠|文化|金属|石膏|于是|由于|向下|向上|成人|成年|成分|信号|"
    "信息|强烈|强度|强迫|海绵|海鲜|国内|国外|国家|康复|谢谢|乐观|乐意|元素|元气|华法|余下|余量|"
    "任何|任意|许多|许久|周围|周身|周期|程度|马上|管理|黄色|黄疸|黄斑|温度|温和|易感|易于|易发|"
    "连续|连同|牛奶|牛肉|尤其|严重|严格|甘油|包括|包块|梅毒|单纯|单独|单侧|双侧|双肺|季节|项目|"
    "简单|能量|申请|卫生|宫颈|宫腔|宫外|谷丙|谷草|曲线|蓝色|路上|游离|辛辣|柴胡|蒙脱|房颤|房室|"
    "屈曲|解热|解痉|解除|艾滋|艾灸|阳性|农药|司机|古代|简易|车辆|车祸|冷汗|冷敷|米饭|桂枝|边缘|"
    "师傅|商量|查体|查房|查看|麻木|麻醉|麻疹|迟发|迟缓|封闭|谈话|郁闷|原发|原因|原来|燕麦|劳累|"
    "劳动|皮肤|皮疹|皮下|粟粒|满月|闻及|位置|厉害|区域|区别|花粉|花生|权衡|豆浆|丰富|支架|计划|"
    "相关|相同|相应|初步|初次|初期|门诊|容易|容量|来院|来诊|都是|普通|薄荷|羊水|阿司|阿莫|母乳|"
    "那么|危险|危害|玉米|银屑|亢进|公斤|公分|利尿|利于|呼吸|居住|干燥|干咳|干预|但是|衣服|展开|"
    "阴性|阴道|智力|植物|衡量|富含|闭经|闭合|关系|关节|关注|关于|关心|关键|方式|方案|方向|"
    "周一|周二|周三|周四|周五|周六|周日|周末|周内"
)


def _common_words(surnames: str, frequency: int = 1000) -> list[str]:
    """Two-character words of jieba's dictionary seen at least `frequency` times that
    start with one of `surnames`, names excepted; none without jieba (read, not imported)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.origin:
        return []
    words = []
    with open(Path(spec.origin).with_name("dict.txt"), encoding="utf-8") as dictionary:
        for line in dictionary:
            word, count, tag = line.split()
            ours = len(word) == 2 and word[0] in surnames and not tag.startswith("nr")
            if ours and int(count) >= frequency:
                words.append(word)
    return words


# The twenty commonest surnames start too many names that are also words (王国强, 高峰):
# for them, only the case-history words.
_COMMONEST_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


@functools.cache
def not_names() -> frozenset[str]:
    """Built at the first match, not at import: reading jieba's dictionary takes 0.2 s,
    which a conversion without --deid strict need not pay."""
    others = "".join(c for c in _SINGLE_SURNAMES if c not in _COMMONEST_SURNAMES)
    return frozenset(_CASE_HISTORY_WORDS.split("|") + _common_words(others))


def everyday_word(name: str) -> bool:
    """Whether a found name starts with an everyday word: not a name, then. Checked on
    each match rather than in the pattern, where 2,000 words would slow every search."""
    return name[:2] in not_names()


@functools.cache
def dictionary_words(frequency: int = 20) -> frozenset[str]:
    """Two- and three-character words of jieba's dictionary seen at least `frequency`
    times, names (tagged nr) left out: what a name found without a surname list must
    not be (神志, 配合, 学生, 高血压). Read at the first such match."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.origin:
        return frozenset()
    words = []
    with open(Path(spec.origin).with_name("dict.txt"), encoding="utf-8") as dictionary:
        for line in dictionary:
            word, count, tag = line.split()
            if len(word) in (2, 3) and not tag.startswith("nr") and int(count) >= frequency:
                words.append(word)
    return frozenset(words)


def any_word(name: str) -> bool:
    """A name found by its context alone (any first character) that starts with, or is, a
    word of the dictionary or of case histories: not a name."""
    words = dictionary_words()
    return name[:2] in words or name[:3] in words or everyday_word(name)


_CN_NAME = rf"{_SURNAME}{_GIVEN}{{1,2}}{_NAME_END}"

_NAME_LABELS = (
    "患者|病人|病患|患儿|姓名|名字|家属|家长|产妇|孕妇|联系人|监护人|陪护|陪同人|配偶|主治医生|"
    "主治医师|经治医生|主管医生|责任护士|签名|签字|记录人|记录者|报告人|审核人|送检人|申请人|"
    "会诊医生|我叫|我是|名叫|名字叫|爸叫|妈叫|他叫|她叫|本人|丈夫|妻子|爱人|老伴|儿子|女儿|母亲|父亲|父母|外婆|外公|爷爷|奶奶|"
    "孙子|孙女|朋友|同事|邻居|爸爸|妈妈|哥哥|姐姐|弟弟|妹妹|老公|老婆|孩子|宝宝|开户人|户名|"
    "持卡人|车主|收件人|委托人|代理人|被保险人|投保人|受检者|就诊人|患方|病友|陪护人|主诉人|"
    "签字人|经办人|负责人|填表人|预约人|挂号人|登记人|送诊人|陪诊人|取药人|缴费人|付款人|专员|护理员|联络员|工作人员"
)
# Titles that also start ordinary phrases (医生查房, 护士巡视, 医生和家属): a name after them
# needs a colon, or a surname that is no everyday word (护士王芳于…).
_WEAK_NAME_LABELS = "医生|医师|大夫|护士|主任|护士长|护师|药师|技师"
_TITLES = (
    "先生|女士|小姐|太太|医生|医师|大夫|主任|护士长|护士|教授|老师|阿姨|叔叔|伯伯|大爷|大妈|"
    "爷爷|奶奶|院长|同学|师傅|老人|患者|同志|护师|药师|技师"
)

# An address is a chain of at least two units (广东省深圳市, 建国路88号3单元502室), or
# one unit after a label (家住: ...). Units that are also everyday words (区别, 这里,
# 皮层) are left out; numbered units (号, 栋, 室) need their number.
_BIG_UNIT = (
    "省|自治区|特别行政区|市|自治州|地区|县|旗|镇|乡|街道|村|社区|小区|新村|胡同|大道|路|街|巷|弄"
)
_NUMBERED_UNIT = "号院|号楼|号|栋|幢|座|单元|楼|层|室|组"
# Places inside a town (建设花园, 华润大厦): only after another unit.
_BUILDING = "大厦|广场|公寓|花园|家园|苑|园区|工业园|开发区|新区"
# A place name: not starting with the words around it (在北京市, 2022年在北京市); after
# the first unit, 和 may start one (和平区).
_AROUND = "在于到从住年月日的是去来回往与及或为了着过也都就还某"
_PLACE_START = _cjk_without(_AROUND + "和")
_PLACE = rf"{_PLACE_START}[\u4e00-\u9fa5]{{0,5}}?"
_NEXT_PLACE = rf"{_cjk_without(_AROUND)}[\u4e00-\u9fa5]{{0,5}}?"
_NUMBER = r"[0-9A-Za-z一二三四五六七八九十-]{1,5}"
# A room number after its unit without 室 (3单元602), not a number the next unit takes.
_ROOM = r"(?:\d{1,5}(?![0-9A-Za-z号栋幢座单元楼层室]))?"
# After the first unit, a district (朝阳区), a section of a road (东段) and a building too:
# 区 alone is also an everyday word (区别).
_UNIT = (
    rf"(?:{_NEXT_PLACE}(?:{_BIG_UNIT}|区|{_BUILDING})|[东西南北中]段"
    rf"|(?:{_NEXT_PLACE})?{_NUMBER}(?:{_NUMBERED_UNIT}){_ROOM})"
)
_ADDRESS_CHAIN = rf"{_PLACE}(?:{_BIG_UNIT}){_UNIT}{{1,8}}"
_ADDRESS_LABELS = (
    "家住|住址|地址|现住|住在|居住在|居住于|住于|家庭住址|通讯地址|户籍地址|户籍地|户籍|居住地|"
    "现居|常住地|来自"
)

_DATE_CN = r"\d{4}\s?(?:年|[-/.])\s?\d{1,2}\s?(?:月|[-/.])(?:\s?\d{1,2}\s?日?)?"
_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE_EN = (
    rf"(?:\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|\d{{4}}-\d{{1,2}}-\d{{1,2}}|{_MONTHS}\s\d{{1,2}},?\s\d{{4}}"
    rf"|\d{{1,2}}\s{_MONTHS}\s\d{{4}})"
)

_RECORD_LABELS_CN = (
    "住院号|门诊号|急诊号|病案号|病历号|床号|床位号|检查号|检验号|影像号|放射号|病理号|登记号|"
    "就诊号|就诊卡号|诊疗卡号|医保卡号|医保号|社保卡号|病人ID|患者ID|标本号|条码号|档案号|"
    "申请单号|住院流水号|门诊流水号|体检号"
)
_RECORD_LABELS_EN = (
    r"MRN|medical record (?:number|no\.?|#)|record (?:number|no\.?|#)|hospital (?:number|no\.?)"
    r"|admission (?:number|no\.?)|patient ID|chart (?:number|no\.?|#)|bed(?: number| no\.?)?"
    r"|account (?:number|no\.?)|accession (?:number|no\.?)|encounter (?:number|no\.?)"
)

# The common street types of US and UK addresses (USPS Publication 28 and the Royal Mail's).
_STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Square|Sq|Trail|Trl|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Crescent|Grove|Row|Pike|"
    "Loop|Path|Alley|Plaza|Heights|Close|Walk|Crossing|Ridge|Run|Pass|Point|Expressway|Freeway"
)
_UNIT_EN = r"(?:,?\s(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|#)\.?\s?[\w-]+)?"

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_LETTER = "A-HJ-NP-Z"  # no I or O after the city's letter


def _basic(kind: str) -> str:
    return PII_KINDS[kind][0]


_NAME_AFTER_LABEL = rf"(?:{alternation(_NAME_LABELS)})[：:\s]{{0,2}}"
_NAME_AFTER_WEAK_LABEL = rf"(?:{alternation(_WEAK_NAME_LABELS)})(?:[：:]\s?|\s)"
_CN_NAME_BODY = rf"[{_SINGLE_SURNAMES}]{_GIVEN}{{1,2}}"
# Contexts that say a name comes, whatever its surname (患者宰超，住院号…; 我是双娟娟，;
# 莘平女士): two or three characters none of which is a word of a case history, ended
# by punctuation, the sex or a title; the dictionary's words are refused (any_word).
# Any label followed by a colon is as strong (联系人：归雪敏，). Where a rule with a
# surname list finds part of the same name (兰丽 of 通兰丽), the longer span wins.
# The first character is any surname (周, 时 and 上官's 上 are also words of a case
# history), or any character but those and 之, 其 (患者之子).
_STRONG_NAME_LABELS = "患者|病人|家属|我是|我叫"
_ANY_CN_NAME = (
    rf"(?:{_COMPOUND_SURNAMES}|[{_SINGLE_SURNAMES}{_EVERYDAY_SURNAMES}]"
    rf"|{_cjk_without(_NOT_IN_NAME + '之其')}){_GIVEN}{{1,2}}"
)
_STRONG_NAME_END = (
    rf"(?=[\s，,。.；;、！!？?（()）]|$|[男女][，,、\s)）]|(?:{alternation(_TITLES)}))"
)
_COMPOUND_NAME_BODY = rf"(?:{_COMPOUND_SURNAMES}){_GIVEN}{{1,2}}"
# What follows a name in a list of a person's details: the sex, the age, a mobile number.
_DETAILS_FOLLOW = (
    r"(?=[，,（( ]{1,2}(?:男|女)(?:[，,、 性)）]|$)|[，,（( ]{1,2}\d{1,3}岁"
    r"|[，, ]{1,2}(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d))"
)
# What a person does in a case history right after their name (张伟诉头痛, 李娜陪同,
# 王芳于2024年…).
_SPEECH_FOLLOWS = r"(?=诉|代诉|陪同|签字|签名|于\s?(?:\d|今|昨|前|上午|下午|当))"
# A surname right before a title; not the ones that are also common words (由医生, 和医生)
# unless a given name follows, and never 谢谢 (谢谢医生).
_AMBIGUOUS_SURNAMES = "由和向于时都那全常以成应信强明文平安海华国高方白金石康谢乐元"
_PLAIN_SURNAMES = "".join(c for c in _SINGLE_SURNAMES if c not in _AMBIGUOUS_SURNAMES)
_TITLE_FOLLOWS = f"(?=(?:{alternation(_TITLES)}))"
# Common English given names, leaving out most that also start a term (Max Dose, Crystal
# Violet, Roman Catholic): a capitalised word after one is a surname, whatever the context.
_EN_GIVEN_NAMES = (
    "James|John|Robert|Michael|William|David|Richard|Joseph|Thomas|Charles|Christopher|Daniel|"
    "Matthew|Anthony|Mark|Donald|Steven|Paul|Andrew|Joshua|Kenneth|Kevin|Brian|George|Timothy|"
    "Ronald|Edward|Jason|Jeffrey|Ryan|Jacob|Gary|Nicholas|Eric|Jonathan|Stephen|Larry|Justin|"
    "Scott|Brandon|Benjamin|Samuel|Gregory|Alexander|Frank|Patrick|Raymond|Jack|Dennis|Jerry|"
    "Tyler|Aaron|Jose|Adam|Nathan|Henry|Douglas|Zachary|Peter|Kyle|Noah|Ethan|Jeremy|Walter|"
    "Christian|Keith|Roger|Terry|Austin|Sean|Gerald|Carl|Harold|Dylan|Arthur|Lawrence|Jordan|"
    "Jesse|Bryan|Billy|Bruce|Gabriel|Joe|Logan|Albert|Willie|Alan|Eugene|Russell|Vincent|"
    "Philip|Bobby|Johnny|Bradley|Roy|Ralph|Louis|Randy|Wayne|Liam|Oliver|Lucas|Leo|Carlos|Juan|"
    "Luis|Miguel|Ahmed|Mohammed|Ali|Omar|Raj|Wei|Hiroshi|Mary|Patricia|Jennifer|Linda|"
    "Elizabeth|Barbara|Susan|Jessica|Sarah|Karen|Lisa|Nancy|Betty|Sandra|Margaret|Ashley|"
    "Kimberly|Emily|Donna|Michelle|Carol|Amanda|Melissa|Deborah|Stephanie|Dorothy|Rebecca|"
    "Sharon|Laura|Cynthia|Amy|Kathleen|Angela|Shirley|Brenda|Emma|Anna|Pamela|Nicole|Samantha|"
    "Katherine|Christine|Helen|Debra|Rachel|Carolyn|Janet|Maria|Catherine|Heather|Diane|Olivia|"
    "Julie|Joyce|Victoria|Ruth|Virginia|Lauren|Kelly|Christina|Joan|Evelyn|Judith|Andrea|"
    "Hannah|Megan|Cheryl|Jacqueline|Martha|Madison|Teresa|Gloria|Sara|Janice|Ann|Kathryn|"
    "Abigail|Sophia|Frances|Jean|Alice|Judy|Isabella|Julia|Grace|Amber|Denise|Danielle|Marilyn|"
    "Beverly|Charlotte|Natalie|Theresa|Diana|Brittany|Doris|Kayla|Alexis|Lori|Marie|Ava|Mia|"
    "Chloe|Zoe|Lily|Ella|Fatima|Aisha|Priya|Mei|Yuki|Sofia|Lucy|Jane|Kate|Ellen|Rose|Ruby|"
    "Irene|Harry|Jimmy|Ricky|Danny|Tony|Victor|Martin|Ernest|Phillip|Todd|Craig|Shawn|Clarence|"
    "Chris|Earl|Antonio|Mike|Stanley|Leonard|Dale|Manuel|Rodney|Curtis|Norman|Allen|Marvin|"
    "Glenn|Jeffery|Travis|Jeff|Chad|Melvin|Alfred|Francis|Herbert|Frederick|Joel|Edwin|Don|"
    "Eddie|Troy|Randall|Barry|Bernard|Mario|Leroy|Francisco|Marcus|Micheal|Theodore|Clifford|"
    "Oscar|Jim|Tom|Calvin|Alex|Jon|Ronnie|Lloyd|Tommy|Leon|Derek|Warren|Darrell|Jerome|Floyd|"
    "Alvin|Tim|Wesley|Gordon|Greg|Jorge|Dustin|Pedro|Derrick|Dan|Lewis|Corey|Herman|Maurice|"
    "Vernon|Roberto|Clyde|Glen|Hector|Shane|Ricardo|Sam|Rick|Lester|Brent|Ramon|Charlie|"
    "Gilbert|Gene|Marc|Reginald|Ruben|Brett|Nathaniel|Rafael|Leslie|Edgar|Milton|Raul|Ben|"
    "Chester|Cecil|Duane|Franklin|Andre|Elmer|Brad|Ron|Mitchell|Roland|Arnold|Harvey|Jared|"
    "Adrian|Karl|Cory|Claude|Erik|Darryl|Jamie|Neil|Jessie|Javier|Fernando|Clinton|Ted|Mathew|"
    "Tyrone|Darren|Lonnie|Cody|Julio|Kurt|Allan|Nelson|Hugh|Clayton|Dwayne|Dwight|Armando|"
    "Felix|Jimmie|Everett|Ian|Wallace|Ken|Jaime|Casey|Alfredo|Alberto|Dave|Ivan|Johnnie|Sidney|"
    "Byron|Julian|Isaac|Morris|Clifton|Willard|Daryl|Ross|Andy|Salvador|Perry|Kirk|Sergio|Seth|"
    "Terrance|Rene|Eduardo|Terrence|Enrique|Freddie|Stuart|Fredrick|Arturo|Alejandro|Joey|Nick|"
    "Luther|Wendell|Jeremiah|Evan|Julius|Donnie|Otis|Trevor|Luke|Gerard|Doug|Kenny|Hubert|"
    "Angelo|Shaun|Lyle|Matt|Alfonso|Orlando|Carlton|Ernesto|Cameron|Neal|Pablo|Lorenzo|Wilbur|"
    "Blake|Horace|Roderick|Kerry|Abraham|Willis|Rickey|Ira|Andres|Cesar|Johnathan|Malcolm|"
    "Rudolph|Damon|Kelvin|Rudy|Preston|Alton|Archie|Marco|Pete|Randolph|Garry|Geoffrey|"
    "Jonathon|Felipe|Bennie|Gerardo|Dominic|Loren|Delbert|Colin|Guillermo|Earnest|Benny|Noel|"
    "Spencer|Rodolfo|Myron|Edmund|Garrett|Salvatore|Cedric|Lowell|Gregg|Devin|Sylvester|"
    "Roosevelt|Jermaine|Wilbert|Leland|Simon|Irving|Carroll|Bryant|Woodrow|Sammy|Kristopher|"
    "Levi|Marcos|Gustavo|Jake|Lionel|Marty|Gilberto|Clint|Nicolas|Laurence|Ismael|Orville|Jody|"
    "Ervin|Dewey|Wilfred|Josh|Hugo|Ignacio|Caleb|Tomas|Sheldon|Erick|Frankie|Stewart|Doyle|"
    "Darrel|Rogelio|Terence|Santiago|Alonzo|Elias|Bert|Elbert|Ramiro|Conrad|Grady|Phil|"
    "Cornelius|Lamar|Rolando|Percy|Dexter|Bradford|Merle|Darin|Terrell|Irvin|Saul|Darnell|"
    "Randal|Tommie|Timmy|Darrin|Winston|Brendan|Abel|Dominick|Boyd|Emilio|Elijah|Domingo|"
    "Aubrey|Emmett|Marlon|Emanuel|Jerald|Edmond|Aiden|Jackson|Elliot|Connor|Landon|Gavin|"
    "Tristan|Brody|Tiffany|Wendy|Tammy|Connie|Paula|Peggy|Sue|Ethel|Lois|Tina|Phyllis|Norma|"
    "Annie|Lillian|Vanessa|Valerie|Jill|Erin|Rosa|Geraldine|Sherry|Sylvia|Edna|Vera|Wanda|"
    "Josephine|Juanita|Thelma|Stacy|Marjorie|Leah|Beatrice|Lucille|Anita|Rita|Kristen|Erica|"
    "Shelly|Renee|Monica|Darlene|Bertha|Kristin|Gail|Audrey|Joanne|Sheila|Regina|Carla|Shelley|"
    "Stacey|Alma|Lydia|Tanya|Mildred|Eleanor|Roberta|Loretta|Tamara|Sonia|Agnes|Charlene|Katie|"
    "Marian|Mattie|Maxine|Irma|Viola|Pauline|Lena|Jennie|Christy|Naomi|Margie|Becky|Nellie|"
    "Constance|Lillie|Claudia|Marcia|Nora|Minnie|Hattie|Dolores|Genevieve|Caroline|Rosemary|"
    "Laurie|Jenny|Brandy|Leticia|Hazel|Amelia|Esther|Sophie|Harriet|Cora|Colleen|Miriam|Velma|"
    "Claire|Eunice|Celia|Kathy|Terri|Mindy|Hailey|Brianna|Alyssa|Kaitlyn|Kristina|Haley|Paige|"
    "Gabrielle|Katelyn|Mackenzie|Jenna|Kylie|Allison|Chelsea|Erika|Carly|Kristy|Shawna|Kara|"
    "Kari|Latoya|Tonya|Yolanda|Felicia|Gwendolyn|Kelli|Lindsey|Lindsay|Meredith|Molly|Natasha|"
    "Patty|Priscilla|Rachael|Raquel|Rebekah|Shanna|Shari|Tabitha|Traci|Trisha|Veronica|Whitney|"
    "Yvonne|Angelica|Bianca|Brooke|Cassandra|Cindy|Desiree|Dominique|Heidi|Jodi|Krista|Kristi|"
    "Marisa|Mercedes|Monique|Nadine|Nichole|Rhonda|Sabrina|Tasha|Toni|Jeanette|Bethany|Sheri|"
    "Cristina|Caitlin|Kristine|Candace|Avery|Scarlett|Aria|Layla|Riley|Zoey|Brooklyn|Skylar|"
    "Lucia|Anya|Elena|Valentina|Leilani|Madelyn|Stephany|Joann|Joanna|Elaine|Lorraine|Marlene|"
    "Doreen"
)
# Smith, McDonald, MacArthur, O'Neil, Smith-Jones; a capital first, for `re` to skip to.
_EN_WORD = r"[A-Z](?:[a-z]+|c[A-Z][a-z]+|ac[A-Z][a-z]+|['’][A-Z][a-z]+)(?:-[A-Z][a-z]+)?"
# Titles before an English name and the suffixes after it are replaced with it.
_EN_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s"
_EN_SUFFIX = r"(?:,?\s(?:Jr|Sr)\b\.?|\s(?:II|III|IV)\b|,?\s(?:MD|DDS|DVM|PhD|RN|NP)\b)?"
# Second words of capitalised medical terms, which can be followed by the same verbs.
_NOT_EN_SURNAME = (
    "(?:Disease|Syndrome|Failure|Fibrillation|Mellitus|Infection|Department|Hospital|Center"
    "|Centre|Clinic|Unit|Test|Scan|Report|Study|Trial|Guidelines?|Association|Society)"
)
_EN_NEXT_WORD = rf"\s(?!(?:Jr|Sr)\b){_EN_WORD}"  # a suffix is no surname
_EN_NAME_LABELS = (
    r"\b(?i:patient|pt\.?|name|signed(?: by)?|son|daughter|wife|husband|mother|father|contact"
    r"|guardian|attending|physician|nurse|(?:referred|seen|reviewed|dictated|examined|accompanied)"
    r" by)[:,]?\s{1,2}"
)

RULES: tuple[Rule, ...] = (
    # --- names
    # Each pattern starts with one character class or literal, which lets `re` skip
    # every position that cannot start a match (an alternation first would not).
    Rule(
        "NAME",
        "name after a label (zh)",
        _CN_NAME,
        before=_NAME_AFTER_LABEL,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "any name after a strong label (zh)",
        _ANY_CN_NAME + _STRONG_NAME_END,
        before=rf"(?:{alternation(_STRONG_NAME_LABELS)})[：:\s]{{0,2}}"
        rf"|(?:{alternation(_NAME_LABELS)})\s?[：:]\s?",
        score=0.84,  # a surname-list rule finding the same span names it
        invalid=any_word,
    ),
    Rule(
        "NAME",
        "any name after 姓名 and a colon (zh)",
        _ANY_CN_NAME + _NAME_END,
        before=r"姓名\s?[：:]\s?",
        score=0.84,  # a surname-list rule finding the same span names it
        invalid=any_word,
    ),
    Rule(
        "NAME",
        "any name before 女士, 先生 or 同志 (zh)",
        rf"{_ANY_CN_NAME}(?=女士|先生|同志)",
        score=0.84,  # a surname-list rule finding the same span names it
        invalid=any_word,
    ),
    Rule(
        "NAME",
        "name after a title and a colon (zh)",
        _CN_NAME,
        before=_NAME_AFTER_WEAK_LABEL,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "name before sex or age (zh)",
        _CN_NAME_BODY + _DETAILS_FOLLOW,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "everyday-character surname before the sex (zh)",
        rf"[{_EVERYDAY_SURNAMES}]{_GIVEN}{{1,2}}(?=[，,（( ]{{1,2}}(?:男|女)(?:[，,、 性)）]|$))",
        invalid=any_word,
    ),
    Rule(
        "NAME",
        "compound surname before sex or age (zh)",
        _COMPOUND_NAME_BODY + _DETAILS_FOLLOW,
    ),
    Rule(
        "NAME",
        "name right after a title (zh)",
        rf"[{_PLAIN_SURNAMES}]{_GIVEN}{{1,2}}{_NAME_END}",  # 护士王芳于…; not 医生和家属
        before=f"(?:{alternation(_WEAK_NAME_LABELS)})",
        score=0.7,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "name before what a person says or does (zh)",
        rf"[{_PLAIN_SURNAMES}]{_GIVEN}{{1,2}}{_SPEECH_FOLLOWS}",
        score=0.7,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "name before a title (zh)",
        rf"(?<!主)[{_PLAIN_SURNAMES}]{_GIVEN}{{0,2}}?{_TITLE_FOLLOWS}",  # not 主任医师
        score=0.7,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "compound surname before a title (zh)",
        rf"(?:{_COMPOUND_SURNAMES}){_GIVEN}{{0,2}}?{_TITLE_FOLLOWS}",
        score=0.7,
    ),
    Rule(
        "NAME",
        "ambiguous surname and given name before a title (zh)",
        rf"[{_AMBIGUOUS_SURNAMES}](?<!感谢)(?!谢){_GIVEN}{{1,2}}?{_TITLE_FOLLOWS}",  # not 高压患者
        score=0.7,
        invalid=everyday_word,
    ),
    Rule(
        "NAME",
        "name after a title (en)",
        rf"\b(?:{_EN_TITLE})+{_EN_WORD}(?:{_EN_NEXT_WORD}){{0,2}}{_EN_SUFFIX}",
    ),
    Rule(
        "NAME",
        "name after a label (en)",
        rf"(?:{_EN_TITLE})*{_EN_WORD}(?:\s[A-Z]\.)?(?:{_EN_NEXT_WORD}){{1,2}}\b{_EN_SUFFIX}",
        before=_EN_NAME_LABELS,
    ),
    Rule(
        "NAME",
        "common given name and surname (en)",
        rf"\b(?:{_EN_GIVEN_NAMES})(?:\s[A-Z]\.)?{_EN_NEXT_WORD}\b{_EN_SUFFIX}",
        score=0.6,
    ),
    Rule(
        "NAME",
        "name before an age (en)",
        rf"\b{_EN_WORD}\s{_EN_WORD}(?=,?\s(?:is\s|was\s)?an?\s\d{{1,3}}[- ]year[- ]old)",
    ),
    Rule(
        "NAME",
        "name before what a patient does (en)",
        rf"\b{_EN_WORD}\s(?!{_NOT_EN_SURNAME}\b){_EN_WORD}(?=\s(?:presented|presents|reports|reported"
        r"|denies|denied|complains|complained|underwent|states|stated|called|arrived|returned)\b)",
        score=0.6,
    ),
    Rule(
        "NAME",
        "name before a credential or a date of birth (en)",
        rf"\b{_EN_WORD}(?:\s[A-Z]\.)?\s{_EN_WORD}"
        r"(?:,?\s(?:MD|M\.D\.|DO|RN|NP|PA-C|PhD|DDS|FACP)\b|(?=,?\s\(?(?:DOB|D\.O\.B\.|born)\b))",
    ),
    # --- addresses
    Rule(
        "ADDRESS",
        "address after a label (zh)",
        rf"{_UNIT}{{1,8}}",
        before=rf"(?:{_ADDRESS_LABELS})[：:\s]{{0,2}}",
    ),
    Rule(
        "ADDRESS",
        "chain of administrative units (zh)",
        _ADDRESS_CHAIN,
        score=0.6,
    ),
    Rule(
        "ADDRESS",
        "street address (en)",
        rf"\b\d{{1,5}}\s(?:[A-Z][a-z]+\s){{1,3}}(?:{_STREET_TYPES})\b\.?{_UNIT_EN}"
        r"(?:,\s[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?(?:,\s[A-Z]{2}\s\d{5}(?:-\d{4})?)?",
    ),
    Rule(
        "ADDRESS",
        "address with a US state and ZIP code (en)",
        rf"\b\d{{1,6}}(?:\s[A-Z][a-z]+\.?){{1,4}}{_UNIT_EN}"
        r",\s[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2},\s[A-Z]{2}\s\d{5}(?:-\d{4})?\b",
    ),
    Rule(
        "ADDRESS",
        "military address (en)",
        r"\b(?:(?:PSC|CMR|Unit)\s\d{1,5},?\sBox\s\d{1,5}|(?:USNS|USNV|USS|USCGC)\s[A-Z][a-z]+)"
        r",\s(?:APO|FPO|DPO)\s(?:AA|AE|AP)\s\d{5}\b",
    ),
    # --- hospital numbers
    Rule(
        "RECORD_NO",
        "record number after a label (zh)",
        rf"[A-Za-z]{{0,3}}-?\d[\d-]{{0,19}}{_NOT_ALNUM_AFTER}",
        before=rf"(?:{alternation(_RECORD_LABELS_CN)}){_SEP}",
    ),
    Rule(
        "RECORD_NO",
        "number after any …号 label (zh)",
        rf"[A-Za-z]{{0,3}}-?\d(?:[ -]?\d){{4,24}}{_NOT_ALNUM_AFTER}",
        before=r"[\u4e00-\u9fa5]号(?:码)?[：:\s]{0,2}",
        score=0.7,
    ),
    Rule(
        "RECORD_NO",
        "bed number (zh)",
        r"(?<![0-9A-Za-z+.\-])\d{1,4}(?=床(?![旁边头尾上下]))",
        score=0.6,
    ),
    Rule(
        "RECORD_NO",
        "record number after a label (en)",
        rf"[A-Za-z]{{0,3}}-?\d[\d-]{{0,19}}{_NOT_ALNUM_AFTER}",
        before=rf"\b(?i:{_RECORD_LABELS_EN}){_SEP}",
    ),
    # --- dates of birth and ages over 89 (HIPAA's safe harbour)
    Rule(
        "DATE_OF_BIRTH",
        "date of birth (zh)",
        _DATE_CN,
        before=rf"(?:出生日期|出生年月日|出生年月|出生于|生于|出生|生日){_SEP}",
    ),
    Rule(
        "DATE_OF_BIRTH",
        "date before 出生 (zh)",
        rf"{_NOT_ALNUM_BEFORE}{_DATE_CN}(?=\s?(?:出生|生人))",
    ),
    Rule(
        "DATE_OF_BIRTH",
        "date of birth (en)",
        _DATE_EN,
        before=rf"\b(?i:DOB|D\.O\.B\.|date of birth|birth date|born on|born){_SEP}",
    ),
    Rule(
        "AGE",
        "age over 89 (zh)",
        r"(?<![0-9.])(?:9\d|1[0-2]\d)(?=\s?(?:周岁|岁))",
    ),
    Rule(
        "AGE",
        "age over 89 (en)",
        r"(?<![0-9.])(?:9\d|1[0-2]\d)(?=[- ]?(?:years?|yrs?)[- ]old|\s?y/?o\b|-year)",
    ),
    Rule(
        "AGE",
        "age over 89 after a label (en)",
        r"(?:9\d|1[0-2]\d)(?![0-9.])",
        before=r"\b(?i:age|aged)[:\s]{1,2}",
    ),
    # --- cards and documents
    Rule(
        "BANK_CARD",
        "bank card (Luhn)",
        rf"{_NOT_ALNUM_BEFORE}[3-6]\d{{3}}(?:[ -]?\d{{4}}){{2,3}}(?:[ -]?\d{{1,3}})?"
        + _NOT_ALNUM_AFTER,
        score=0.8,
        valid=luhn_valid,
    ),
    Rule(
        "PASSPORT",
        "passport or HK/Macau permit",
        rf"{_NOT_ALNUM_BEFORE}[EGC][A-Z]?\d{{7,8}}{_NOT_ALNUM_AFTER}",
        score=0.7,
    ),
    Rule(
        "PASSPORT",
        "document number after a label",
        rf"[A-Za-z]{{0,2}}\d{{6,10}}{_NOT_ALNUM_AFTER}",
        before=r"(?:护照|港澳通行证|通行证|回乡证|台胞证|(?i:passport))(?:号码|号)?"
        rf"(?i:\s?(?:no\.?|number))?{_SEP}",
    ),
    Rule(
        "LICENSE_PLATE",
        "licence plate (zh)",
        rf"[{_PROVINCES}][A-Z][·•\s-]?[{_PLATE_LETTER}0-9]{{4,5}}[{_PLATE_LETTER}0-9挂学警]?"
        + _NOT_ALNUM_AFTER,
    ),
    # --- messaging accounts
    Rule(
        "WECHAT",
        "WeChat ID",
        rf"[A-Za-z][A-Za-z0-9_-]{{5,19}}{_NOT_ALNUM_AFTER}",
        before=rf"(?:微信号|微信|V信|(?i:wechat(?: id)?|wx号?|vx号?)){_SEP}",
    ),
    Rule(
        "QQ",
        "QQ number",
        rf"[1-9]\d{{4,10}}{_NOT_ALNUM_AFTER}",
        before=rf"(?:(?i:qq)号?|扣扣){_SEP}",
    ),
    # --- what the basic scrubber already finds, and its English counterparts (Presidio's
    # own recognizers find US social security numbers, IP addresses, credit cards, IBANs,
    # NHS numbers and international phone numbers: see converters/deid/engine.py)
    Rule("PHONE", "mobile (zh)", _basic("mobile"), score=0.9),
    Rule("PHONE", "landline (zh)", _basic("landline"), score=0.9),
    Rule(
        "PHONE",
        "landline in groups (zh)",
        rf"{_NOT_ALNUM_BEFORE}(?<!\d[- ])(?:\(0\d{{2,3}}\)\s?|（0\d{{2,3}}）|0\d{{2,3}}[- ])"
        rf"\d{{3,4}}[- ]?\d{{4}}(?:-\d{{1,5}})?{_NOT_ALNUM_AFTER}",
        score=0.85,
    ),
    Rule(
        "PHONE",
        "phone (en)",
        rf"{_NOT_ALNUM_BEFORE}(?:\+?1[-.\s]?|001[-.\s])?(?:\(\d{{3}}\)\s?|\d{{3}}[-.\s])\d{{3}}[-.\s]"
        rf"\d{{4}}(?:\s?(?:x|ext\.?|extension)\s?\d{{1,5}})?{_NOT_ALNUM_AFTER}",
    ),
    Rule(
        "PHONE",
        "ten digits of a North American number (en)",
        rf"{_NOT_ALNUM_BEFORE}[2-9]\d\d[2-9]\d{{6}}{_NOT_ALNUM_AFTER}",
        score=0.6,
    ),
    Rule(
        "ID_NUMBER",
        "resident ID (checksum)",
        _basic("id_number"),
        score=0.95,
        valid=valid_id_number,
    ),
    Rule(
        "ID_NUMBER",
        "ID number after a label",
        rf"(?:\d{{17}}[\dXx]|\d{{15}}){_NOT_ALNUM_AFTER}",
        before=r"(?:身份证|证件|(?i:ID card|identity card))"
        rf"(?:号码|号|(?i:\s?(?:no\.?|number)))?{_SEP}",
    ),
    Rule("EMAIL", "e-mail", _basic("email"), score=0.95),
    Rule("URL", "URL", _basic("url"), score=0.9),
)
