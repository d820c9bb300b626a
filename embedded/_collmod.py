"""`collMod` for the embedded server: changing a TTL index's `expireAfterSeconds`.

mongoeco has no collMod, and its index records are immutable, so the index is rebuilt with the
new TTL under the same name and options: the documents stay, only the index is replaced.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from mongoeco.api import AsyncDatabase

from embedded._history import CommandError, Document

logger = logging.getLogger(__name__)

_IGNORED = frozenset({"collMod", "comment", "writeConcern", "maxTimeMS"})
_INDEX_FIELDS = frozenset({"name", "keyPattern", "expireAfterSeconds"})
_MAX_TTL = 2**31 - 1


async def coll_mod(database: AsyncDatabase, command: Document) -> Document:
    coll_name = command["collMod"]
    if not isinstance(coll_name, str) or not coll_name:
        raise CommandError(73, "InvalidNamespace", "collMod needs a collection name")
    if coll_name not in await database.list_collection_names():
        raise CommandError(
            26, "NamespaceNotFound", f"ns does not exist: {database.name}.{coll_name}"
        )
    options = {key: value for key, value in command.items() if key not in _IGNORED}
    if not options:
        return {"ok": 1.0}
    unsupported = sorted(set(options) - {"index"})
    if unsupported:
        raise CommandError(
            115,
            "CommandNotSupported",
            f"collMod option '{unsupported[0]}' is not supported by the embedded MongoDB server; "
            "it supports only index.expireAfterSeconds",
        )
    return await _change_ttl(database, coll_name, options["index"])


async def _change_ttl(database: AsyncDatabase, coll_name: str, spec: object) -> Document:
    if not isinstance(spec, dict) or ("name" in spec) == ("keyPattern" in spec):
        raise CommandError(2, "BadValue", "collMod index needs exactly one of name, keyPattern")
    if set(spec) - _INDEX_FIELDS or "expireAfterSeconds" not in spec:
        raise CommandError(
            115,
            "CommandNotSupported",
            "the embedded MongoDB server's collMod changes only an index's expireAfterSeconds",
        )
    seconds = _ttl_seconds(spec["expireAfterSeconds"])
    index = await _find_index(database, coll_name, cast(Document, spec))
    old = index.get("expireAfterSeconds")
    if old is None and (len(index["key"]) != 1 or index["name"] == "_id_"):
        raise CommandError(72, "InvalidOptions", "TTL indexes are single-field, non-_id indexes")
    if old == seconds:
        return {"ok": 1.0}
    await _rebuild(database, coll_name, index, seconds)
    reply: Document = {} if old is None else {"expireAfterSeconds_old": old}
    return {**reply, "expireAfterSeconds_new": seconds, "ok": 1.0}


def _ttl_seconds(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError(14, "TypeMismatch", "expireAfterSeconds must be a number")
    if value != int(value) or not 0 <= value <= _MAX_TTL:
        raise CommandError(2, "BadValue", f"invalid expireAfterSeconds: {value}")
    return int(value)


async def _find_index(database: AsyncDatabase, coll_name: str, spec: Document) -> Document:
    reply = await database.command({"listIndexes": coll_name})
    indexes = cast(list[Document], cast(dict[str, Any], reply["cursor"])["firstBatch"])
    for index in indexes:
        if "name" in spec and index["name"] == spec["name"]:
            return index
        if "keyPattern" in spec and _same_keys(index["key"], spec["keyPattern"]):
            return index
    wanted = spec.get("name", spec.get("keyPattern"))
    raise CommandError(
        27, "IndexNotFound", f"cannot find index {wanted} for ns {database.name}.{coll_name}"
    )


def _same_keys(left: object, right: object) -> bool:
    if not isinstance(left, dict) or not isinstance(right, dict):
        return False
    return list(left.items()) == list(right.items())


async def _rebuild(database: AsyncDatabase, coll_name: str, index: Document, seconds: int) -> None:
    old_spec = {key: value for key, value in index.items() if key not in ("v", "ns")}
    new_spec = {**old_spec, "expireAfterSeconds": seconds}
    await database.command({"dropIndexes": coll_name, "index": index["name"]})
    try:
        await database.command({"createIndexes": coll_name, "indexes": [new_spec]})
    except Exception:
        logger.exception("collMod: rebuilding index %s failed; restoring it", index["name"])
        await database.command({"createIndexes": coll_name, "indexes": [old_spec]})
        raise
