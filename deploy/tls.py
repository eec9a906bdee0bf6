"""TLS for the gateway, the chat page and the review page: uvicorn's own, checked first.

A certificate and key that do not load are one message before the server
starts, not a traceback from inside uvicorn. Serving plain HTTP on an address
other than loopback is allowed (a TLS proxy may be in front) but said once.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path


class TLSError(RuntimeError):
    """The TLS options cannot be used; the message says which file and why."""


def check_tls(cert: Path | None, key: Path | None) -> dict:
    """uvicorn's ssl options for this certificate and key ({} without TLS); TLSError when
    only one is given or they do not load together."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise TLSError("--tls-cert and --tls-key go together: give both, or neither")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise TLSError(f"{option} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as error:
        raise TLSError(
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key "
            f"({error.args[-1] if error.args else error})"
        ) from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(host: str, tls: bool) -> str | None:
    """The one warning line for plain HTTP on a non-loopback address, else None."""
    if tls or is_loopback(host):
        return None
    return (
        f"warning: serving plain HTTP on {host}: anyone on the network can read what is said "
        "and every token; pass --tls-cert and --tls-key, or put a TLS proxy in front"
    )


def scheme(tls: bool) -> str:
    return "https" if tls else "http"
