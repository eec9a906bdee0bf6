"""Asking a served model for replies that must parse, each kept so that a rerun asks again
only for what it has no reply for.

A reply that does not parse is asked again (`attempts` in all); a request the server
refuses with HTTP 400 (a prompt too long for its context, say) is given up without
raising, and not kept, so the next run asks again. Any other refusal stops the run.
The replies are appended to a JSON-lines file as they come, keyed by what was asked;
a line cut short by an interrupted run is simply asked again. A reply that never
parsed is kept with its text (`raw`), for a person to read, and can be asked again
(`retry_failures`); the later line of a key wins.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from deploy.client import Endpoint, EndpointError


def reply_key(*material) -> str:
    """The key of a request: a hash of everything that decides its reply."""
    return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()


class ParsedReplies:
    """One endpoint asked for parsed replies, with its file of earlier ones."""

    def __init__(self, endpoint: Endpoint, path: Path, attempts: int = 2):
        self.endpoint, self.path, self.attempts = endpoint, Path(path), attempts
        self.asked = 0  # requests sent this run
        self._lock = threading.Lock()
        self.kept: dict[str, object] = {}
        self.raw: dict[str, str] = {}  # the last reply of each kept failure, as written
        text = (
            self.path.read_text(encoding="utf-8", errors="replace") if self.path.is_file() else ""
        )
        self._cut_short = bool(text) and not text.endswith("\n")  # the next line starts anew
        if text:
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                    self.kept[row["key"]] = row["value"]
                    self._note_raw(row["key"], row.get("raw"))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # cut short by an interrupted run: asked again

    def ask(
        self,
        key: str,
        prompt: str,
        parse: Callable[[str], object | None],
        keep_failures: bool,
        retry_failures: bool = False,
        **params,
    ) -> tuple[object | None, bool]:
        """(the parsed reply, or None; whether it came from the file). `keep_failures`:
        a reply that never parsed is kept too, so the next run does not ask again, unless
        it passes `retry_failures`."""
        if key in self.kept and not (retry_failures and self.kept[key] is None):
            return self.kept[key], True
        value, text = None, None
        for _attempt in range(self.attempts):
            with self._lock:
                self.asked += 1
            try:
                reply = self.endpoint.chat([{"role": "user", "content": prompt}], **params)
            except EndpointError as error:
                if error.status != 400:  # unreachable, wrong key ...: the run cannot go on
                    raise
                return None, False  # refused: not kept, asked again next run
            text = reply["choices"][0]["message"].get("content") or ""
            value = parse(text)
            if value is not None:
                break
        if value is not None or keep_failures:
            self._keep(key, value, None if value is not None else text)
        return value, False

    def _note_raw(self, key: str, raw: str | None) -> None:
        if raw is None:
            self.raw.pop(key, None)
        else:
            self.raw[key] = raw

    def _keep(self, key: str, value: object, raw: str | None = None) -> None:
        with self._lock:
            self.kept[key] = value
            self._note_raw(key, raw)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                if self._cut_short:
                    out.write("\n")
                    self._cut_short = False
                row = {"key": key, "value": value} | ({"raw": raw} if raw is not None else {})
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
