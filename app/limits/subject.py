"""Who a per-subject limit counts: the token's `sub` when access control verified one, else
the client address (after uvicorn applied X-Forwarded-For from FORWARDED_ALLOW_IPS only).

The access-control middleware sets `scope[SUBJECT_KEY]` to the verified token's `sub`. The two
kinds of subject are kept apart by a prefix, so a token whose `sub` looks like an address never
shares a budget with that address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import Scope

SUBJECT_KEY = "agentstream.subject"


def subject_of(scope: Scope) -> str:
    subject = scope.get(SUBJECT_KEY)
    if isinstance(subject, str) and subject:
        return f"sub:{subject}"
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"
