"""`app`: serve, migrate, stats, dev. Logging is configured here and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from app.logs import start_entry_point
from app.settings import Settings

logger = logging.getLogger("app")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app", description="agentstream API and admin")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the API (uvicorn) on HOST:PORT")
    commands.add_parser("migrate", help="create or update every index and TTL, then exit")
    dev = commands.add_parser(
        "dev", help="API + worker, with embedded MongoDB and Redis when unset"
    )
    dev.add_argument(
        "--ephemeral",
        action="store_true",
        help="the embedded MongoDB keeps its data in memory only (default: EMBEDDED_DATA_DIR,"
        " else .data/mongo)",
    )
    stats = commands.add_parser("stats", help="indexes, collection stats, counts, newest events")
    stats.add_argument("--recent", type=int, default=10, help="how many newest events to show")
    stats.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    settings = start_entry_point()
    if settings is None:
        return 2
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "stats":
        return asyncio.run(_stats(settings, args.recent, args.json))
    from embedded.runner import run_dev

    return run_dev(settings, ephemeral=args.ephemeral)


def _require_urls(settings: Settings) -> bool:
    missing = [
        name
        for name, value in (("MONGO_URL", settings.mongo_url), ("REDIS_URL", settings.redis_url))
        if value is None
    ]
    if missing:
        print(
            f"error: {' and '.join(missing)} must be set (or use `./dev serve`, which starts"
            " embedded servers)",
            file=sys.stderr,
        )
    return not missing


def _serve(settings: Settings) -> int:
    if not _require_urls(settings):
        return 2
    from app.application import create_app
    from app.server import build_server

    server = build_server(create_app(settings), settings)
    server.run()
    return 0 if server.started else 1


async def _migrate(settings: Settings) -> int:
    if settings.mongo_url is None:
        print("error: MONGO_URL must be set", file=sys.stderr)
        return 2
    from app.migrations import MigrationError, migrate
    from app.mongo import Collections, connect

    client = connect(settings.mongo_url.get())
    try:
        changes = await migrate(Collections.of(client, settings.mongo_db), settings)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    for change in changes:
        print(change)
    print(f"{len(changes)} changes" if changes else "nothing to change: every index is up to date")
    return 0


async def _stats(settings: Settings, recent: int, as_json: bool) -> int:
    if settings.mongo_url is None:
        print("error: MONGO_URL must be set", file=sys.stderr)
        return 2
    import orjson

    from app.mongo import Collections, connect
    from app.stats import collect, render

    client = connect(settings.mongo_url.get())
    try:
        report = await collect(Collections.of(client, settings.mongo_db), recent=recent)
    finally:
        await client.close()
    if as_json:
        print(orjson.dumps(report, default=str, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(report))
    return 0
