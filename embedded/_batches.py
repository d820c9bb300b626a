"""MongoDB's batch limits for the embedded server's cursors.

mongoeco puts a whole query result in the first batch unless the driver names a batch size,
and a getMore without one returns everything left; large documents then make replies bigger
than the 48 MB message limit and the driver drops the connection. mongod instead ends a batch
at the batch size (101 documents for a first batch by default) or when the batch reaches
16 MB, whichever comes first, and always returns at least one document. `CappedCursorStore`
does the same for mongoeco's cursors; `ChangeStreams` uses `fits` for its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import bson
import bson.errors
from bson import BSON
from mongoeco.wire.bson_bridge import encode_wire_value
from mongoeco.wire.cursors import WireCursorStore

MAX_BSON_SIZE = 16 * 1024 * 1024  # maxBsonObjectSize, and mongod's cap on one batch
MAX_MESSAGE_SIZE = 48_000_000
FIRST_BATCH = 101


def bson_size(document: Any) -> int:
    try:
        return len(bson.encode(document))  # C; refuses mongoeco's own value types
    except (bson.errors.InvalidDocument, TypeError):
        return len(BSON.encode(encode_wire_value(document)))


def fits(documents: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """The leading documents that make one batch: at most `limit`, under 16 MB, at least one."""
    total = 0
    for count, document in enumerate(documents):
        if limit is not None and count >= limit:
            return
        total += bson_size(document)
        if count and total > MAX_BSON_SIZE:
            return
        yield document


class CappedCursorStore(WireCursorStore):
    def materialize_command_result(
        self, command_document: dict[str, Any], result: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        cursor = result.get("cursor")
        first = cursor.get("firstBatch") if isinstance(cursor, dict) else None
        if isinstance(first, list):
            size = self._resolve_batch_size(command_document)
            limit = FIRST_BATCH if size is None else size or None
            batch_size = len(list(fits(first, limit)))
            if batch_size < len(first):
                command_document = {**command_document, "batchSize": batch_size}
        return super().materialize_command_result(command_document, result, **kwargs)

    def get_more(self, command_document: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        cursor_id = command_document.get("getMore")
        state = self._state.get(cursor_id) if isinstance(cursor_id, int) else None
        if state is not None:
            size = command_document.get("batchSize")
            limit = size if isinstance(size, int) and size > 0 else None
            batch_size = len(list(fits(state.remaining_batch, limit)))
            command_document = {**command_document, "batchSize": batch_size}
        return super().get_more(command_document, **kwargs)
