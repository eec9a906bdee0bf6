"""De-identification with Microsoft Presidio: its analyzer finds the identifiers, its
anonymizer replaces them.

No NER model can be downloaded on an offline machine, so the analyzer runs over a
blank spaCy pipeline (tokens only) with the pattern recognizers of
`converters.deid.patterns`; a user who has a spaCy or transformers NER model
installed passes Presidio's own NLP-engine configuration file (`ner_config`),
and the model's PERSON and LOCATION entities are added to the patterns'.

Presidio's analysis costs a tenth of a millisecond per text and more, so a
pre-check runs first: RE2 looks for every rule at once in one pass over a text,
and Presidio then runs only on the texts it found something in, with only the
rules it found. With an NER model every text goes to Presidio, since a name may
stand without any context.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import string
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from converters.clean import audit_entry
from converters.deid.patterns import PLACEHOLDERS, PRECEDENCE, RULES, Rule, not_names
from converters.records import SourceError

LANGUAGE = "xx"  # spaCy's multi-language code: records mix Chinese and English
SCORE_THRESHOLD = 0.5
NER_ENTITIES = {"PERSON": "NAME", "LOCATION": "ADDRESS"}  # NER label -> ours
# Presidio's own pattern recognizers for identifiers it knows (English and international),
# used as they are, and the type each one's entity becomes here. Not its phone
# recognizer: the `phonenumbers` library costs milliseconds a text; the rules find
# Chinese and North American numbers.
PRESIDIO_ENTITIES = {
    "CreditCardRecognizer": ("CREDIT_CARD", "BANK_CARD"),
    "IbanRecognizer": ("IBAN_CODE", "BANK_CARD"),
    "UsSsnRecognizer": ("US_SSN", "SSN"),
    "IpRecognizer": ("IP_ADDRESS", "IP_ADDRESS"),
    "NhsRecognizer": ("UK_NHS", "RECORD_NO"),
}
OURS = {**NER_ENTITIES, **dict(PRESIDIO_ENTITIES.values())}  # Presidio's entity -> ours


class DeidError(SourceError):
    """A de-identification setting that cannot work (an NER configuration that does not load)."""


@dataclass(frozen=True)
class DeidOptions:
    pseudonymize: bool = False
    ner_config: str | None = None  # Presidio NLP-engine YAML (spaCy, transformers, stanza)

    def __post_init__(self) -> None:
        if self.ner_config:  # here, not when the workers start: Presidio takes seconds to load
            check_ner_config(self.ner_config)


class Precheck:
    """Which rules may match each text, found by RE2 in one pass over the text for all
    rules at once (an `re2.Set`): one linear-time automaton, where `re` would scan the
    text once per pattern. Each rule's pattern is rewritten for RE2 so that it finds at
    least what Presidio's pattern finds (see `re2_pattern`)."""

    def __init__(self, patterns: Sequence[tuple[str, str]]):
        """`patterns`: (the Presidio entity to search for, a Python pattern that finds
        at least what that entity's recognizer finds)."""
        import re2

        options = re2.Options()
        options.max_mem = 256 << 20  # the automaton's cache, so that no search runs out
        self.set = re2.Set.SearchSet(options)
        for _, pattern in patterns:
            self.set.Add(re2_pattern(pattern))
        self.set.Compile()
        self.keys = [entity for entity, _ in patterns]

    def found(self, texts: Sequence[str]) -> list[set[str]]:
        """For each text, the keys of the rules that match it (empty: none)."""
        nothing: set[str] = set()
        return [
            {self.keys[i] for i in matches}
            if text and (matches := self.set.Match(text))
            else nothing
            for text in texts
        ]


def re2_pattern(pattern: str) -> str:
    r"""A Python pattern rewritten for RE2, matching at least wherever it matches.

    RE2 has no look-arounds: a positive one becomes a group that consumes (each one in
    the rules ends its pattern, so the same texts match), a negative one is left out (a
    superset). RE2's \d and \s are ASCII: widened to Python's Unicode ones. RE2's \b
    is ASCII too, which is a superset where the patterns use it, next to an ASCII
    letter or digit: it also sees a boundary between that and a Chinese character.
    \uXXXX is written the way RE2 writes it.
    """
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escape = pattern[i : i + 2]
            if escape == r"\u":
                out.append(rf"\x{{{pattern[i + 2 : i + 6]}}}")
                i += 6
                continue
            space = _RE2_SPACE if in_class else f"[{_RE2_SPACE}]"
            out.append({r"\d": r"\p{Nd}", r"\s": space}.get(escape, escape))
            i += 2
        elif in_class:
            in_class = char != "]"
            out.append(char)
            i += 1
        elif char == "[":
            in_class = True
            start = i + 1 + pattern.startswith("^", i + 1)
            start += pattern.startswith("]", start)  # a ] first is a member
            out.append(pattern[i:start])
            i = start
        elif opener := next((o for o in _LOOKAROUNDS if pattern.startswith(o, i)), None):
            end = _closing(pattern, i)
            if _LOOKAROUNDS[opener]:
                out.append(f"(?:{re2_pattern(pattern[i + len(opener) : end])})")
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


