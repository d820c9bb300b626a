"""Resume tokens: a session's position, tagged with the session so a foreign token is caught.

A token is "<seq>.<tag>": seq is the event's per-session position (1, 2, ...), tag is 8 hex
digits of a BLAKE2b hash of the session id.
"""

from __future__ import annotations

import functools
import hashlib
import re

from app.errors import BadRequest

TOKEN_PATTERN = r"^[0-9]{1,18}\.[0-9a-f]{8}$"  # noqa: S105 (not a secret; /openapi.json says it)
_TOKEN = re.compile(r"^([0-9]{1,18})\.([0-9a-f]{8})$")


@functools.lru_cache(maxsize=8192)
def session_tag(session_id: str) -> str:
    return hashlib.blake2b(session_id.encode(), digest_size=4).hexdigest()


def encode(session_id: str, seq: int) -> str:
    return f"{seq}.{session_tag(session_id)}"


def decode(session_id: str, token: str, field: str = "Last-Event-ID") -> int:
    """The position a token names; 400 when malformed or issued for another session."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise BadRequest(f"{field} is not a resume token of this service")
    if match.group(2) != session_tag(session_id):
        raise BadRequest(f"{field} belongs to another session")
    return int(match.group(1))
