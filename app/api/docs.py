"""GET /openapi.json, and the page that shows it to people: /docs with its own files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response
from starlette.routing import Route

from app.errors import NotFound
from app.openapi import build_document
from app.openapi.assets import ASSETS, PAGE, PAGE_DIR

if TYPE_CHECKING:
    from starlette.requests import Request

    from app.settings import Settings

# The page and its files come from this origin only; nothing inline, nothing remote.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


def routes(settings: Settings) -> list[Route]:
    """The document is built once, from `settings` (auth mode, agents)."""
    document = orjson.dumps(build_document(settings))
    files = {name: (PAGE_DIR / name).read_bytes() for name in (PAGE, *ASSETS)}

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def page(request: Request) -> Response:
        return Response(files[PAGE], media_type="text/html; charset=utf-8", headers=_headers())

    async def asset(request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in ASSETS:
            raise NotFound(f"no file {name[:64]!r} in the docs page")
        return Response(files[name], media_type=ASSETS[name], headers=_headers())

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", page, methods=["GET"]),
        Route("/docs/{asset}", asset, methods=["GET"]),
    ]


def _headers() -> dict[str, str]:
    return {
        "content-security-policy": _CSP,
        "x-content-type-options": "nosniff",
        "cache-control": "no-cache",
    }
