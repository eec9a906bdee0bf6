"""Precision and recall of de-identification on a labelled file, per entity type.

A labelled item is `{"text", "spans": [{"start", "end", "entity"}], "keep":
[{"start", "end"}]}`: the identifiers, and the medical values that must
survive. The common annotation exports read as well: `entities` or `labels` for
`spans`, `label` or `type` for `entity`, and doccano's `"label": [[start, end,
"TYPE"], ...]`; the usual names of the types (Presidio's PERSON and
PHONE_NUMBER, i2b2's PATIENT and MEDICALRECORD, ...) read as ours, so that the
goals apply to them. Scored as de-identification is judged, on what leaks: a labelled
identifier counts as found when the replaced spans cover every one of its
characters (whatever type they were given); a replaced span counts as right
when it overlaps a labelled identifier. A `keep` span any replaced span
touches is a medical number changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from converters.deid.engine import Deidentifier

# Other annotation schemes' names for our entity types (upper case).
ALIASES = {
    **dict.fromkeys(["PERSON", "PER", "PATIENT", "DOCTOR", "PERSON_NAME", "USERNAME"], "NAME"),
    **dict.fromkeys(["LOCATION", "LOC", "STREET", "STREET_ADDRESS", "ADDR"], "ADDRESS"),
    **dict.fromkeys(["PHONE_NUMBER", "TELEPHONE", "TEL", "FAX", "MOBILE", "CONTACT"], "PHONE"),
    **dict.fromkeys(["ID", "IDNUM", "ID_CARD", "CN_ID", "NATIONAL_ID", "RESIDENT_ID"], "ID_NUMBER"),
    **dict.fromkeys(
        ["MEDICALRECORD", "MEDICAL_RECORD", "MRN", "RECORD", "HOSPITAL_NUMBER"], "RECORD_NO"
    ),
    **dict.fromkeys(["DOB", "BIRTHDATE", "BIRTH_DATE"], "DATE_OF_BIRTH"),
    **dict.fromkeys(["CREDIT_CARD", "IBAN_CODE", "CARD"], "BANK_CARD"),
    **dict.fromkeys(["EMAIL_ADDRESS"], "EMAIL"),
    **dict.fromkeys(["US_SSN"], "SSN"),
    **dict.fromkeys(["IP", "IPADDR"], "IP_ADDRESS"),
    **dict.fromkeys(["PLATE", "VEHICLE"], "LICENSE_PLATE"),
    **dict.fromkeys(["US_PASSPORT"], "PASSPORT"),
}


def normalized(item: dict) -> dict:
    """An item in any of the accepted shapes, as {"text", "spans", "keep"}."""
    spans = next((item[k] for k in ("spans", "entities", "labels", "label") if k in item), [])
    return {
        "text": item["text"],
        "spans": [_span(span) for span in spans],
        "keep": [_span(span) for span in item.get("keep", ())],
    }


def _span(span) -> dict:
    if isinstance(span, list | tuple):  # doccano: [start, end, label]
        start, end, *label = span
        return {"start": start, "end": end, "entity": _ours(label[0] if label else "")}
    entity = next((span[k] for k in ("entity", "label", "type") if k in span), "")
    return {"start": span["start"], "end": span["end"], "entity": _ours(entity)}


def _ours(entity: str) -> str:
    name = str(entity).strip().upper().replace("-", "_").replace(" ", "_")
    return ALIASES.get(name, name)


def score(items: Iterable[dict], engine: Deidentifier) -> dict:
    gold, found, predicted, right = Counter(), Counter(), Counter(), Counter()
    changed, misses, false_alarms, count = [], [], [], 0
    for item in map(normalized, items):
        count += 1
        text = item["text"]
        results = engine.find([text])[0]
        covered = set()
        for result in results:
            covered.update(range(result.start, result.end))
        for span in item["spans"]:
            gold[span["entity"]] += 1
            if covered.issuperset(range(span["start"], span["end"])):
                found[span["entity"]] += 1
            else:
                misses.append(
                    {
                        "entity": span["entity"],
                        "text": text[span["start"] : span["end"]],
                        "in": text,
                    }
                )
        for result in results:
            predicted[result.entity_type] += 1
            if any(result.start < s["end"] and s["start"] < result.end for s in item["spans"]):
                right[result.entity_type] += 1
            else:
                false_alarms.append(
                    {
                        "entity": result.entity_type,
                        "text": text[result.start : result.end],
                        "in": text,
                    }
                )
        for span in item.get("keep", ()):
            if covered.intersection(range(span["start"], span["end"])):
                changed.append({"text": text[span["start"] : span["end"]], "in": text})
    entities = sorted(set(gold) | set(predicted))
    return {
        "items": count,
        "entities": {
            entity: {
                "labelled": gold[entity],
                "recall": found[entity] / gold[entity] if gold[entity] else None,
                "replaced": predicted[entity],
                "precision": right[entity] / predicted[entity] if predicted[entity] else None,
            }
            for entity in entities
        },
        "recall": found.total() / gold.total() if gold else None,
        "precision": right.total() / predicted.total() if predicted else None,
        "medical_numbers_changed": changed,
        "misses": misses,
        "false_alarms": false_alarms,
    }
