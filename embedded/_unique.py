"""mongoeco's memory engine with compound unique indexes checked by hash, not by scan.

mongoeco checks a single-field unique index through its index map (a dict lookup), but a
compound one by comparing the candidate with every stored document: each insert into `events`,
whose (session_id, seq) index is unique, cost O(collection size), so one batch of 1000 events
took over a minute and stalled every other request. The engine keeps a map for compound
indexes too (updated per document, batches included); this looks the candidate up there and
leaves the index out of the scan. Anything unusual (arrays, collation, sparse or partial
indexes, no map) keeps mongoeco's own check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mongoeco.engines.memory import MemoryEngine


class HashedUniqueEngine(MemoryEngine):
    def _ensure_unique_indexes(  # type: ignore[no-untyped-def]
        self,
        db_name: str,
        coll_name: str,
        candidate: dict[str, Any],
        *,
        exclude_storage_key: Any | None = None,
        indexes_view: dict[str, dict[str, list[Any]]] | None = None,
        index_data_view: dict[str, Any] | None = None,
        **options: Any,
    ):
        indexes = (self._indexes if indexes_view is None else indexes_view).get(db_name, {})
        records = indexes.get(coll_name, [])
        maps = (self._index_data if index_data_view is None else index_data_view).get(db_name, {})
        maps = maps.get(coll_name, {})
        hashed = [
            index
            for index in records
            if exclude_storage_key is None  # a replacement: mongoeco's check knows its key
            and _hashable(index, candidate)
            and maps.get(index.name) is not None
        ]
        for index in hashed:
            key = self._index_key(candidate, index.fields)
            holders = maps[index.name].get(key) or ()
            if holders:
                raise self._unique_key_error(  # type: ignore[no-untyped-call]
                    f"Duplicate key for unique index '{index.name}': {index.fields}={key!r}",
                    f"{db_name}.{coll_name}",
                    candidate,
                    index=index,
                    conflict=key,
                )
        if hashed:
            rest = [dataclasses.replace(i, unique=False) if i in hashed else i for i in records]
            indexes_view = {db_name: {coll_name: rest}}
        return super()._ensure_unique_indexes(
            db_name,
            coll_name,
            candidate,
            exclude_storage_key=exclude_storage_key,
            indexes_view=indexes_view,
            index_data_view=index_data_view,
            **options,
        )


def _hashable(index: Any, candidate: dict[str, Any]) -> bool:
    if not index.unique or len(index.fields) < 2 or index.multikey or index.sparse:
        return False
    if index.collation is not None or index.partial_filter_expression is not None:
        return False
    # Dotted paths and array values have multikey semantics: mongoeco's own check handles them.
    return all("." not in f and not isinstance(candidate.get(f), list) for f in index.fields)
