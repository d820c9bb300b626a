"""`worker`: run the ARQ worker; `worker --check`: exit 0 while this host's worker is healthy.

Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from app.logs import start_entry_point
from app.metrics import WorkerMetrics
from app.settings import Settings, redact_url

logger = logging.getLogger("worker")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker", description="agentstream ARQ worker")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 when this host's worker wrote its health key recently, else 1",
    )
    parser.add_argument(
        "--burst", action="store_true", help="run the queued jobs, then exit (for scripts)"
    )
    args = parser.parse_args(argv)
    if args.check:  # the health check needs Redis only
        _find_dev_run()
    settings = start_entry_point()
    if settings is None:
        return 2
    needed = {"REDIS_URL": settings.redis_url}
    if not args.check:
        needed["MONGO_URL"] = settings.mongo_url
    missing = [name for name, value in needed.items() if value is None]
    if missing:
        print(f"error: {' and '.join(missing)} must be set", file=sys.stderr)
        return 2
    if args.check:
        return asyncio.run(check(settings))
    if not _agents_load(settings):
        return 2
    return asyncio.run(serve(settings, burst=args.burst))


def _agents_load(settings: Settings) -> bool:
    """Import every configured agent now, not at its first run; one line per problem."""
    from worker.agents import Registry
    from worker.agents.openai import missing_key

    registry = Registry.from_settings(settings)
    problems = registry.problems()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return False
    if "openai" in registry and registry.spec("openai").source == "builtin":
        warning = missing_key(settings)
        if warning is not None:
            logger.warning("%s", warning)
    return True


def _find_dev_run() -> None:
    """Take an unset REDIS_URL from a running `./dev serve`, saying so in one line."""
    from app.devrun import adopt

    note = adopt(os.environ, ("REDIS_URL",))
    if note is not None:
        print(note, file=sys.stderr)


async def serve(settings: Settings, *, burst: bool = False) -> int:
    from worker.settings import close_worker, create_worker

    assert settings.redis_url is not None
    logger.info(
        "worker: Redis %s, concurrency %d, time limit %gs",
        redact_url(settings.redis_url.get()),
        settings.worker_concurrency,
        settings.job_time_limit,
    )
    metrics = WorkerMetrics()
    exporter = _export_metrics(settings, metrics)
    worker = create_worker(settings, burst=burst, metrics=metrics)
    try:
        with contextlib.suppress(asyncio.CancelledError):  # a signal cancels the main task
            await worker.async_run()
    finally:
        await close_worker(worker)
        if exporter is not None:
            exporter.shutdown()
    return 0


async def check(settings: Settings) -> int:
    from app.jobs import arq_pool
    from worker.settings import health_check_key

    assert settings.redis_url is not None
    key = health_check_key()
    try:
        redis = await arq_pool(settings.redis_url.get())
    except (OSError, ConnectionError) as exc:
        print(f"unhealthy: Redis is unreachable: {exc}", file=sys.stderr)
        return 1
    try:
        found = await redis.get(key)
    finally:
        await redis.aclose()
    if not found:
        print(f"unhealthy: no fresh health key {key}", file=sys.stderr)
        return 1
    print(f"healthy: {found.decode(errors='replace')}")
    return 0


def _export_metrics(settings: Settings, metrics: WorkerMetrics) -> WSGIServer | None:
    """Serve the worker's Prometheus metrics on HOST:WORKER_METRICS_PORT (0 turns it off)."""
    if settings.worker_metrics_port == 0:
        return None
    try:
        server, _ = start_http_server(
            settings.worker_metrics_port, addr=settings.host, registry=metrics.registry
        )
    except OSError as exc:
        logger.warning(
            "worker metrics not served on port %d: %s (another worker on this host? give each"
            " its own WORKER_METRICS_PORT, or WORKER_METRICS_PORT=0 to turn them off)",
            settings.worker_metrics_port,
            exc,
        )
        return None
    logger.info(
        "worker metrics on http://%s:%d/metrics", settings.host, settings.worker_metrics_port
    )
    return server
