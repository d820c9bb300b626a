"""Agents: the names and descriptions of the agents this API can start (for pickers and clients)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.services import services
from worker.agents import AgentLoadError, Registry

if TYPE_CHECKING:
    from starlette.requests import Request

logger = logging.getLogger(__name__)


def describe(registry: Registry) -> list[dict[str, str]]:
    """Every registered agent by name. The description is the agent's own, else the first line
    of its function's docstring; an agent whose code the API cannot import (it may live only in
    the workers' image) is listed with an empty one, as the API still starts its runs."""
    found: list[dict[str, str]] = []
    for name in registry.names():
        try:
            agent = registry.load(name)
        except AgentLoadError as exc:
            logger.warning("agent %s listed without a description: %s", name, exc)
            found.append({"name": name, "description": ""})
            continue
        text = agent.description or (agent.run.__doc__ or "").strip().partition("\n")[0]
        found.append({"name": name, "description": text})
    return found


async def list_agents(request: Request) -> Response:
    registry = Registry.from_settings(services(request).settings)
    return JSONResponse({"agents": describe(registry)})


routes = [
    ProtectedRoute(
        "/v1/agents",
        list_agents,
        methods=["GET"],
        access=Access(Scope.EVENTS_READ, SessionRule.NONE),
    ),
]
