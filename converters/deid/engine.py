"""De-identification with Microsoft Presidio: its analyzer finds the identifiers, its
anonymizer replaces them.

No NER model can be downloaded on an offline machine, so the analyzer runs over a
blank spaCy pipeline (tokens only) with the pattern recognizers of
`converters.deid.patterns`; a user who has a spaCy or transformers NER model
installed passes Presidio's own NLP-engine configuration file (`ner_config`),
and the model's PERSON and LOCATION entities are added to the patterns'.

Presidio costs about a millisecond per text, so a pre-check runs first over a
whole chunk of texts at once with the standard `re` engine: the same patterns in
a forward form, each slow one only where a cheap trigger is present. Presidio
then runs only on the texts the pre-check found something in. With an NER model
every text goes to Presidio, since a name may stand without any context.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.clean import audit_entry
from converters.deid.patterns import PLACEHOLDERS, RULES, Rule
from converters.records import SourceError

LANGUAGE = "xx"  # spaCy's multi-language code: records mix Chinese and English
SCORE_THRESHOLD = 0.5
NER_ENTITIES = {"PERSON": "NAME", "LOCATION": "ADDRESS"}  # NER label -> ours
_SEPARATOR = "\x00"  # between the texts of a chunk: no pattern crosses it


class DeidError(SourceError):
    """A de-identification setting that cannot work (an NER configuration that does not load)."""


@dataclass(frozen=True)
class DeidOptions:
    pseudonymize: bool = False
    ner_config: str | None = None  # Presidio NLP-engine YAML (spaCy, transformers, stanza)


class Precheck:
    """Which texts of a batch may hold an identifier: the rules' forward forms, scanned
    with `re` over the batch joined into one string, each rule with a trigger only
    over the texts its trigger is found in."""

    def __init__(self, rules: Sequence[Rule] = RULES):
        by_trigger: dict[str | None, list[re.Pattern]] = {}
        for rule in rules:
            by_trigger.setdefault(rule.trigger, []).append(re.compile(rule.forward))
        self.groups = [
            (re.compile(trigger, re.IGNORECASE) if trigger else None, patterns)
            for trigger, patterns in by_trigger.items()
        ]

    def candidates(self, texts: Sequence[str]) -> np.ndarray:
        found = np.zeros(len(texts), dtype=bool)
        everything = np.arange(len(texts))
        for trigger, patterns in self.groups:
            where = everything if trigger is None else _matching(texts, everything, [trigger])
            unsettled = where[~found[where]]
            if len(unsettled):
                found[_matching(texts, unsettled, patterns)] = True
        return found


def _matching(texts: Sequence[str], which: np.ndarray, patterns: list[re.Pattern]) -> np.ndarray:
    """The indices among `which` whose text any of `patterns` is found in."""
    joined = _SEPARATOR.join(texts[i] for i in which.tolist())
    lengths = np.fromiter((len(texts[i]) + 1 for i in which.tolist()), dtype=np.int64)
    ends = np.cumsum(lengths)  # one past each text's separator
    hits = [m.start() for pattern in patterns for m in pattern.finditer(joined)]
    return np.unique(which[np.searchsorted(ends, hits, side="right")])


class _RuleRecognizer:
    """Factory of Presidio pattern recognizers, one per rule (imported lazily: Presidio
    and spaCy take a second to import, which only strict conversions pay)."""

    @staticmethod
    def build(rule: Rule, language: str):
        import regex
        from presidio_analyzer import Pattern, PatternRecognizer

        class RuleRecognizer(PatternRecognizer):
            def validate_result(self, pattern_text: str) -> bool | None:
                return rule.valid(pattern_text) if rule.valid else None

        return RuleRecognizer(
            supported_entity=rule.entity,
            name=rule.name,
            supported_language=language,
            patterns=[Pattern(rule.name, rule.regex, rule.score)],
            # Case matters: a capital letter is what marks an English name.
            global_regex_flags=regex.DOTALL | regex.MULTILINE,
        )


def _blank_engine(language: str):
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacyEngine(SpacyNlpEngine):
        """Presidio's spaCy engine over a blank pipeline: tokens, no model to download."""

        def load(self) -> None:
            self.nlp = {language: spacy.blank(language)}

    engine = BlankSpacyEngine(models=[{"lang_code": language, "model_name": "blank"}])
    engine.load()
    return engine


def _ner_engine(config: str):
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    path = Path(config)
    if not path.is_file():
        raise DeidError(f"--ner-config {config}: no such file (a Presidio NLP-engine YAML)")
    try:
        engine = NlpEngineProvider(conf_file=str(path)).create_engine()
    except Exception as error:  # Presidio and spaCy raise many kinds; the user needs the text
        raise DeidError(
            f"--ner-config {config}: the NER model does not load ({error}); install it "
            "first (python -m spacy download NAME, or a local model folder)"
        ) from None
    return engine, engine.get_supported_languages()[0]


