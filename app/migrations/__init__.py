"""The migrations module: owns every index and TTL. Idempotent; never drops an index or data."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import TYPE_CHECKING, Any

from pymongo.errors import OperationFailure

from app.migrations.spec import SCHEMA_VERSION, IndexSpec, index_specs

if TYPE_CHECKING:
    from app.mongo import Collections, Document
    from app.settings import Settings

__all__ = ["Change", "MigrationError", "applied_version", "migrate"]

logger = logging.getLogger(__name__)


class MigrationError(RuntimeError):
    """The database holds something the migration must not change by itself."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    action: str  # "created" or "changed"
    collection: str
    index: str
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.collection}.{self.index}: {self.detail}"


async def migrate(collections: Collections, settings: Settings) -> list[Change]:
    """Bring every index to the spec; return what changed (empty when nothing did)."""
    changes: list[Change] = []
    specs = index_specs(settings)
    existing: dict[str, dict[str, Document]] = {}
    for spec in specs:
        if spec.collection not in existing:
            existing[spec.collection] = await _indexes(collections, spec.collection)
        change = await _apply(collections, spec, existing[spec.collection].get(spec.name))
        if change is not None:
            logger.debug("migration: %s", change)
            changes.append(change)
    await collections.meta.update_one(
        {"_id": "schema"},
        {
            "$set": {"version": SCHEMA_VERSION},
            "$setOnInsert": {"applied_at": datetime.datetime.now(datetime.UTC)},
        },
        upsert=True,
    )
    return changes


async def applied_version(collections: Collections) -> int | None:
    """The schema version recorded by the last successful migration, or None."""
    doc = await collections.meta.find_one({"_id": "schema"})
    return None if doc is None else int(doc["version"])


async def _indexes(collections: Collections, name: str) -> dict[str, Document]:
    cursor = await collections.db[name].list_indexes()
    return {doc["name"]: dict(doc) async for doc in cursor}


async def _apply(
    collections: Collections, spec: IndexSpec, current: Document | None
) -> Change | None:
    collection = collections.db[spec.collection]
    if current is None:
        options: dict[str, Any] = {"name": spec.name, "unique": spec.unique}
        if spec.ttl_seconds is not None:
            options["expireAfterSeconds"] = spec.ttl_seconds
        try:
            await collection.create_index(list(spec.keys), **options)
        except OperationFailure as exc:
            raise MigrationError(
                f"cannot create {spec.collection}.{spec.name} {dict(spec.keys)}: {exc.details}"
                " (an index with the same keys but another name or options exists; drop or"
                " rename it yourself, the migration never drops indexes)"
            ) from exc
        ttl = "" if spec.ttl_seconds is None else f", TTL {spec.ttl_seconds}s"
        unique = ", unique" if spec.unique else ""
        return Change("created", spec.collection, spec.name, f"{_keys(spec.keys)}{unique}{ttl}")
    _check_compatible(spec, current)
    current_ttl = current.get("expireAfterSeconds")
    if spec.ttl_seconds is not None and current_ttl != spec.ttl_seconds:
        await collections.db.command(
            "collMod",
            spec.collection,
            index={"name": spec.name, "expireAfterSeconds": spec.ttl_seconds},
        )
        return Change(
            "changed",
            spec.collection,
            spec.name,
            f"TTL {current_ttl}s -> {spec.ttl_seconds}s (collMod, data kept)",
        )
    return None


def _check_compatible(spec: IndexSpec, current: Document) -> None:
    keys = tuple((str(k), int(v)) for k, v in dict(current["key"]).items())
    problems = []
    if keys != spec.keys:
        problems.append(f"keys {_keys(keys)} instead of {_keys(spec.keys)}")
    if bool(current.get("unique", False)) != spec.unique:
        problems.append(f"unique={current.get('unique', False)} instead of {spec.unique}")
    if (spec.ttl_seconds is None) != (current.get("expireAfterSeconds") is None):
        problems.append("a TTL where none belongs" if spec.ttl_seconds is None else "no TTL")
    if problems:
        raise MigrationError(
            f"index {spec.collection}.{spec.name} exists with {', '.join(problems)}; "
            "the migration never drops indexes: drop it yourself, then migrate again"
        )


def _keys(keys: tuple[tuple[str, int], ...]) -> str:
    return "(" + ", ".join(f"{k} {'asc' if v == 1 else 'desc'}" for k, v in keys) + ")"
