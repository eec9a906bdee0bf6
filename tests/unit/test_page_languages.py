"""The pages' catalogues: every string the pages show is in each language, and nothing else."""

import re

import pytest
from babel.messages.extract import extract_from_file
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.locales import (
    LANGUAGES,
    UnknownLanguage,
    catalogue_strings,
    check_language,
    translations,
)
from medfactory.paths import PROJECT_ROOT

PAGES = sorted((PROJECT_ROOT / "templates" / "review").glob("*.html"))
CODE = [PROJECT_ROOT / "medfactory" / "review" / "page.py", PROJECT_ROOT / "medfactory/ab/chat.py"]
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def shown_messages() -> set[str]:
    """What the pages mark for translation, found as Babel's own extraction finds it."""
    found = set()
    for path in PAGES:
        options = {"extensions": "jinja2.ext.i18n"}
        found |= {
            m[1] for m in extract_from_file("jinja2.ext:babel_extract", path, options=options)
        }
    for path in CODE:
        found |= {m[1] for m in extract_from_file("python", path)}
    return found


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_each_catalogue_holds_every_shown_string_and_nothing_stale(lang):
    catalogue = catalogue_strings(lang)
    shown = shown_messages()
    assert len(shown) > 60 and all(isinstance(m, str) for m in shown)
    assert sorted(shown - set(catalogue)) == []  # shown, not translated
    assert sorted(set(catalogue) - shown) == []  # translated, never shown
    for msgid, text in catalogue.items():
        assert text.strip(), f"{lang}: {msgid!r} has no text"
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), msgid


def test_chinese_is_the_default_and_reads_chinese():
    chinese = catalogue_strings("zh")
    assert next(iter(LANGUAGES)) == "zh"
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in chinese.values())
    assert translations("zh").gettext("Submit") == "提交"
    assert translations("en").gettext("Submit") == "Submit"


def test_an_unknown_language_names_the_known_ones():
    with pytest.raises(UnknownLanguage, match="unknown language 'fr'; known: zh, en"):
        check_language("fr")
    for command in (
        ["review", "serve", "s1", "--lang", "fr"],
        ["chat", "--gateway", "http://127.0.0.1:8100", "--lang", "fr"],
    ):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2
        assert "Invalid value for '--lang': 'fr' is not one of 'zh', 'en'." in result.output
        assert "Traceback" not in result.output
