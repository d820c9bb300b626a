"""`app stats`: the seed's mongosh monitoring commands as one report."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from pymongo.errors import OperationFailure

from app.store.codec import event_view
from app.store.runs import RunStatus, RunStore

if TYPE_CHECKING:
    from app.mongo import Collections

COLLECTIONS = ("events", "messages", "runs", "sessions")
_LABELS = {
    "count": "documents",
    "avgObjSize": "avg_document",
    "storageSize": "storage",
    "totalIndexSize": "index_size",
    "nindexes": "indexes",
}
_BYTES = {"size", "avgObjSize", "storageSize", "totalIndexSize"}


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


async def collect(
    collections: Collections, *, recent: int = 10, progress: TextIO = sys.stderr
) -> dict[str, Any]:
    """Indexes, collection stats, counts and the newest events (each step noted on `progress`)."""
    report: dict[str, Any] = {"indexes": {}, "collections": {}}
    for name in COLLECTIONS:
        print(f"reading {name}: indexes, collStats", file=progress, flush=True)
        cursor = await collections.db[name].list_indexes()
        report["indexes"][name] = [
            {
                "name": index["name"],
                "keys": dict(index["key"]),
                "unique": bool(index.get("unique", False)),
                "ttl_seconds": index.get("expireAfterSeconds"),
            }
            async for index in cursor
        ]
        stats = await collections.db.command("collStats", name)
        report["collections"][name] = {
            key: stats.get(key)
            for key in ("count", "size", "avgObjSize", "storageSize", "totalIndexSize", "nindexes")
        }
    print("counting events", file=progress, flush=True)
    report["event_count"] = await collections.events.count_documents({"void": {"$ne": True}})
    print(f"reading the {recent} newest events", file=progress, flush=True)
    newest = (
        collections.events.find({"void": {"$ne": True}}, {"_id": 0})
        .sort("timestamp", -1)
        .limit(recent)
        .hint("timestamp_ttl")
    )
    report["recent_events"] = [event_view(doc) async for doc in newest]
    print("counting runs by status", file=progress, flush=True)
    report["runs_by_status"] = await RunStore(collections).count_by_status()
    try:
        status = await collections.db.client.admin.command("serverStatus")
        report["connections"] = status.get("connections")
    except OperationFailure:
        report["connections"] = None
    return report


def render(report: dict[str, Any]) -> str:
    lines = ["Indexes"]
    for name, indexes in report["indexes"].items():
        for index in indexes:
            keys = ", ".join(f"{k} {v}" for k, v in index["keys"].items())
            extra = " unique" if index["unique"] else ""
            if index["ttl_seconds"] is not None:
                extra += f" ttl={index['ttl_seconds']}s"
            lines.append(f"  {name}.{index['name']}: ({keys}){extra}")
    lines += ["", "Collections (collStats)"]
    for name, stats in report["collections"].items():
        shown = "  ".join(
            f"{_LABELS.get(k, k)}={_number(v)}{' B' if k in _BYTES else ''}"
            for k, v in stats.items()
            if v is not None
        )
        lines.append(f"  {name}: {shown}")
    events = report["event_count"]
    voids = max(0, int(report["collections"].get("events", {}).get("count") or 0) - events)
    line = f"Events: {events}"
    if voids:
        line += (
            f" (the events collection also holds {voids} void document{'s' * (voids != 1)}:"
            " positions closed after a write failed or was abandoned, never sent to clients)"
        )
    lines += ["", line, "", "Most recent events"]
    for event in report["recent_events"]:
        lines.append(
            f"  {event['timestamp']}  {event['session_id']}  {event['id']}  {event['type']}"
        )
    runs = report.get("runs_by_status") or {}
    lines += ["", "Runs by status"]
    for status in [*RunStatus, *sorted(set(runs) - set(RunStatus))]:
        lines.append(f"  {status}: {runs.get(status, 0)}")
    if report["connections"]:
        lines += ["", f"Server connections: {report['connections']}"]
    return "\n".join(lines)
