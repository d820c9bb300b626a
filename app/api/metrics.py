"""GET /metrics: this process's Prometheus metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Route

from app.services import services

if TYPE_CHECKING:
    from starlette.requests import Request


async def metrics(request: Request) -> Response:
    body = generate_latest(services(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
