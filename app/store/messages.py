"""Messages: the text an agent wrote, one document per message, idempotent on message_id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import Conflict
from app.mongo import upsert
from app.store.codec import Document
from app.store.events import Clock, utc_now

if TYPE_CHECKING:
    from app.mongo import Collections

_NO_ID = {"_id": 0}
MAX_LIST = 1000


class MessageStore:
    def __init__(self, collections: Collections, *, clock: Clock = utc_now) -> None:
        self._messages = collections.messages
        self._clock = clock

    async def put(
        self,
        *,
        message_id: str,
        session_id: str,
        role: str,
        content: str,
        parent_id: str | None = None,
        trace_id: str | None = None,
        incomplete: str | None = None,
    ) -> Document:
        """Store a message once; a retried write returns the stored one unchanged.

        `incomplete` is why a streamed message ended early (the run was cancelled, timed out
        or failed): the content is what was said until then.
        """
        fields: Document = {
            "message_id": message_id,
            "session_id": session_id,
            "parent_id": parent_id,
            "role": role,
            "content": content,
            "trace_id": trace_id,
            "timestamp": self._clock(),
        }
        if incomplete is not None:
            fields["incomplete"] = incomplete
        stored = await upsert(
            self._messages, {"message_id": message_id}, {"$setOnInsert": fields}, projection=_NO_ID
        )
        if stored is None:
            raise RuntimeError(f"could not store message {message_id}")
        if stored["session_id"] != session_id:
            raise Conflict(f"message_id {message_id} is already used by another session")
        return stored

    async def list(self, session_id: str, limit: int = MAX_LIST) -> list[Document]:
        """A session's messages in the order they were written (index session_timestamp).

        Messages written in the same millisecond keep their insertion order through _id.
        """
        cursor = (
            self._messages.find({"session_id": session_id}, _NO_ID)
            .sort([("timestamp", 1), ("_id", 1)])
            .limit(limit)
            .hint("session_timestamp")
        )
        return await cursor.to_list()
