"""The app factory. Its lifespan owns every client and background task of an API process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app import errors, viewer
from app.api import agents, docs, events, health, messages, runs, sessions
from app.api import metrics as metrics_api
from app.auth.middleware import AuthMiddleware
from app.auth.routes import check_routes
from app.auth.verifier import Verifier
from app.errors import PayloadTooLarge
from app.feeds.base import Feed, Publisher
from app.feeds.select import choose_feed
from app.hub import Hub
from app.jobs import QUEUE_NAME, arq_pool
from app.limits import BodyLimitMiddleware, DeadlineMiddleware, StreamSlots, WriteRateLimiter
from app.metrics import Metrics
from app.migrations import migrate
from app.mongo import Collections, connect, is_replica_set
from app.monitor import Monitor
from app.runs import Runs
from app.services import Services
from app.settings import AuthMode, Settings, redact_url
from app.store.events import EventWriter
from app.store.history import History
from app.stream import SendWatchdog

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    mongo_listeners: Sequence[Any] = (),
    feed_factory: Callable[[Publisher], Feed] | None = None,
) -> Starlette:
    """The API. `mongo_listeners` are PyMongo event listeners (command monitoring, in tests).

    `feed_factory(publisher)`, when given, replaces the feed SSE_FEED would choose: the
    benchmarks use an in-process feed to measure the hub and streams without database writes.

    SettingsError when AUTH_MODE=jwt has no key; RuntimeError when a route declares no access.
    """
    if settings.mongo_url is None or settings.redis_url is None:
        raise ValueError("MONGO_URL and REDIS_URL must be set (./dev serve starts embedded ones)")
    verifier = Verifier.from_settings(settings)

    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app.state.services = await _open(
                settings, stack, mongo_listeners, feed_factory, metrics
            )
            yield

    routes = [
        *health.routes,
        *metrics_api.routes,
        *sessions.routes,
        *events.routes,
        *runs.routes,
        *messages.routes,
        *agents.routes,
        *viewer.routes,
        *docs.routes(settings),
    ]
    check_routes(routes)

    def body_refused() -> None:
        metrics.limit_rejections.labels(PayloadTooLarge.code).inc()

    app = Starlette(
        routes=routes,
        # Outermost first. Access control sets scope["agentstream.subject"], which the
        # stream caps and the rate limit (applied in the handlers) read.
        middleware=[
            *_cors(settings),
            Middleware(errors.InternalErrors),
            Middleware(
                BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_refused=body_refused
            ),
            Middleware(AuthMiddleware, verifier=verifier),
            Middleware(DeadlineMiddleware, timeout=settings.request_timeout),
        ],
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app


def _cors(settings: Settings) -> list[Middleware]:
    """Pages on CORS_ORIGINS may call the API with a bearer token or the cookie. Credentials
    go to those origins only, never to `*` (Settings refuses `*`)."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    ]


async def _open(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    listeners: Sequence[Any],
    feed_factory: Callable[[Publisher], Feed] | None,
    metrics: Metrics,
) -> Services:
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    logger.info("settings: %s", settings.describe())
    if settings.auth_mode is AuthMode.OFF:
        logger.warning(
            "AUTH_MODE=off: no token is checked; every client can read and write every session"
        )
    logger.info("MongoDB %s, database %s", redact_url(settings.mongo_url.get()), settings.mongo_db)
    mongo = connect(settings.mongo_url.get(), event_listeners=list(listeners))
    stack.push_async_callback(mongo.close)
    collections = Collections.of(mongo, settings.mongo_db)
    if settings.migrate_on_startup:
        changes = await migrate(collections, settings)
        for change in changes:
            logger.info("migration: %s", change)
        logger.info("migrations: %s", f"{len(changes)} changes" if changes else "up to date")
    logger.info("Redis %s", redact_url(settings.redis_url.get()))
    # Half of REQUEST_TIMEOUT, so a run whose enqueue timed out can still be recorded failed.
    redis = await arq_pool(settings.redis_url.get(), timeout=settings.request_timeout / 2)
    stack.push_async_callback(redis.aclose)

    transactions = await is_replica_set(mongo)
    logger.info("batches: %s", "one transaction each" if transactions else "no transactions")
    writer = EventWriter(
        collections,
        max_event_bytes=settings.event_max_bytes,
        on_insert=metrics.observe_insert,
        transactions=transactions,
    )
    history = History(collections, on_query=metrics.observe_query)

    async def fill(session_id: str, seqs: list[int]) -> list[dict[str, object]]:
        found = await history.positions(session_id, seqs)
        missing = sorted(set(seqs) - {doc["seq"] for doc in found})
        metrics.gap_fills.labels("found").inc(len(found))
        if missing:
            await writer.void(session_id, missing)
            metrics.gap_fills.labels("voided").inc(len(missing))
            found = await history.positions(session_id, seqs)
        return found

    hub = Hub(
        buffer_limit=settings.sse_buffer_events, filler=fill, on_written=metrics.deliveries.inc
    )
    metrics.watch_hub(hub.subscriber_counts)
    publisher = Publisher(hub, history, metrics, batch=settings.sse_batch_size)
    feed = (
        feed_factory(publisher)
        if feed_factory is not None
        else await choose_feed(settings, mongo, collections, publisher)
    )
    metrics.feed_mode.labels(feed.mode).set(1)

    monitor = Monitor(collections, redis, metrics, queue_name=QUEUE_NAME)
    _background(stack, feed.run(), f"feed-{feed.mode}")
    _background(stack, monitor.run(), "monitor")
    watchdog = SendWatchdog(settings.sse_send_timeout)
    _background(stack, watchdog.run(), "send-watchdog")
    stack.callback(hub.close)
    return Services(
        settings=settings,
        mongo=mongo,
        collections=collections,
        redis=redis,
        metrics=metrics,
        writer=writer,
        history=history,
        hub=hub,
        feed=feed,
        monitor=monitor,
        watchdog=watchdog,
        runs=Runs(settings=settings, collections=collections, writer=writer, redis=redis),
        stream_slots=StreamSlots(
            settings.sse_max_connections,
            settings.sse_max_connections_per_subject,
            metrics=metrics,
        ),
        write_rate=WriteRateLimiter(settings.write_rate_limit, metrics=metrics),
    )


def _background(
    stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> None:
    """Run `work` until the lifespan ends; a crash is logged at once, not at shutdown."""
    task = asyncio.create_task(work, name=name)

    def crashed(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("background task %s crashed", name, exc_info=done.exception())

    task.add_done_callback(crashed)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)