_LOOKAROUNDS = {"(?<=": True, "(?<!": False, "(?=": True, "(?!": False}  # opener: kept?
_RE2_SPACE = r"\s\p{Z}\x{1c}-\x{1f}\x{85}"  # what Python's \s matches


def _closing(pattern: str, start: int) -> int:
    """The index of the parenthesis that closes the group opened at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += pattern.startswith("]", i + 1)  # a ] first is a member
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced pattern: {pattern[start : start + 40]}")


def key(rule: Rule) -> str:
    """A rule's name as a Presidio entity: the pre-check hands Presidio the rules that
    may match a text, and it searches the text with their recognizers only."""
    return f"{rule.entity}/{rule.name}"


def _recognizers(rules: Sequence[Rule], language: str) -> list:
    """One Presidio pattern recognizer per rule (its entity mapped back to the rule's
    entity type after analysis). Imported here: Presidio takes a second to import,
    which only strict conversions pay."""
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer

    class RuleRecognizer(PatternRecognizer):
        def __init__(self, rule: Rule):
            super().__init__(
                supported_entity=key(rule),
                name=rule.name,
                supported_language=language,
                patterns=[Pattern(rule.name, rule.regex, rule.score)],
                # Case matters: a capital letter is what marks an English name.
                global_regex_flags=regex.DOTALL | regex.MULTILINE,
            )
            self.valid, self.invalid = rule.valid, rule.invalid

        def validate_result(self, pattern_text: str) -> bool | None:
            return self.valid(pattern_text) if self.valid else None

        def invalidate_result(self, pattern_text: str) -> bool | None:
            return self.invalid(pattern_text) if self.invalid else None

    return [RuleRecognizer(rule) for rule in rules]


def _presidio_recognizers(language: str) -> list:
    from presidio_analyzer import predefined_recognizers

    return [
        getattr(predefined_recognizers, name)(supported_language=language)
        for name in PRESIDIO_ENTITIES
    ]


def _presidio_prechecks(recognizer) -> list[str]:
    """Its own patterns, case-insensitive as Presidio applies them."""
    return [f"(?i:{pattern.regex})" for pattern in recognizer.patterns]


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

    check_ner_config(config)
    try:
        engine = NlpEngineProvider(conf_file=config).create_engine()
    except Exception as error:  # Presidio and spaCy raise many kinds; the user needs the text
        raise DeidError(
            f"--ner-config {config}: the NER model does not load ({error}); install it "
            "first (python -m spacy download NAME, or a local model folder)"
        ) from None
    return engine, engine.get_supported_languages()[0]


def check_ner_config(config: str) -> None:
    """Refuse a configuration that is missing, or names a spaCy model that is neither
    installed nor a folder, before spaCy or Presidio is imported (seconds) and before
    Presidio would try to download the model (which fails, slowly, offline)."""
    import importlib.metadata

    import yaml

    path = Path(config)
    if not path.is_file():
        raise DeidError(f"--ner-config {config}: no such file (a Presidio NLP-engine YAML)")
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DeidError(f"--ner-config {config}: not a readable YAML file ({error})") from None
    if not isinstance(settings, dict):
        raise DeidError(f"--ner-config {config}: a Presidio NLP-engine YAML is a mapping")
    for model in settings.get("models") or []:
        name = (model or {}).get("model_name") if isinstance(model, dict) else None
        name = name.get("spacy") if isinstance(name, dict) else name  # transformers: two
        if not isinstance(name, str) or Path(name).exists():
            continue
        try:
            importlib.metadata.distribution(name)  # how spaCy itself tells an installed model
        except importlib.metadata.PackageNotFoundError:
            raise DeidError(
                f"--ner-config {config}: the spaCy model {name!r} is not installed and no "
                f"such folder exists; install it first (python -m spacy download {name}) or "
                "give the folder it is in"
            ) from None


class Deidentifier:
    """Finds identifiers with Presidio's analyzer and replaces them with its anonymizer."""

    def __init__(self, options: DeidOptions = DeidOptions()):
        with _optional_ml_hidden(unless=bool(options.ner_config)):
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.predefined_recognizers import SpacyRecognizer
            from presidio_anonymizer import AnonymizerEngine

        self.options = options
        if options.ner_config:
            nlp_engine, self.language = _ner_engine(options.ner_config)
            extra = [SpacyRecognizer(self.language, supported_entities=list(NER_ENTITIES))]
        else:
            nlp_engine, self.language, extra = _blank_engine(LANGUAGE), LANGUAGE, []
        presidios = _presidio_recognizers(self.language)
        recognizers = _recognizers(RULES, self.language) + presidios + extra
        registry = RecognizerRegistry(recognizers, supported_languages=[self.language])
        self.analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[self.language],
            default_score_threshold=SCORE_THRESHOLD,
            # The patterns hold their context words themselves (住院号, 患者, Mr.); an NER
            # model's entities keep Presidio's own context enhancement.
            context_aware_enhancer=None if options.ner_config else _NoContextEnhancer(),
        )
        # Pattern recognizers read no tokens: one empty analysis stands in for the
        # tokenisation of every text, which would cost more than the patterns.
        self.artifacts = None if options.ner_config else nlp_engine.process_text("", self.language)
        self.anonymizer = AnonymizerEngine()
        patterns = [(key(rule), rule.forward) for rule in RULES] + [
            (recognizer.supported_entities[0], pattern)
            for recognizer in presidios
            for pattern in _presidio_prechecks(recognizer)
        ]
        self.precheck = None if options.ner_config else Precheck(patterns)
        not_names()  # read once here, before the converters' workers fork

    def candidates(self, texts: Sequence[str]) -> list[set[str] | None]:
        """For each text, the rules to search it with (empty: none): the
        pre-check's finds; with an NER model, which needs no context, None: all, and
        the model."""
        if self.precheck is None:
            return [None] * len(texts)
        return self.precheck.found(texts)

    def record_candidates(self, records: Sequence[Sequence[str]]) -> list[list]:
        """`candidates` for the texts of each record. The pre-check reads a record's
        texts joined first, and apart only where that finds something: most records
        hold no identifier, and one look at each costs half of two."""
        if self.precheck is None:
            return [[None] * len(texts) for texts in records]
        joined = self.precheck.found(["\n".join(texts) for texts in records])
        nothing: set[str] = set()
        return [
            self.precheck.found(texts) if found else [nothing] * len(texts)
            for texts, found in zip(records, joined, strict=True)
        ]

    def analyze(self, text: str, rules: Sequence[str] | None = None) -> list:
        """Presidio's findings in `text`, with the given rules' recognizers only,
        or all of them."""
        results = self.analyzer.analyze(
            text,
            language=self.language,
            entities=sorted(rules) if rules else None,
            nlp_artifacts=self.artifacts,
            return_decision_process=True,  # saves a deep copy of the results
        )
        for result in results:
            entity = result.entity_type.split("/", 1)[0]
            result.entity_type = OURS.get(entity, entity)
        return results

    def find(self, texts: Sequence[str], hints: Sequence | None = None) -> list[list]:
        """Presidio's results for each text of one record, none overlapping another.

        `hints[i]`: the rules to search text i with (empty: skip it), from
        `candidates`; without hints, all of them in every text. A name found in one
        text is also found wherever else it occurs in the record.
        """
        hints = hints or [None] * len(texts)
        found = [
            self.analyze(text, hint) if text and (hint is None or hint) else []
            for text, hint in zip(texts, hints, strict=True)
        ]
        names = {
            text[r.start : r.end]
            for text, results in zip(texts, found, strict=True)
            for r in results
            if r.entity_type == "NAME" and r.end - r.start >= 2
        }
        if names:
            found = [
                results + _repeats(text, names) for text, results in zip(texts, found, strict=True)
            ]
        return [_without_overlaps(results) for results in found]

    def record(
        self,
        texts: Sequence[str],
        counts: Counter,
        audit: list | None = None,
        hints: Sequence | None = None,
    ) -> list[str]:
        """De-identify the texts of one record together: a name found in one turn is
        replaced in every turn, and a surrogate stands for the same value throughout."""
        surrogates = _Surrogates(self.options.pseudonymize)
        return [
            self._replace(text, results, surrogates, counts, audit) if results else text
            for text, results in zip(texts, self.find(texts, hints), strict=True)
        ]

    def _replace(self, text, results, surrogates, counts: Counter, audit) -> str:
        from presidio_anonymizer.entities import OperatorConfig

        replacements: dict[str, dict[str, str]] = {}  # entity -> original -> replacement
        for result in results:
            original = text[result.start : result.end]
            new = surrogates.get(result.entity_type, original)
            replacements.setdefault(result.entity_type, {})[original] = new
            counts[result.entity_type.lower()] += 1
            if audit is not None:
                audit.append(_replacement(text, result, new))
        # One operator per entity type, looking its values up: Presidio also calls it once
        # with a made-up value to check it, which must not take a surrogate.
        operators = {
            entity: OperatorConfig("custom", {"lambda": functools.partial(_looked_up, values)})
            for entity, values in replacements.items()
        }
        return self.anonymizer.anonymize(text, results, operators).text


