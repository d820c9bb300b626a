"""`app`: serve, migrate, stats, dev, token; tail and run (the terminal client, app/terminal/).
Logging is configured here and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Sequence

from app import terminal
from app.logs import start_entry_point
from app.settings import Settings, SettingsError, parse_workers

logger = logging.getLogger("app")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app", description="agentstream API and admin")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (uvicorn) on HOST:PORT")
    serve.add_argument(
        "--workers",
        metavar="N",
        help="API processes on the one port: a number, or `auto` for the usable cores"
        " (default: API_WORKERS, else 1)",
    )
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # a supervisor's child
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
    terminal.add_commands(commands)
    token = commands.add_parser(
        "token", help="print a token signed with AUTH_JWT_SECRET (development and scripts)"
    )
    token.add_argument("--sub", required=True, help="the subject (who the token is for)")
    token.add_argument("--scope", default="events:read", help='space-separated, e.g. "events:read"')
    token.add_argument(
        "--sessions", default="", help='comma-separated ids or prefixes ("demo*", "*")'
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
    args = parser.parse_args(argv)
    if args.command in terminal.COMMANDS:  # HTTP clients: no server settings needed
        return terminal.main(args)
    if args.command in ("migrate", "stats"):
        _find_dev_run(("MONGO_URL",))
    settings = start_entry_point()
    if settings is None:
        return 2
    if args.command == "token":
        return _token(settings, args.sub, args.scope, args.sessions, args.ttl)
    if args.command == "serve":
        if args.workers is not None:
            try:
                workers = parse_workers("--workers", args.workers)
            except SettingsError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            settings = dataclasses.replace(settings, api_workers=workers)
        return _serve(settings, args.listen_fd)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "stats":
        return asyncio.run(_stats(settings, args.recent, args.json))
    from embedded.runner import run_dev

    return run_dev(settings, ephemeral=args.ephemeral)


def _find_dev_run(names: tuple[str, ...]) -> None:
    """Take unset URLs from a running `./dev serve`, saying so in one line."""
    from app.devrun import adopt

    note = adopt(os.environ, names)
    if note is not None:
        print(note, file=sys.stderr)


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


def _token(settings: Settings, sub: str, scope: str, sessions: str, ttl: float) -> int:
    from app.auth.verifier import CannotMint, mint

    patterns = [part.strip() for part in sessions.split(",") if part.strip()]
    if not sub or ttl <= 0:
        print("error: --sub must not be empty and --ttl must be > 0", file=sys.stderr)
        return 2
    try:
        print(mint(settings, subject=sub, scopes=scope, sessions=patterns, ttl=ttl))
    except CannotMint as exc:
        print(f"error: cannot mint a token: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(settings: Settings, listen_fd: int | None) -> int:
    try:
        settings.check_auth()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _require_urls(settings):
        return 2
    if listen_fd is None and settings.api_workers > 1:
        from app.supervisor import Supervisor, bind

        command = [sys.executable, "-m", "app", "serve", "--workers", "1"]
        try:
            sock = bind(settings.host, settings.port)
        except OSError as exc:
            print(
                f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr
            )
            return 1
        supervisor = Supervisor(
            sock,
            settings.api_workers,
            command,
            grace=settings.shutdown_grace,
        )
        return supervisor.run()
    from app.application import create_app
    from app.server import build_server, raise_open_file_limit

    soft, hard = raise_open_file_limit()
    logger.info("open file limit: %d (hard %d)", soft, hard)
    sockets = None
    if listen_fd is not None:  # a child of the supervisor: serve on the socket it bound
        from app.supervisor import die_with_parent

        die_with_parent()
        sockets = [socket.socket(fileno=listen_fd)]
    server = build_server(create_app(settings), settings)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises Ctrl-C again once stopped
        server.run(sockets)
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
