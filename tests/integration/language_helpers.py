"""Which language a page speaks: its visible words against every catalogue."""

import re

from medfactory.locales import LANGUAGES, catalogue_strings, translations

PLACEHOLDER = re.compile(r"%\(\w+\)s")
PUNCTUATION = " \t\n:：·,，.。;；/-–()（）“”'"


def options(lang: str) -> tuple[str, ...]:
    """The page's command options for `lang`: none for Chinese, the default."""
    return () if lang == "zh" else ("--lang", lang)


def t(lang: str, message: str) -> str:
    return translations(lang).gettext(message)


def words_of(lang: str) -> set[str]:
    """Every text of the language's catalogue, cut at its placeholders; only the pieces long
    enough to be that language's alone (two Chinese characters, three Latin letters)."""
    pieces = set()
    for text in catalogue_strings(lang).values():
        for piece in PLACEHOLDER.split(text):
            piece = piece.strip(PUNCTUATION)
            cjk = len(re.findall(r"[\u4e00-\u9fff]", piece))
            if cjk >= 2 or (not cjk and len(re.findall(r"[A-Za-z]", piece)) >= 3):
                pieces.add(piece)
    return pieces


def shown_text(browser, content: str) -> str:
    """The page's visible text and title, without the elements matching the CSS `content`
    (questions, answers, sources: data in any language, not the page's words)."""
    text = browser.execute_script(
        """
        const hidden = [...document.querySelectorAll(arguments[0])];
        const before = hidden.map((e) => e.style.display);
        hidden.forEach((e) => (e.style.display = "none"));
        const text = document.body.innerText;
        hidden.forEach((e, i) => (e.style.display = before[i]));
        return text;
        """,
        content,
    )
    return f"{browser.title}\n{text}"


def assert_speaks(browser, lang: str, content: str, expected: tuple[str, ...]) -> str:
    """The page shows `expected` (the language's key words) and no other language's words."""
    text = shown_text(browser, content)
    html_lang = browser.find_element("tag name", "html").get_attribute("lang")
    assert html_lang == LANGUAGES[lang], html_lang
    for other in LANGUAGES:
        if other != lang:
            leaked = sorted(word for word in words_of(other) if word in text)
            assert not leaked, f"{other} on the {lang} page: {leaked}\n{text}"
    missing = [word for word in expected if word not in text]
    assert not missing, f"missing on the {lang} page: {missing}\n{text}"
    return text
