"""Who is calling the gateway: `--auth none|users|proxy`.

- none: today's behaviour. One optional shared key (`--api-key`); the user is
  the body's `user`.
- users: `Authorization: Bearer <personal token>`. The user is the token's,
  never the body's. A token of role `service` (a page that signs people in
  itself, such as the chat page) names the signed-in user in
  `X-Medfactory-User`; that header with any other token is refused.
- proxy: single sign-on in front (oauth2-proxy, Keycloak). The user is
  `X-Forwarded-User`, believed only from a peer address inside a
  `--trusted-proxy` network; the header from anywhere else is refused.

The directory lives outside deploy/: `lookup(token) -> (name, role) | None` is
handed in (medfactory/ab/serve.py), so this module imports nothing of ours.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

AUTH_MODES = ("none", "users", "proxy")
USER_HEADER = "X-Medfactory-User"
FORWARDED_USER_HEADER = "X-Forwarded-User"
SERVICE_ROLE = "service"
# Who may chat and send feedback through the gateway with their own token.
CHAT_ROLES = ("clinician",)
MAX_USER = 256  # the store's column

Lookup = Callable[[str], "tuple[str, str] | None"]  # token -> (name, role)


class AuthError(ValueError):
    """The gateway's access options disagree; the message says what to change."""


class Refused(Exception):
    """A request the gateway will not serve: its HTTP status and the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who sent a request. `user` is who the exchange belongs to (None: the body says, in
    mode none); `role` the directory's role of the token (None outside mode users)."""

    user: str | None
    role: str | None = None
    name: str | None = None  # the token's own user: a service acting for `user`


def parse_networks(cidrs) -> tuple:
    """`--trusted-proxy` values -> ip networks (a bare address is a /32 or /128)."""
    networks = []
    for text in cidrs:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise AuthError(
                f"--trusted-proxy {text!r}: not an address or network; e.g. 10.0.0.5 or 10.0.0.0/24"
            ) from None
    return tuple(networks)


class Authenticator:
    def __init__(
        self, mode: str = "none", api_key: str | None = None, lookup: Lookup | None = None,
        trusted: tuple = (),
    ):  # fmt: skip
        if mode not in AUTH_MODES:
            raise AuthError(f"--auth {mode!r}: one of {', '.join(AUTH_MODES)}")
        if mode == "users" and lookup is None:
            raise AuthError("--auth users needs the users directory (the store's users)")
        if mode == "users" and api_key:
            raise AuthError(
                "--auth users takes each user's own token; leave out --api-key (give "
                "pages a service user: medfactory users add chatpage --role service)"
            )
        if mode == "proxy" and not trusted:
            raise AuthError(
                "--auth proxy needs --trusted-proxy CIDR: the address of the sign-on proxy "
                "whose X-Forwarded-User is believed"
            )
        if mode != "proxy" and trusted:
            raise AuthError("--trusted-proxy goes with --auth proxy")
        self.mode, self.api_key, self.lookup, self.trusted = mode, api_key, lookup, trusted

    def identify(self, headers, peer: str | None) -> Caller:
        """The caller of a request with these headers from this peer address; Refused."""
        if self.mode == "users":
            return self._by_token(headers)
        if self.mode == "proxy":
            return self._by_proxy(headers, peer)
        if self.api_key:
            sent = headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.api_key}".encode()):
                raise Refused(401, "missing or wrong API key (Authorization: Bearer KEY)")
        return Caller(None)

    def _by_token(self, headers) -> Caller:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        found = self.lookup(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            raise Refused(
                401, "missing, unknown or disabled token (Authorization: Bearer <personal token>)"
            )
        name, role = found
        named = headers.get(USER_HEADER)
        if named is None:
            return Caller(name, role, name)
        if role != SERVICE_ROLE:
            raise Refused(403, f"{USER_HEADER} is accepted only with a service key")
        return Caller(_checked(named, USER_HEADER), role, name)

    def _by_proxy(self, headers, peer: str | None) -> Caller:
        named = headers.get(FORWARDED_USER_HEADER)
        trusted = peer is not None and _inside(peer, self.trusted)
        if named is not None and not trusted:
            raise Refused(403, f"{FORWARDED_USER_HEADER} is accepted only from the trusted proxy")
        if named is None:
            raise Refused(401, "sign in through the hospital's sign-on (no user was forwarded)")
        return Caller(_checked(named, FORWARDED_USER_HEADER), "proxy", None)


def chat_user(caller: Caller) -> str | None:
    """Who a chat or a piece of feedback belongs to (None: the body's `user`, mode none);
    Refused for a token that may not chat."""
    if caller.role is None or caller.role == "proxy":
        return caller.user
    if caller.role == SERVICE_ROLE and caller.user == caller.name:
        raise Refused(403, f"a service key chats only for a signed-in user named in {USER_HEADER}")
    if caller.role != SERVICE_ROLE and caller.role not in CHAT_ROLES:
        raise Refused(403, f"role {caller.role!r} may not chat or send feedback here")
    return caller.user


def _checked(user: str, header: str) -> str:
    user = user.strip()
    if not user or len(user) > MAX_USER:
        raise Refused(400, f"{header} must name a user (1 to {MAX_USER} characters)")
    return user


def _inside(peer: str, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:  # a Unix socket or a test client's name: never trusted
        return False
    return any(address in network for network in networks)
