"""Who may do what: the one decision of access control. Pure: no I/O, no clock, no framework.

A principal (from a verified token, or everyone when AUTH_MODE=off) holds scopes and session
patterns. A route declares an `Access`: the scope it needs and how its session is found.

- `PATH`: the session is a path parameter, decided before the handler runs.
- `LOOKUP`: the session is that of the thing looked up by id (event, run). Outside the
  principal's sessions the answer is `NOT_FOUND`, whatever its scopes, so existence is not
  revealed; inside them, a missing scope is `FORBIDDEN`.
- `FILTER`: the handler's query keeps the principal's sessions only (`Patterns.query`).
- `NONE`: no session is involved.

`admin` holds every scope and covers every session.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable
from typing import Any

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREFIX = re.compile(r"^[A-Za-z0-9._:-]{1,127}\*$")


class Scope(enum.StrEnum):
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    RUNS_WRITE = "runs:write"
    ADMIN = "admin"


class SessionRule(enum.Enum):
    PATH = "path"
    LOOKUP = "lookup"
    FILTER = "filter"
    NONE = "none"


class Decision(enum.Enum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """What a route requires."""

    scope: Scope
    session: SessionRule = SessionRule.PATH
    path_param: str = "session_id"


@dataclasses.dataclass(frozen=True, slots=True)
class Patterns:
    """The `sessions` claim: exact ids, prefixes (`demo*`), or every session (`*`)."""

    everything: bool = False
    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, claim: object) -> Patterns:
        """From the claim's array; ValueError naming the first entry that is not a pattern."""
        if claim is None:
            return cls()
        if not isinstance(claim, list):
            raise ValueError("the sessions claim must be an array of strings")
        exact: set[str] = set()
        prefixes: set[str] = set()
        for item in claim:
            if item == "*":
                return cls(everything=True)
            if isinstance(item, str) and _ID.match(item):
                exact.add(item)
            elif isinstance(item, str) and _PREFIX.match(item):
                prefixes.add(item[:-1])
            else:
                raise ValueError(
                    "each sessions entry is a session id, a prefix followed by *, or *"
                )
        # Keep the widest prefixes only, and exact ids no prefix covers: the query stays small.
        kept = sorted(p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes))
        loose = frozenset(s for s in exact if not any(s.startswith(p) for p in kept))
        return cls(exact=loose, prefixes=tuple(kept))

    def covers(self, session_id: str) -> bool:
        return (
            self.everything
            or session_id in self.exact
            or any(session_id.startswith(p) for p in self.prefixes)
        )

    @property
    def empty(self) -> bool:
        return not (self.everything or self.exact or self.prefixes)

    def query(self, field: str) -> dict[str, Any]:
        """A MongoDB filter on `field` matching exactly the covered sessions.

        Exact ids become one `$in`, each prefix an anchored range [prefix, next prefix), so
        an index on `field` bounds the scan; nothing is filtered after the query.
        """
        if self.everything:
            return {}
        clauses: list[dict[str, Any]] = []
        if self.exact:
            clauses.append({field: {"$in": sorted(self.exact)}})
        clauses.extend({field: {"$gte": p, "$lt": _successor(p)}} for p in self.prefixes)
        if not clauses:
            return {field: {"$in": []}}
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _successor(prefix: str) -> str:
    """The smallest string after every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    subject: str | None  # the token's `sub`; None when AUTH_MODE=off
    scopes: frozenset[Scope]
    sessions: Patterns
    expires_at: float | None = None  # the token's `exp` (epoch seconds)

    @classmethod
    def everyone(cls) -> Principal:
        """AUTH_MODE=off: every scope, every session, no expiry."""
        return cls(None, frozenset({Scope.ADMIN}), Patterns(everything=True))

    @staticmethod
    def parse_scopes(claim: object) -> frozenset[Scope]:
        """The space-separated `scope` claim; scopes this service does not define are ignored."""
        if claim is None:
            return frozenset()
        if not isinstance(claim, str):
            raise ValueError("the scope claim must be a space-separated string")
        known = {s.value for s in Scope}
        return frozenset(Scope(word) for word in claim.split() if word in known)

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def covers(self, session_id: str) -> bool:
        return Scope.ADMIN in self.scopes or self.sessions.covers(session_id)

    def visible(self) -> Patterns:
        """The sessions a FILTER route's query keeps."""
        return Patterns(everything=True) if Scope.ADMIN in self.scopes else self.sessions


def decide(principal: Principal, access: Access, session_id: str | None = None) -> Decision:
    """The answer for `principal` on a route requiring `access`, for `session_id` when known.

    For PATH and LOOKUP routes `session_id` is required; FILTER and NONE routes need only
    the scope (a FILTER route's query then keeps the covered sessions).
    """
    if access.session in (SessionRule.PATH, SessionRule.LOOKUP) and session_id is None:
        raise ValueError(f"a {access.session.value} rule needs the session id")
    if access.session is SessionRule.LOOKUP:
        assert session_id is not None
        if not principal.covers(session_id):
            return Decision.NOT_FOUND
        return Decision.ALLOW if principal.has(access.scope) else Decision.FORBIDDEN
    if not principal.has(access.scope):
        return Decision.FORBIDDEN
    if access.session is SessionRule.PATH:
        assert session_id is not None
        if not principal.covers(session_id):
            return Decision.FORBIDDEN
    return Decision.ALLOW


def scopes_text(scopes: Iterable[Scope]) -> str:
    return " ".join(sorted(s.value for s in scopes))
