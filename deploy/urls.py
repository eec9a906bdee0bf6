"""One check of a server's address, before anything is sent to it.

`requests` accepts `http://127.0.0.1:99999` or `http://[::1` into a session and
fails only at the first request, with a traceback. Every option that takes a URL
(`--endpoint`, `--judge-endpoint`, `--gateway`, a gateway's `--arm`) is read
here first, so a typo is one line naming what is wrong with it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

SCHEMES = ("http", "https")
EXAMPLE = "http://127.0.0.1:8000"


class URLError(ValueError):
    """Not a usable http(s) address; the message quotes it and says what is wrong."""


def parse_url(text: str, default_scheme: str | None = None) -> str:
    """`text` checked whole (scheme, host, port 1-65535) and without a trailing '/'.

    `default_scheme` is put in front of a bare `host[:port]` (ModelScope's domain);
    without it a scheme is required.
    """
    url = str(text).strip()
    if default_scheme and "://" not in url:
        url = f"{default_scheme}://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of 0-65535
    except ValueError as error:
        reasons = {
            "out of range": "its port is out of range 1-65535",
            "cast to integer": "its port is not a number",
            "IPv6": "an IPv6 host is written [::1], brackets closed",
        }
        reason = next((why for key, why in reasons.items() if key in str(error)), error)
        raise URLError(f"{text!r} is not a URL: {reason}; e.g. {EXAMPLE}") from None
    if parts.scheme not in SCHEMES:
        raise URLError(f"{text!r}: the address must start with http:// or https://, e.g. {EXAMPLE}")
    if not parts.hostname:
        raise URLError(f"{text!r}: no host; e.g. {EXAMPLE}")
    if port == 0:
        raise URLError(f"{text!r} is not a URL: its port is out of range 1-65535")
    if parts.query or parts.fragment:
        raise URLError(f"{text!r}: a server's base URL has no ?query or #fragment")
    try:  # what requests itself would refuse at the first request (spaces, bad IDNA)
        requests.Request("GET", url).prepare()
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as error:
        raise URLError(f"{text!r} is not a URL: {error}") from None
    if any(character.isspace() for character in url):
        raise URLError(f"{text!r}: an address has no spaces")
    return url.rstrip("/")
