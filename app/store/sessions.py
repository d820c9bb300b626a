"""Recently active sessions, read from the per-session counter documents (`sessions`).

Each counter document holds the session's last position (`seq`) and last write time
(`updated_at`), so the newest-first list is one query on index `sessions.recent`
(updated_at desc, _id desc), with the caller's session patterns in the query itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import TYPE_CHECKING, Any

from app.errors import BadRequest

if TYPE_CHECKING:
    from app.auth.policy import Patterns
    from app.mongo import Collections, Document

RECENT = "recent"
_CURSOR = re.compile(r"^(\d{1,15}):([A-Za-z0-9._:-]{1,128})$")


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: "<updated_at epoch ms>:<session_id>"."""

    updated_at: datetime.datetime
    session_id: str

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        match = _CURSOR.match(raw)
        if match is None:
            raise BadRequest("before must be a cursor from a previous page's next")
        millis = int(match.group(1))
        when = datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
        return cls(when, match.group(2))

    @classmethod
    def of(cls, doc: Document) -> Cursor:
        return cls(doc["updated_at"], doc["_id"])

    def __str__(self) -> str:
        millis = round(self.updated_at.timestamp() * 1000)
        return f"{millis}:{self.session_id}"


class SessionIndex:
    def __init__(self, collections: Collections) -> None:
        self._sessions = collections.sessions

    async def recent(
        self, sessions: Patterns, limit: int, before: Cursor | None = None
    ) -> list[Document]:
        """Up to `limit` counter documents of covered sessions, newest write first."""
        if sessions.empty:
            return []
        conditions: list[dict[str, Any]] = []
        covered = sessions.query("_id")
        if covered:
            conditions.append(covered)
        if before is not None:
            at = before.updated_at
            conditions.append(
                {
                    "$or": [
                        {"updated_at": {"$lt": at}},
                        {"updated_at": at, "_id": {"$lt": before.session_id}},
                    ]
                }
            )
        query: dict[str, Any] = (
            {}
            if not conditions
            else conditions[0]
            if len(conditions) == 1
            else {"$and": conditions}
        )
        cursor = (
            self._sessions.find(query, {"_id": 1, "seq": 1, "updated_at": 1})
            .sort([("updated_at", -1), ("_id", -1)])
            .limit(limit)
        )
        if sessions.everything:
            # No session condition: walk the index in order. With one, the planner may choose
            # between this index and _id's (exact ids and prefix ranges bound that one).
            cursor = cursor.hint(RECENT)
        docs: list[Document] = await cursor.to_list()
        return docs
