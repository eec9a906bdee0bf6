"""Safety rules: banned claims in answers, red-flag questions answered without a referral.

The rules live in a YAML file (`templates/safety/rules.yaml` by default), each
with the source it comes from. One engine serves three commands: `data convert
--lint` (flag or reject training records inside the converters' accounting),
`data lint` (report on a registered dataset or a file) and `eval safety` (the
rate per rule in a model's answers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from converters.records import SourceError

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "templates" / "safety" / "rules.yaml"
LINT_LEVELS = ("off", "flag", "reject")
CLAUSE_END = re.compile(r"[。！？；，,.!?;\n]")
ZH_WINDOW = 8  # characters before a match, within its clause, searched for a negation
EN_WINDOW = 4  # words likewise


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Phrases(_Strict):
    zh: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: Literal["banned_claim", "red_flag"]
    title: str
    source: str = Field(min_length=1)
    zh: list[str] = Field(default_factory=list)  # banned_claim: the claims
    en: list[str] = Field(default_factory=list)
    symptoms: Phrases | None = None  # red_flag: what the question describes
    referral: Phrases | None = (
        None  # red_flag: what the answer must say [default: emergency_referral]
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> RuleSpec:
        if self.kind == "banned_claim" and not (self.zh or self.en):
            raise ValueError("a banned_claim needs `zh` or `en` patterns")
        if self.kind == "red_flag" and not (
            self.symptoms and (self.symptoms.zh or self.symptoms.en)
        ):
            raise ValueError("a red_flag needs `symptoms` with `zh` or `en` patterns")
        return self


class RulesFile(_Strict):
    negation: Phrases = Phrases()
    emergency_referral: Phrases
    rules: list[RuleSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Violation:
    rule: str
    kind: str
    turn: int  # 1-based question/answer pair
    matched: str  # the claim, or the red-flag symptom the answer did not refer
    context: str  # the sentence around it


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    title: str
    source: str
    pattern: re.Pattern  # the claim, or the symptom
    referral: re.Pattern | None


def _alternation(where: str, phrases: list[str]) -> re.Pattern:
    for phrase in phrases:
        try:
            re.compile(phrase)
        except re.error as error:
            raise SourceError(
                f"{where}: {phrase!r} is not a valid regular expression ({error})"
            ) from None
    return re.compile("|".join(f"(?:{p})" for p in phrases), re.IGNORECASE)


class SafetyRules:
    def __init__(self, path: Path, spec: RulesFile):
        self.path = path
        where = f"{path}: rules"
        default_referral = spec.emergency_referral.zh + spec.emergency_referral.en
        self.rules: list[Rule] = []
        for number, rule in enumerate(spec.rules):
            if rule.kind == "banned_claim":
                pattern, referral = _alternation(f"{where}[{number}]", rule.zh + rule.en), None
            else:
                pattern = _alternation(
                    f"{where}[{number}].symptoms", rule.symptoms.zh + rule.symptoms.en
                )
                own = rule.referral.zh + rule.referral.en if rule.referral else default_referral
                referral = _alternation(f"{where}[{number}].referral", own)
            self.rules.append(Rule(rule.id, rule.kind, rule.title, rule.source, pattern, referral))
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise SourceError(f"{path}: two rules share an id; give each its own")
        zh = "|".join(spec.negation.zh) or "(?!)"
        en = "|".join(spec.negation.en) or "(?!)"
        self._zh_negation = re.compile(f"(?:{zh})")
        self._en_negation = re.compile(rf"\b(?:{en})\b", re.IGNORECASE)
        self._precheck = _precheck(self.rules)

    @classmethod
    def load(cls, path: Path | None = None) -> SafetyRules:
        return _load(Path(path or DEFAULT_RULES).resolve())

    def _negated(self, text: str, start: int) -> bool:
        """A negation cue just before `start`, in the same clause."""
        clause = CLAUSE_END.split(text[max(0, start - 80) : start])[-1]
        if self._zh_negation.search(clause[-ZH_WINDOW:]):
            return True
        words = clause.split()[-EN_WINDOW:]
        return bool(words) and bool(self._en_negation.search(" ".join(words)))

    def _claims(self, pattern: re.Pattern, text: str) -> list[re.Match]:
        return [m for m in pattern.finditer(text) if not self._negated(text, m.start())]

    def _candidates(self, text: str) -> list[Rule]:
        """The rules that may match `text`: those the RE2 pre-check finds, else all."""
        if self._precheck is None:
            return self.rules
        try:  # the set itself, not Precheck.found: this runs once per training record
            found = self._precheck.set.Match(text)
        except UnicodeEncodeError:  # RE2 reads UTF-8; a lone surrogate: every rule
            return self.rules
        return [self.rules[i] for i in sorted(found)] if found else []

    def check(self, turns: list[tuple[str, str]], joined: str | None = None) -> list[Violation]:
        """The violations in a dialogue's (question, answer) pairs. `joined`, every text of
        the dialogue in one string, saves building it for the pre-check."""
        if joined is None:
            joined = "\n".join(map("\n".join, turns))
        rules = self._candidates(joined)  # mostly none: no claim and no symptom anywhere
        found = []
        for number, (question, answer) in enumerate(turns, 1) if rules else ():
            for rule in rules:
                if rule.kind == "banned_claim":
                    claims = self._claims(rule.pattern, answer)
                    if claims:
                        found.append(_violation(rule, number, answer, claims[0]))
                else:
                    symptoms = self._claims(rule.pattern, question)
                    if symptoms and not rule.referral.search(answer):
                        found.append(_violation(rule, number, question, symptoms[0]))
        return found


def _precheck(rules: list[Rule]):
    """Every claim and symptom in one RE2 set, which says in one linear-time pass over a
    text which rules may match it; None when a pattern uses what RE2 lacks (look-arounds),
    and then every rule is tried."""
    from converters.deid.engine import Precheck  # RE2, \d and \s widened as in `re`

    if any(mark in r.pattern.pattern for r in rules for mark in ("(?=", "(?!", "(?<")):
        return None
    try:
        return Precheck([(rule.id, f"(?i:{rule.pattern.pattern})") for rule in rules])
    except Exception:  # google-re2 raises its own error types for what it cannot compile
        return None


def _violation(rule: Rule, turn: int, text: str, match: re.Match) -> Violation:
    start, end = max(0, match.start() - 20), min(len(text), match.end() + 20)
    context = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return Violation(rule.id, rule.kind, turn, match.group(0), " ".join(context.split()))


@cache
def _load(path: Path) -> SafetyRules:
    if not path.is_file():
        raise SourceError(
            f"{path}: no such rules file; pass --rules FILE or omit it for the default"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SourceError(f"{path}: not valid YAML ({error})") from None
    try:
        spec = RulesFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SourceError(
            f"{path}: {key}: {first['msg']}; see templates/safety/rules.yaml for the shape"
        ) from None
    return SafetyRules(path, spec)
