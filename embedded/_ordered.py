"""Ordered indexes over one mongoeco collection: the structures behind the embedded engine's
index-bounded reads and compound unique checks.

An `OrderedIndex` holds one entry per document, `(key_1, ..., key_n, ordinal, storage_key)`,
in a sorted list, where each key is the field's value as `(BSON type rank, value)` so that
tuples order as MongoDB sorts scalars, and `ordinal` is the document's natural (insertion)
position. An equality prefix plus a range on the next field is one contiguous slice, found by
bisection.

Only values whose order is certain are indexed: null or missing, numbers (not NaN), strings,
ObjectIds, booleans and dates. A document with any other value on an index path (an array, a
sub-document, a Decimal128, ...) makes the index `usable = False` until it is rebuilt, and the
engine then answers through mongoeco's own path: an index is exact or unused, never partial.

`CollectionIndexes` keeps a collection's ordered indexes in step with its storage. It records
the storage's root (`MemoryCollection._values`, a persistent map whose identity changes on
every write) after each write it applies; any change it did not see (a rollback, a
transaction's commit) leaves the root different, and the next read rebuilds from scratch.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sortedcontainers import SortedList

type Key = tuple[Any, ...]
type Entry = tuple[Any, ...]

_NULL, _NUMBER, _STRING, _OBJECT_ID, _BOOL, _DATE = 1, 2, 3, 7, 8, 9
TOP: Key = ((99,),)  # a probe above every entry
NULL_KEY: Key = (_NULL,)
_EPOCH = datetime.datetime(1970, 1, 1)


class Unsupported(Exception):
    """A value whose order the ordered index does not model."""


def order_key(value: object) -> Key:
    """`(rank, comparable)` for a scalar BSON value, ordered as MongoDB sorts; else Unsupported."""
    if value is None:
        return (_NULL,)
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int):
        return (_NUMBER, value)
    if isinstance(value, float):
        if math.isnan(value):
            raise Unsupported("NaN")
        return (_NUMBER, value)
    if isinstance(value, str):
        return (_STRING, value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return (_DATE, value)
    if type(value).__name__ == "ObjectId" and hasattr(value, "binary"):
        return (_OBJECT_ID, value.binary)
    raise Unsupported(type(value).__name__)


def just_above(key: Key) -> Key:
    """A probe above `key` and below every greater key."""
    return (*key, 1)


def path_value(document: dict[str, Any], path: str) -> object:
    """The scalar at a dotted path (None when missing); Unsupported on an array on the way."""
    value: object = document
    for part in path.split("."):
        if isinstance(value, list):
            raise Unsupported("array")
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, list | dict):
        raise Unsupported(type(value).__name__)
    return value


class OrderedIndex:
    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.usable = True
        self._entries: SortedList = SortedList()
        self._by_storage: dict[Any, Entry] = {}

    def keys_of(self, document: dict[str, Any]) -> Key:
        return tuple(order_key(path_value(document, field)) for field in self.fields)

    def put(self, storage_key: Any, ordinal: int, document: dict[str, Any] | None) -> None:
        """Index `document` under `storage_key`, replacing its previous entry; None removes."""
        old = self._by_storage.pop(storage_key, None)
        if old is not None:
            self._entries.remove(old)
        if document is None or not self.usable:
            return
        try:
            entry = (*self.keys_of(document), ordinal, storage_key)
        except Unsupported:
            self.usable = False
            return
        self._entries.add(entry)
        self._by_storage[storage_key] = entry

    def load(self, rows: Iterable[tuple[Any, int, dict[str, Any]]]) -> None:
        entries = []
        try:
            for storage_key, ordinal, document in rows:
                entries.append((*self.keys_of(document), ordinal, storage_key))
        except Unsupported:
            self.usable = False
            return
        self._entries = SortedList(entries)
        self._by_storage = {entry[-1]: entry for entry in entries}

    def span(self, low: Key, high: Key) -> tuple[int, int]:
        """Positions of the entries in [low, high) (probes compared as entry prefixes)."""
        return self._entries.bisect_left(low), self._entries.bisect_left(high)

    def entries(self, start: int, stop: int, *, reverse: bool = False) -> Iterator[Entry]:
        return self._entries.islice(start, stop, reverse=reverse)  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._entries)


type Borrow = Callable[[Any], dict[str, Any]]


class CollectionIndexes:
    """The ordered indexes of one storage object, kept in step with it (see the module doc)."""

    def __init__(self, storage: Any, borrow: Borrow) -> None:
        self._storage = storage
        self._borrow = borrow
        self._indexes: dict[str, OrderedIndex] = {}
        self.version: object = storage._values

    @property
    def storage(self) -> Any:
        return self._storage

    @storage.setter
    def storage(self, storage: Any) -> None:
        self._storage = storage

    def current(self) -> bool:
        return self.version is self._storage._values

    def resync(self) -> None:
        """Forget every index: the storage changed behind this object's back."""
        self._indexes.clear()
        self.version = self._storage._values

    def index(self, name: str, fields: Sequence[str]) -> OrderedIndex:
        index = self._indexes.get(name)
        if index is None or index.fields != tuple(fields):
            index = OrderedIndex(fields)
            storage = self._storage
            index.load(
                (key, storage.ordinal_for(key), self._borrow(data)) for key, data in storage.items()
            )
            self._indexes[name] = index
        return index

    def put(self, storage_key: Any, data: Any | None) -> None:
        """Apply one write that the storage has just taken (None: a delete)."""
        document = None if data is None else self._borrow(data)
        ordinal = -1 if data is None else self._storage.ordinal_for(storage_key)
        for index in self._indexes.values():
            index.put(storage_key, ordinal, document)
        self.version = self._storage._values
