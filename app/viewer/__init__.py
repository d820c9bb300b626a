"""The session viewer: one static page at `/` and its assets under `/viewer/`.

Plain HTML, CSS and JavaScript with no build step, served from this folder. Everything the
page loads comes from this origin, which its Content-Security-Policy enforces. The page needs
no token to load: it asks for one and sends it with the API calls it makes, so both routes are
public in the access-control table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import FileResponse, Response
from starlette.routing import Route

from app.errors import NotFound

if TYPE_CHECKING:
    from starlette.requests import Request

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/viewer"
# The page's files by name, with their media types: only these are served.
_MEDIA = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
ASSETS = {
    path.name: _MEDIA[path.suffix] for path in sorted(STATIC.iterdir()) if path.suffix in _MEDIA
}

# Same origin only; no inline script or style; the page cannot be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The stream URL may carry ?access_token=: never send the page's URL to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in ASSETS:
        raise NotFound(f"no file {name[:64]!r} in the viewer")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)


routes = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route(ASSETS_PATH + "/{asset}", asset, methods=["GET", "HEAD"]),
]
