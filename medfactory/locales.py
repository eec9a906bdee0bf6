"""The languages of the doctors' pages (review, drafts review, chat).

One gettext catalogue per language, `templates/locales/LANG.po`, holds every
string those pages show; the msgids are the English wording. Babel reads a
catalogue and compiles it in memory when a page starts, so no compiled `.mo`
file is kept in git or built by `make install`.
"""

from __future__ import annotations

import functools

from medfactory.paths import PROJECT_ROOT

CATALOGUES = PROJECT_ROOT / "templates" / "locales"
# --lang -> the page's <html lang>; the first is the default (doctors read Chinese first).
LANGUAGES = {"zh": "zh-CN", "en": "en"}
DEFAULT_LANGUAGE = "zh"


class UnknownLanguage(ValueError):
    """A language without a catalogue; the message lists the known ones."""


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise UnknownLanguage(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    return lang


@functools.cache
def translations(lang: str):
    """The language's catalogue as a gettext translations object (jinja2's i18n takes it)."""
    from io import BytesIO

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with (CATALOGUES / f"{check_language(lang)}.po").open("rb") as po:
        catalogue = read_po(po, abort_invalid=True)
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled)


def catalogue_strings(lang: str) -> dict[str, str]:
    """msgid -> the language's text, every entry of its catalogue (the tests' reference)."""
    from babel.messages.pofile import read_po

    with (CATALOGUES / f"{check_language(lang)}.po").open("rb") as po:
        return {m.id: m.string for m in read_po(po) if m.id}


def gettext(lang: str):
    """`_` for Python code: the language's text for an English msgid."""
    return translations(lang).gettext


def N_(message: str) -> str:  # noqa: N802 -- gettext's name for "mark for the catalogue"
    """Mark a string for the catalogue where it is defined; it is translated where shown."""
    return message