class Deidentifier:
    """Finds identifiers with Presidio's analyzer and replaces them with its anonymizer."""

    def __init__(self, options: DeidOptions = DeidOptions()):
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
        from presidio_anonymizer import AnonymizerEngine

        self.options = options
        if options.ner_config:
            nlp_engine, self.language = _ner_engine(options.ner_config)
            extra = [SpacyRecognizer(self.language, supported_entities=list(NER_ENTITIES))]
        else:
            nlp_engine, self.language, extra = _blank_engine(LANGUAGE), LANGUAGE, []
        recognizers = [_RuleRecognizer.build(rule, self.language) for rule in RULES] + extra
        registry = RecognizerRegistry(recognizers, supported_languages=[self.language])
        self.analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[self.language],
            default_score_threshold=SCORE_THRESHOLD,
        )
        self.anonymizer = AnonymizerEngine()
        self.precheck = None if options.ner_config else Precheck()

    def candidates(self, texts: Sequence[str]) -> np.ndarray:
        """Which texts to de-identify: the pre-check's finds, or every text with NER."""
        if self.precheck is None:
            return np.ones(len(texts), dtype=bool)
        return self.precheck.candidates(texts)

    def analyze(self, text: str) -> list:
        results = self.analyzer.analyze(text, language=self.language)
        for result in results:
            result.entity_type = NER_ENTITIES.get(result.entity_type, result.entity_type)
        return results

    def find(self, texts: Sequence[str]) -> list[list]:
        """Presidio's results for each text of one record, a name found in one text also
        found wherever else it occurs in the record, none overlapping another."""
        found = [self.analyze(text) if text else [] for text in texts]
        names = {
            text[r.start : r.end]
            for text, results in zip(texts, found, strict=True)
            for r in results
            if r.entity_type == "NAME" and r.end - r.start >= 2
        }
        if names:
            repeat = _name_repeats(sorted(names, key=len, reverse=True), self.language)
            found = [
                results + repeat.analyze(text, ["NAME"]) if text else results
                for text, results in zip(texts, found, strict=True)
            ]
        return [_without_overlaps(results) for results in found]

    def record(self, texts: Sequence[str], counts: Counter, audit: list | None = None) -> list[str]:
        """De-identify the texts of one record together: a name found in one turn is
        replaced in every turn, and a surrogate stands for the same value throughout."""
        surrogates = _Surrogates(self.options.pseudonymize)
        return [
            self._replace(text, results, surrogates, counts, audit) if results else text
            for text, results in zip(texts, self.find(texts), strict=True)
        ]

    def _replace(self, text, results, surrogates, counts: Counter, audit) -> str:
        from presidio_anonymizer.entities import OperatorConfig

        operators = {}
        for result in results:
            original = text[result.start : result.end]
            new = surrogates.get(result.entity_type, original)
            counts[result.entity_type.lower()] += 1
            if audit is not None:
                audit.append(_replacement(text, result, new))
            # One operator per entity type: each of its values maps to its own surrogate.
            operators[result.entity_type] = OperatorConfig(
                "custom", {"lambda": functools.partial(surrogates.get, result.entity_type)}
            )
        return self.anonymizer.anonymize(text, results, operators).text


def _replacement(text: str, result, new: str) -> dict:
    rule = (result.recognition_metadata or {}).get("recognizer_name", "NER")
    return audit_entry(text, result.start, result.end, result.entity_type, new, rule)


def _without_overlaps(results: list) -> list:
    """The results to replace, none overlapping another: the higher score, then the
    longer span, wins. Done here rather than left to the anonymizer's merging so the
    audit lists exactly the spans replaced."""
    kept: list = []
    for result in sorted(results, key=lambda r: (-r.score, r.start - r.end, r.start)):
        if all(result.end <= other.start or other.end <= result.start for other in kept):
            kept.append(result)
    return sorted(kept, key=lambda r: r.start)


def _name_repeats(names: list[str], language: str):
    """A recognizer for the names already found, wherever else they occur in the record."""
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer

    alternatives = "|".join(map(regex.escape, names))
    return PatternRecognizer(
        supported_entity="NAME",
        name="name repeated in the record",
        supported_language=language,
        patterns=[Pattern("name repeated", rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", 0.9)],
        global_regex_flags=regex.DOTALL | regex.MULTILINE,
    )


@dataclass
class _Surrogates:
    """What each value becomes: its type's placeholder, or with `pseudonymize` a
    surrogate kept for the whole record (the same patient is 患者A throughout)."""

    pseudonymize: bool
    seen: dict = field(default_factory=dict)

    def get(self, entity: str, value: str) -> str:
        if not self.pseudonymize:
            return PLACEHOLDERS.get(entity, f"[{entity}]")
        key = (entity, value)
        if key not in self.seen:
            number = sum(e == entity for e, _ in self.seen)
            self.seen[key] = _letters(number) if entity == "NAME" else _numbered(entity, number)
        return self.seen[key]


def _letters(number: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: names read as people (患者A, Mr. B)."""
    letters = string.ascii_uppercase
    length = 1
    while number >= len(letters) ** length:
        number -= len(letters) ** length
        length += 1
    return "".join(next(itertools.islice(itertools.product(letters, repeat=length), number, None)))


def _numbered(entity: str, number: int) -> str:
    return PLACEHOLDERS.get(entity, f"[{entity}]")[:-1] + f"_{number + 1}]"


@functools.cache
def deidentifier(options: DeidOptions) -> Deidentifier:
    """One per process and setting: building the analyzer takes a moment."""
    return Deidentifier(options)
