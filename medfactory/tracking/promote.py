"""An alias (production, staging, arm-b) set on a version, with who set it and when: a tag
on the version, and an entry in the registered model's audit tags that is never
overwritten, so the history of promotions stays readable after the alias moves on."""

from __future__ import annotations

import json
import re
import time

from medfactory.access.audit import os_user, record
from medfactory.tracking.errors import TrackingError
from medfactory.tracking.refs import label, model_aliases, resolve

# MLflow's own rule for aliases, checked here to say it in one line.
ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,255}")


def promote(
    client, ref: str, uri: str, alias: str, by: str | None = None, audit_store=None
) -> dict:
    """Set the alias; with `audit_store` (the review store) also an entry in its audit log."""
    if not ALIAS.fullmatch(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise TrackingError(
            f"--alias {alias!r}: use letters, digits, '_' and '-', starting with a letter "
            "(not 'latest' or v1, v2, which MLflow reserves)"
        )
    version = resolve(client, ref, uri)
    previous = model_aliases(client.get_registered_model(version.name)).get(alias)
    by = by or os_user()
    now = time.time()
    entry = {
        "alias": alias, "version": int(version.version), "by": by,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
        "previous": int(previous) if previous else None,
    }  # fmt: skip
    client.set_registered_model_alias(version.name, alias, version.version)
    client.set_model_version_tag(
        version.name, version.version, f"promoted.{alias}",
        json.dumps({"by": by, "at": entry["at"]}),
    )  # fmt: skip
    client.set_registered_model_tag(version.name, f"audit.{int(now * 1000)}", json.dumps(entry))
    if audit_store is not None:
        record(audit_store, by, "version-promoted", f"{version.name}@{version.version}", entry)
    return {**entry, "version": label(version)}


def audit_entries(client, name: str) -> list[dict]:
    tags = client.get_registered_model(name).tags or {}
    return [json.loads(v) for k, v in sorted(tags.items()) if k.startswith("audit.")]
