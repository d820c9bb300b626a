"""`collStats` for large collections without encoding every document.

mongoeco answers collStats by reading and BSON-encoding the whole collection, which blocks the
server for seconds at tens of thousands of documents (the API's monitor asks every 30 s). Above
`EXACT_UP_TO` documents this answers instead with the exact count and index figures, and a data
size estimated from `SAMPLE` documents spread evenly over the collection (its average size
times the count). Smaller collections get mongoeco's exact answer.
"""

from __future__ import annotations

import itertools
from typing import Any

from mongoeco.core.aggregation.runtime import _bson_document_size
from mongoeco.core.codec import DocumentCodec
from mongoeco.types import CollectionStatsSnapshot  # type: ignore[attr-defined]

from embedded._history import Document

EXACT_UP_TO = 2000
SAMPLE = 500


async def estimated_coll_stats(engine: Any, database: Any, command: Document) -> Document | None:
    """The collStats answer for a large collection; None to let mongoeco answer."""
    name, scale = command.get("collStats"), command.get("scale", 1)
    if not isinstance(name, str) or not isinstance(scale, int) or scale <= 0:
        return None
    storage = engine._storage.get(database.name, {}).get(name)
    if storage is None or len(storage) <= EXACT_UP_TO:
        return None
    count = len(storage)
    step = max(1, count // SAMPLE)
    sampled = [
        _bson_document_size(DocumentCodec.to_public(engine._borrow_storage_document(data)))
        for data in itertools.islice(storage.values(), 0, None, step)
    ]
    indexes = await database.get_collection(name).list_indexes().to_list()
    snapshot = CollectionStatsSnapshot(
        namespace=f"{database.name}.{name}",
        count=count,
        data_size=round(sum(sampled) / len(sampled) * count),
        index_count=len(indexes),
        total_index_size=sum(_bson_document_size(index) for index in indexes),
        scale=scale,
    )
    reply: Document = snapshot.to_document()
    return reply
