"""How a route declares what it requires, and which routes need no token at all.

Every route of the app is either a `ProtectedRoute` (it carries its `Access`) or public: a
`Route` whose path is in PUBLIC_PATHS, or a `Mount` of static files. `check_routes` refuses any
other route at start-up, so a new route cannot forget to declare its access.

    ProtectedRoute("/v1/agents", list_agents, methods=["GET"],
                   access=Access(Scope.EVENTS_READ, SessionRule.NONE))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.auth.policy import Access, SessionRule

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/viewer/{asset}",
        "/openapi.json",
        "/docs",
        "/docs/{asset}",
    }
)


class ProtectedRoute(Route):
    """A Route with the access it requires, applied by app.auth.middleware."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        access: Access,
        name: str | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)
        if access.session is SessionRule.PATH and f"{{{access.path_param}}}" not in path:
            raise ValueError(f"{path} has no path parameter {access.path_param}")
        self.access = access


def is_public(route: BaseRoute) -> bool:
    if isinstance(route, ProtectedRoute):
        return False
    if isinstance(route, Route):
        return route.path in PUBLIC_PATHS
    return isinstance(route, Mount) and isinstance(route.app, StaticFiles)


def unprotected(routes: Sequence[BaseRoute]) -> list[str]:
    """Routes that are neither protected nor public (each named by its path)."""
    return [
        str(getattr(route, "path", route))
        for route in routes
        if not isinstance(route, ProtectedRoute) and not is_public(route)
    ]


def check_routes(routes: Sequence[BaseRoute]) -> None:
    missing = unprotected(routes)
    if missing:
        raise RuntimeError(
            f"routes neither protected nor public: {', '.join(missing)} (declare each with"
            " app.auth.routes.ProtectedRoute, or add a public path to PUBLIC_PATHS)"
        )
