"""Uvicorn, with shutdown that ends open streams first instead of waiting on them forever."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from app.direct import protocol_class
from app.settings import Settings


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


def build_server(app: Starlette, settings: Settings, *, port: int | None = None) -> Server:
    config = uvicorn.Config(
        app,
        http=protocol_class(),
        host=settings.host,
        port=settings.port if port is None else port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        proxy_headers=True,
        server_header=False,
    )
    return Server(config)
