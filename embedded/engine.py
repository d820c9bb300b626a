"""mongoeco's memory engine with reads and unique checks that do not grow with the collection.

mongoeco 4.11's `MemoryEngine` checks a compound unique index by comparing the new document
with every stored one, and uses an index for reads only on a single-field equality. This
subclass keeps `OrderedIndex`es (see `embedded._ordered`) beside mongoeco's own structures
and uses them at two points, leaving everything else to mongoeco:

- `_ensure_unique_indexes`: a compound unique index whose values are ordered scalars is
  checked by one bisection; the error raised is the one mongoeco raises. Indexes are checked
  in mongoeco's order, so a document that breaks two reports the same one.
- `_candidate_items_for_plan_locked`: the documents a read, count, update or delete looks
  at are those of an index slice (see `embedded._planner`) instead of the whole collection.
  mongoeco still filters, sorts and projects them, so answers are exactly mongoeco's;
  `tests/embedded/test_engine_equivalence.py` compares the two on random operations.

Anything outside that (collations, other dialects, text queries, transactions' private
views, indexes with arrays or sub-documents, sparse or partial indexes) takes mongoeco's path.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

from mongoeco.compat import MONGODB_DIALECT_70
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.engines._memory_collection import MemoryCollection
from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.semantic_core import iter_filtered_documents

from embedded._ordered import (
    NULL_KEY,
    CollectionIndexes,
    OrderedIndex,
    Unsupported,
    order_key,
    path_value,
)
from embedded._planner import Sort, candidates

type Document = dict[str, Any]


def _plain(index: Any) -> bool:
    """An index the ordered structures model: ascending/descending keys, nothing partial."""
    return (
        index.collation is None
        and index.partial_filter_expression is None
        and not index.sparse
        and all(direction in (1, -1) for _, direction in index.key)
    )


class IndexedMemoryEngine(MemoryEngine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ordered: dict[int, CollectionIndexes] = {}
        self._reads: dict[int, Any] = {}  # id(query plan) -> the find semantics being scanned

    # -- keeping the ordered indexes in step ------------------------------------------------

    def _collection_indexes(self, storage: object, *, rebuild: bool) -> CollectionIndexes | None:
        if not isinstance(storage, MemoryCollection):
            return None
        state = self._ordered.get(id(storage))
        if state is None:
            state = self._adopt(storage)
        if state is None:
            if not rebuild:
                return None
            state = CollectionIndexes(storage, self._borrow_storage_document)
            key = id(storage)
            self._ordered[key] = state
            weakref.finalize(storage, self._ordered.pop, key, None)
        if not state.current():
            if not rebuild:
                return None
            state.resync()
        return state

    def _adopt(self, storage: Any) -> CollectionIndexes | None:
        """The indexes of the collection `storage` is a fresh copy of, handed over to it.

        mongoeco writes through a copy of a collection (copy-on-write, published when the
        write succeeds); the copy shares the original's values until its first write. Moving
        the original's current indexes to the copy keeps a write from rebuilding them from
        every document. Should the write roll back, the original finds no indexes of its own
        and rebuilds them on its next use, as after any change made behind their back.
        """
        for key, state in list(self._ordered.items()):
            if state.version is storage._values and state.storage is not storage:
                del self._ordered[key]
                state.storage = storage
                self._ordered[id(storage)] = state
                weakref.finalize(storage, self._ordered.pop, id(storage), None)
                return state
        return None

    def _set_storage_document_locked(
        self, collection: Any, storage_key: Any, document: Any
    ) -> None:
        state = self._collection_indexes(collection, rebuild=False)
        super()._set_storage_document_locked(collection, storage_key, document)
        if state is not None:
            state.put(storage_key, document)

    def _delete_storage_document_locked(self, collection: Any, storage_key: Any) -> None:
        state = self._collection_indexes(collection, rebuild=False)
        super()._delete_storage_document_locked(collection, storage_key)
        if state is not None:
            state.put(storage_key, None)

    def _ordered_indexes(self, storage: object, records: list[Any]) -> list[OrderedIndex]:
        state = self._collection_indexes(storage, rebuild=True)
        if state is None:
            return []
        found = (state.index(str(r.name), r.fields) for r in records if _plain(r))
        return [index for index in found if index.usable]

    # -- mongoeco's own index data: only where mongoeco still needs it ------------------------

    @staticmethod
    def _mongoeco_maintains(index: Any) -> bool:
        """Indexes whose mongoeco index data is kept: the TTL ones (their expiry schedule) and
        those the ordered indexes do not model. The others have none at all, so mongoeco's
        own paths, when they run for them, scan the collection instead of trusting a map."""
        return not _plain(index) or index.expire_after_seconds is not None

    def _update_indexes_locked(
        self,
        db_name: str,
        coll_name: str,
        storage_key: Any,
        document: Document,
        *,
        action: str = "insert",
        index_data_view: dict[str, Any] | None = None,
        indexes_view: dict[str, dict[str, list[Any]]] | None = None,
    ) -> None:
        records = (self._indexes if indexes_view is None else indexes_view).get(db_name, {})
        kept = [r for r in records.get(coll_name, []) if self._mongoeco_maintains(r)]
        super()._update_indexes_locked(
            db_name,
            coll_name,
            storage_key,
            document,
            action=action,
            index_data_view=index_data_view,
            indexes_view={db_name: {coll_name: kept}},
        )

    def _rebuild_index_data_locked(
        self, db_name: str, coll_name: str, index: Any, **views: Any
    ) -> None:
        if self._mongoeco_maintains(index):
            super()._rebuild_index_data_locked(db_name, coll_name, index, **views)

    # -- unique checks ----------------------------------------------------------------------

    def _ensure_unique_indexes(
        self,
        db_name: str,
        coll_name: str,
        candidate: Document,
        *,
        exclude_storage_key: Any | None = None,
        indexes_view: dict[str, dict[str, list[Any]]] | None = None,
        storage_view: dict[str, dict[str, Any]] | None = None,
        index_data_view: dict[str, Any] | None = None,
        check_id_storage: bool = False,
        scan_payload_id: bool = False,
    ) -> None:
        indexes = (self._indexes if indexes_view is None else indexes_view).get(db_name, {})
        records = indexes.get(coll_name, [])
        storage = (self._storage if storage_view is None else storage_view).get(db_name, {})
        coll = storage.get(coll_name, {})

        def mongoeco_check(only: list[Any], *, with_id: bool) -> None:
            super(IndexedMemoryEngine, self)._ensure_unique_indexes(
                db_name,
                coll_name,
                candidate,
                exclude_storage_key=exclude_storage_key,
                indexes_view={db_name: {coll_name: only}},
                storage_view=storage_view,
                index_data_view=index_data_view,
                check_id_storage=with_id and check_id_storage,
                # mongoeco compares a single insert's _id with every stored one; only a
                # numeric _id (1 == 1.0 == Int64(1)) can equal another without the same
                # storage key, so only a numeric one needs that scan.
                scan_payload_id=with_id and scan_payload_id and numeric_id,
            )

        numeric_id = id_contains_numeric_value(candidate.get("_id"))
        exclude = exclude_storage_key
        if exclude is not None and exclude not in coll:
            exclude = self._storage_key(exclude)
        # mongoeco's order: the _id, then each index as listed; runs of indexes that mongoeco
        # checks go to it together, in that order, so the first index broken is the one named.
        pending: list[Any] = []
        first = True
        for record in records:
            keys = self._ordered_unique_keys(coll, record, candidate)
            if keys is None:
                if record.unique or len(record.fields) > 1 or not _plain(record):
                    pending.append(record)  # (a plain single-field index checks nothing)
                continue
            if pending or first:
                mongoeco_check(pending, with_id=first)
                pending, first = [], False
            ordered, key = keys
            start, stop = ordered.span(key, (*key[:-1], (*key[-1], 1)))
            if any(entry[-1] != exclude for entry in ordered.entries(start, stop)):
                conflict = next(iter(self._unique_index_keys(candidate, record.fields)))
                raise self._unique_key_error(  # type: ignore[no-untyped-call]
                    f"Duplicate key for unique index '{record['name']}': "
                    f"{record['fields']}={conflict!r}",
                    f"{db_name}.{coll_name}",
                    candidate,
                    index=record,
                    conflict=conflict,
                )
        if pending or first:
            mongoeco_check(pending, with_id=first)

    def _ordered_unique_keys(
        self, coll: Any, record: Any, candidate: Document
    ) -> tuple[OrderedIndex, tuple[Any, ...]] | None:
        """The ordered index and the candidate's key for a unique check; None: mongoeco's."""
        if not (record.unique and _plain(record)):
            return None
        (ordered,) = self._ordered_indexes(coll, [record]) or (None,)
        if ordered is None:
            return None
        try:
            key = tuple(order_key(path_value(candidate, f)) for f in record.fields)
        except Unsupported:
            return None
        if len(key) == 1 and key[0] == NULL_KEY:
            return None  # mongoeco keeps a missing single field apart from null; it decides
        return ordered, key

    # -- reads --------------------------------------------------------------------------------

    def scan_find_semantics(
        self, db_name: str, coll_name: str, semantics: Any, *, context: Any = None
    ) -> AsyncIterator[Document]:
        inner = super().scan_find_semantics(db_name, coll_name, semantics, context=context)
        plan = semantics.query_plan

        async def scan() -> AsyncIterator[Document]:
            self._reads[id(plan)] = semantics
            try:
                async for document in inner:
                    yield document
            finally:
                self._reads.pop(id(plan), None)

        return scan()

    def _candidate_items_for_plan_locked(
        self,
        coll: Any,
        query_plan: Any,
        *,
        dialect: Any,
        indexes: list[Any],
        index_data: Any,
        collation: Any,
        natural_order_limit: int | None = None,
    ) -> list[tuple[Any, Any]]:
        semantics = self._reads.pop(id(query_plan), None)
        if semantics is not None and semantics.query_plan is not query_plan:
            semantics = None
        keys = self._index_candidates(coll, query_plan, indexes, dialect, collation, semantics)
        if keys is None:
            return super()._candidate_items_for_plan_locked(
                coll,
                query_plan,
                dialect=dialect,
                indexes=indexes,
                index_data=index_data,
                collation=collation,
                natural_order_limit=natural_order_limit,
            )
        return [(key, coll[key]) for key in keys]

    def _index_candidates(
        self,
        coll: Any,
        plan: Any,
        indexes: list[Any],
        dialect: Any,
        collation: Any,
        semantics: Any,
    ) -> list[Any] | None:
        if collation is not None or dialect is not MONGODB_DIALECT_70:
            return None
        if self._direct_id_lookup_from_plan(plan) is not None:
            return None  # mongoeco answers an _id lookup in O(1) itself
        sort: Sort | None = None
        if semantics is not None:
            if semantics.text_query is not None:
                return None
            if semantics.hint is not None and not all(_plain(index) for index in indexes):
                return None
            window = semantics.skip + (semantics.limit or 0)
            if semantics.sort and semantics.limit and window > 0:
                field, direction = semantics.sort[0]
                sort = Sort(field, direction, window)
        ordered = self._ordered_indexes(coll, indexes)
        if not ordered:
            return None

        def matches(storage_key: Any) -> bool:
            document = self._borrow_storage_document(coll[storage_key])
            return any(True for _ in iter_filtered_documents((document,), semantics))

        return candidates(plan, ordered, sort if semantics is not None else None, matches)
