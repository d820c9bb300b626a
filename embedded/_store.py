"""The embedded server's data directory: a snapshot of the engine plus a journal of changes.

- `snapshot.pickle`: the memory engine's stored state (documents, indexes, their index data)
  and the change-stream position, pickled as is, so loading takes no rebuild. It is written
  on a clean stop (and after a start that replayed a journal), to a temporary file that is
  fsynced and then renamed over the old one: a crash while it is written keeps the old one.
- `journal.bson`: every change committed since that snapshot, one BSON document each, in
  commit order: `put` (the document after an insert, update or replace), `delete`, `drop`
  (a collection), `indexes` (a collection's index list after createIndexes, dropIndexes,
  collMod or create). The server writes a command's records before it answers (so a killed
  server loses nothing it acknowledged) and fsyncs at most `FSYNC_SECONDS` later (so a power
  loss or OS crash can lose that much). A torn last record is ignored.

A start loads the snapshot, replays the journal through the engine's own API, and, when there
was a journal, writes a new snapshot and empties the journal. TTL deletions are not journaled:
an expired document is expired again after a restart, and is purged on its next read. A
pickle is tied to the mongoeco version that wrote it; another version refuses to load it
with a message naming the directory to wipe.
"""

from __future__ import annotations

import copyreg
import io
import logging
import os
import pickle
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any, cast

import bson
from bson.errors import BSONError
from mongoeco.core.codec import DocumentCodec
from mongoeco.engines import _memory_collection, memory
from mongoeco.engines._memory_collection import MemoryCollection, MemoryIndexMap

from embedded._history import ChangeRecord, Document

logger = logging.getLogger(__name__)

FSYNC_SECONDS = 1.0
_FORMAT = 1
_ENGINE_STATE = ("_storage", "_indexes", "_index_data", "_collections", "_collection_options")
_PUT = frozenset({"insert", "update", "replace"})
_DROP = frozenset({"invalidate", "drop"})


class DataDirError(RuntimeError):
    """The data directory cannot be used (another mongoeco version wrote it, or it is damaged)."""


def _restore(cls: type[Any], state: dict[str, Any]) -> Any:
    instance = cast(Any, cls).__new__(cls)
    instance.__dict__.update(state)
    return instance


def _reduce(instance: Any) -> tuple[Any, ...]:
    # dict subclasses whose contents live in attributes: pickle the attributes only.
    return (_restore, (type(instance), instance.__dict__))


# mongoeco's sentinels, compared by identity: pickled by name, loaded as the same objects.
_SENTINELS: dict[str, object] = {
    "collection.absent": _memory_collection._ABSENT,
    "collection.deleted": _memory_collection._DELETED,
    "memory.missing": memory._MISSING,
}
_SENTINEL_NAMES = {id(value): name for name, value in _SENTINELS.items()}


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        return _SENTINEL_NAMES.get(id(obj)) if type(obj) is object else None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> object:
        if pid not in _SENTINELS:
            raise pickle.UnpicklingError(f"unknown sentinel {pid!r}")
        return _SENTINELS[pid]


def _dumps(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    table = copyreg.dispatch_table.copy()
    table[MemoryCollection] = _reduce
    table[MemoryIndexMap] = _reduce
    pickler.dispatch_table = table
    pickler.dump(state)
    return buffer.getvalue()


def _version() -> str:
    return metadata.version("mongoeco")


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshot = path / "snapshot.pickle"
        self._journal_path = path / "journal.bson"
        self._journal: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._unsynced = False

    # -- the snapshot -----------------------------------------------------------------------

    def load_snapshot(self, engine: Any) -> dict[str, Any] | None:
        """Put the snapshot's state into `engine`; return its stream state (None: no snapshot)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self._snapshot.exists():
            return None
        try:
            with self._snapshot.open("rb") as file:
                snapshot = _Unpickler(file).load()  # the developer's own data directory
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise DataDirError(f"cannot read {self._snapshot}: {exc}") from exc
        if snapshot.get("format") != _FORMAT or snapshot.get("mongoeco") != _version():
            raise DataDirError(
                f"{self.path} was written by mongoeco {snapshot.get('mongoeco')} (this is "
                f"{_version()}); delete the directory to start empty"
            )
        for name in _ENGINE_STATE:
            setattr(engine, name, snapshot["engine"][name])
        streams: dict[str, Any] = snapshot["streams"]
        return streams

    def save_snapshot(self, engine: Any, streams: dict[str, Any]) -> None:
        """Write the whole state, then empty the journal (a crash between keeps both valid:
        replaying the journal over the new snapshot rewrites the same documents)."""
        state = {
            "format": _FORMAT,
            "mongoeco": _version(),
            "engine": {name: getattr(engine, name) for name in _ENGINE_STATE},
            "streams": streams,
        }
        data = _dumps(state)
        temporary = self._snapshot.with_suffix(".tmp")
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self._snapshot)
        self._fsync_directory()
        if self._journal is not None:
            self._journal.truncate(0)
            self._journal.seek(0)
        else:
            self._journal_path.unlink(missing_ok=True)
        logger.info("saved a snapshot of %d bytes to %s", len(data), self._snapshot)

    # -- the journal --------------------------------------------------------------------------

    def journaled(self) -> Iterator[Document]:
        """The journal's records, oldest first, up to a torn or damaged record."""
        if not self._journal_path.exists():
            return
        with self._journal_path.open("rb") as file:
            try:
                yield from bson.decode_file_iter(file)
            except BSONError:
                logger.warning("%s ends with a damaged record; replayed up to it", file.name)

    def open_journal(self) -> None:
        self._journal = self._journal_path.open("ab")

    def record_change(self, record: ChangeRecord) -> None:
        snapshot = record.snapshot
        kind = snapshot.operation_type
        ns = [snapshot.db_name, snapshot.coll_name]
        if kind in _PUT and snapshot.full_document is not None:
            entry: Document = {"op": "put", "ns": ns, "doc": snapshot.full_document}
        elif kind == "delete":
            entry = {"op": "delete", "ns": ns, "id": snapshot.document_key.get("_id")}
        elif kind in _DROP:
            entry = {"op": "drop", "ns": ns}
        elif kind == "dropDatabase":
            entry = {"op": "drop", "ns": [snapshot.db_name, None]}
        else:
            logger.warning("journal: change %r of %s.%s is not journaled", kind, *ns)
            return
        self._pending.append(bson.encode(DocumentCodec.to_pymongo(entry)))

    def record_indexes(self, db_name: str, coll_name: str, indexes: list[Document]) -> None:
        entry = {"op": "indexes", "ns": [db_name, coll_name], "indexes": indexes}
        self._pending.append(bson.encode(DocumentCodec.to_pymongo(entry)))

    def flush(self) -> None:
        """Hand the pending records to the OS (a killed process loses none of them)."""
        if not self._pending or self._journal is None:
            return
        self._journal.write(b"".join(self._pending))
        self._journal.flush()
        self._pending.clear()
        self._unsynced = True

    def sync(self) -> None:
        """fsync the journal if anything was written since the last sync."""
        if self._unsynced and self._journal is not None:
            self._unsynced = False
            os.fsync(self._journal.fileno())

    def close(self) -> None:
        if self._journal is not None:
            self.flush()
            self.sync()
            self._journal.close()
            self._journal = None

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
