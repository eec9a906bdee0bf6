"""The audit file of a conversion: what de-identification replaced, for a person to check.

Counts per entity type over the whole input, and a sample of replaced spans in
their context per type, drawn evenly over the input (reservoir sampling with
the conversion's seed, so a rerun draws the same sample). The file holds the
original identifiers it shows: it is written readable by its owner only, and
is to be kept as private as the source data.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import orjson

SAMPLES_PER_ENTITY = 20
NOTE = (
    "Holds original identifiers from the source, to check what was replaced: keep it as "
    "private as the source data, and delete it once checked."
)


class Audit:
    def __init__(self, seed: int, per_entity: int = SAMPLES_PER_ENTITY):
        self.random = random.Random(seed)
        self.per_entity = per_entity
        self.offered: Counter = Counter()  # entries offered so far, per entity
        self.samples: dict[str, list[dict]] = {}

    def offer(self, source: str, line: int, entry: dict) -> None:
        """Keep `entry` with probability per_entity / offered (Algorithm R)."""
        entity = entry["entity"]
        self.offered[entity] += 1
        kept = self.samples.setdefault(entity, [])
        sample = {"source": source, "line": line, **entry}
        if len(kept) < self.per_entity:
            kept.append(sample)
        else:
            slot = self.random.randrange(self.offered[entity])
            if slot < self.per_entity:
                kept[slot] = sample

    def write(self, path: Path, mode: str, counts: Counter, settings: dict) -> None:
        report = {
            "note": NOTE,
            "deid": mode,
            **settings,
            "replaced": dict(sorted(counts.items())),
            "samples": {
                entity: sorted(samples, key=lambda s: (s["source"], s["line"]))
                for entity, samples in sorted(self.samples.items())
            },
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "wb") as out:
            out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, path)
