"""Resume tokens: a session's position, tagged with the session so a foreign token is caught.

A token is "<seq>.<tag>": seq is the event's per-session position (1, 2, ...), tag is 8 hex
digits of a BLAKE2b hash of the session id.

A trace spans sessions, so its pages use another cursor: the (timestamp, session, position)
of the last event of a page, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import functools
import hashlib
import re
from typing import Any

import orjson

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


@dataclasses.dataclass(frozen=True, slots=True)
class TraceCursor:
    timestamp: datetime.datetime
    session_id: str
    seq: int

    @classmethod
    def of(cls, doc: dict[str, Any]) -> TraceCursor:
        return cls(doc["timestamp"], doc["session_id"], int(doc["seq"]))

    def encode(self) -> str:
        millis = round(self.timestamp.replace(tzinfo=datetime.UTC).timestamp() * 1000)
        raw = orjson.dumps([millis, self.session_id, self.seq])
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str, field: str = "after") -> TraceCursor:
        """A cursor from `encode`; 400 for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            millis, session_id, seq = orjson.loads(raw)
            if not (isinstance(millis, int) and isinstance(seq, int) and 0 <= seq < 10**18):
                raise ValueError(text)
            if not isinstance(session_id, str) or not _SESSION.match(session_id):
                raise ValueError(text)
            when = datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
        except (ValueError, TypeError, OverflowError, OSError, binascii.Error):
            raise BadRequest(f"{field} is not a trace cursor of this service") from None
        return cls(when, session_id, seq)


_SESSION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