def _looked_up(values: dict[str, str], value: str) -> str:
    return values.get(value, "")


@contextlib.contextmanager
def _optional_ml_hidden(unless: bool):
    """Import Presidio without torch and transformers, unless an NER model needs them.

    Presidio and spaCy import both when installed (as they are here, for training),
    for recognizers and layers the patterns never use: 4 s of a conversion's start.
    Marked absent while Presidio is imported, they are skipped, and importable again after.
    """
    hidden = [] if unless else [m for m in _OPTIONAL_ML if m not in sys.modules]
    for module in hidden:
        sys.modules[module] = None
    try:
        yield
    finally:
        for module in hidden:
            sys.modules.pop(module, None)


_OPTIONAL_ML = ("torch", "transformers", "gliner")


class _NoContextEnhancer:
    """Presidio's context-enhancer interface, doing nothing: see Deidentifier."""

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        return raw_results


def _repeats(text: str, names: set[str]) -> list:
    """Where the record's names occur again in `text`, as Presidio results."""
    from presidio_analyzer import RecognizerResult

    found = []
    for name in names:
        start = text.find(name)
        while start != -1:
            end = start + len(name)
            if not _inside_word(text, start, end):
                metadata = {"recognizer_name": "name repeated in the record"}
                # A low score: where a pattern also found the name, its result is kept.
                found.append(RecognizerResult("NAME", start, end, 0.5, None, metadata))
            start = text.find(name, end)
    return found


