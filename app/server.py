"""Uvicorn, with shutdown that ends open streams first instead of waiting on them forever,
a header timeout (HEADER_TIMEOUT), and X-Forwarded-For trusted from FORWARDED_ALLOW_IPS only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from app.direct import protocol_class
from app.limits.headers import header_timeout_protocol
from app.settings import Settings

logger = logging.getLogger(__name__)

BACKLOG = 4096  # pending connections the kernel queues (capped by net.core.somaxconn)


class Server(uvicorn.Server):
    """uvicorn.Server whose shutdown first tells the hub to end every stream.

    Uvicorn stops accepting, then waits for open connections; an SSE stream never closes by
    itself, so without this the wait lasts until the graceful-shutdown timeout.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app: Any = self.config.app
        services = getattr(getattr(app, "state", None), "services", None)
        if services is not None:
            services.hub.close()
        await super().shutdown(sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit: every stream holds a descriptor, and
    running out stops the whole process from accepting. Returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def build_server(app: Starlette, settings: Settings, *, port: int | None = None) -> Server:
    metrics = getattr(app.state, "metrics", None)
    on_timeout = None if metrics is None else metrics.header_timeouts.inc
    direct = protocol_class()  # our httptools protocol, offering streams a direct writer
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        proxy_headers=True,
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
        server_header=False,
        backlog=BACKLOG,
        http=header_timeout_protocol(
            settings.header_timeout, on_timeout, None if isinstance(direct, str) else direct
        ),
    )
    return Server(config)
