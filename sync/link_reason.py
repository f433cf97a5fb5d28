"""Why the link is down, in a word the driver's screen can translate.

The publisher's error texts are for the log and for a technician on the phone (host, port,
errno, the broker's reason code); the screen shows one of these short reasons beside "offline
since 19:55", in the driver's language, and the full text only where there is room.
"""

from __future__ import annotations

import re

# "cannot connect to HOST:PORT: <why>": the host is a name the fleet chose ("tls.office…").
_WHERE = re.compile(r"^cannot connect to \S+: ")

# Most specific first: a TLS handshake refused by the peer also says "connection".
_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("config", re.compile(r"^mqtt\.(tls\.|password)", re.IGNORECASE)),
    ("tls", re.compile(r"\bSSL\b|\bTLS\b|certificate|handshake", re.IGNORECASE)),
    (
        "not_authorised",
        re.compile(r"not authori[sz]ed|bad user ?name or password|0x8[67]\b", re.IGNORECASE),
    ),
    ("refused", re.compile(r"connection refused|errno 111\b", re.IGNORECASE)),
    ("timeout", re.compile(r"timed out|no PUBACK|no CONNACK", re.IGNORECASE)),
    (
        "unreachable",
        re.compile(
            r"name or service not known|name resolution|no route to host|network is unreachable"
            r"|nodename nor servname",
            re.IGNORECASE,
        ),
    ),
    ("lost", re.compile(r"connection (lost|closed|reset)|broken pipe", re.IGNORECASE)),
)


def link_reason(error: str | None) -> str | None:
    """The short reason code for a publisher error text; "other" when none fits, None for
    no error."""
    if not error:
        return None
    # "<refusal>; then <what happened next>": the first cause is the one to show.
    first = error.split("; then ", 1)[0]
    first = _WHERE.sub("cannot connect: ", first)  # the reason is in why, never in where
    for code, pattern in _REASONS:
        if pattern.search(first):
            return code
    return "other"