def _inside_word(text: str, start: int, end: int) -> bool:
    """An English name inside a longer word (Ann in Annual) is not the name."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return (before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha())


def _replacement(text: str, result, new: str) -> dict:
    explanation = result.analysis_explanation
    rule = (
        explanation.pattern_name
        if explanation and explanation.pattern_name
        else (result.recognition_metadata or {}).get("recognizer_name", "NER")
    )
    return audit_entry(text, result.start, result.end, result.entity_type, new, rule)


def _without_overlaps(results: list) -> list:
    """The results to replace, none overlapping another: the higher score, then the
    longer span, then the type first in PRECEDENCE wins (Presidio's results come in no
    set order). What a weaker result of another type finds beyond the stronger ones is
    replaced too, as Presidio's anonymizer does: a card number of which a phone rule
    found the last twelve digits must not leak its first four (a weaker reading of the
    same type, such as an address that starts earlier, is dropped). Done here rather
    than left to the anonymizer so the audit lists exactly the spans replaced."""
    kept: list = []
    for result in sorted(results, key=_strength):
        kept.extend(_uncovered(result, kept))
    return sorted(kept, key=lambda r: r.start)


def _uncovered(result, kept: list) -> list:
    """The parts of `result` outside every span in `kept`: itself when it overlaps none,
    nothing when it overlaps one of its own type."""
    pieces, start = [], result.start
    for other in sorted(kept, key=lambda r: r.start):
        if other.end <= start or other.start >= result.end:
            continue
        if other.entity_type == result.entity_type:
            return []
        pieces.append((start, other.start))
        start = max(start, other.end)
    pieces.append((start, result.end))
    if pieces == [(result.start, result.end)]:
        return [result]
    return [_part(result, a, b) for a, b in pieces if b > a]


def _part(result, start: int, end: int):
    part = copy.copy(result)
    part.start, part.end = start, end
    return part


def _strength(result) -> tuple:
    rank = _RANK.get(result.entity_type, len(_RANK))
    return (-result.score, result.start - result.end, rank, result.start)


_RANK = {entity: rank for rank, entity in enumerate(PRECEDENCE)}


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
