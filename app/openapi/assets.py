"""The docs page's files, served by the app itself (no CDN): `/docs` and `/docs/{asset}`."""

from __future__ import annotations

from pathlib import Path

PAGE_DIR = Path(__file__).parent / "page"
PAGE = "index.html"
ASSETS: dict[str, str] = {
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}
