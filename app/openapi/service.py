"""The operations anyone may call: health, metrics, the document, the docs and viewer pages."""

from __future__ import annotations

from typing import Any

from app.openapi.assets import ASSETS
from app.openapi.responses import errors, json_response
from app.openapi.schemas import ref
from app.viewer import ASSETS as VIEWER_ASSETS

type Operation = dict[str, Any]


def service_paths() -> dict[str, dict[str, Operation]]:
    """Operations anyone may call: health, metrics, this document, the docs and viewer pages."""

    def page(operation_id: str, summary: str, media: str, **extra: Any) -> Operation:
        return {
            "operationId": operation_id,
            "tags": ["service"],
            "summary": summary,
            "security": [],
            "responses": {"200": {"description": summary, "content": {media: {}}}},
            **extra,
        }

    asset = {
        "name": "asset",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": sorted(ASSETS)},
    }
    docs_asset = page("docsAsset", "A file of the docs page", "*/*", parameters=[asset])
    docs_asset["responses"].update(errors(("not_found",)))
    viewer_asset = page(
        "viewerAsset",
        "A file of the viewer page",
        "*/*",
        parameters=[{**asset, "schema": {"type": "string", "enum": sorted(VIEWER_ASSETS)}}],
    )
    viewer_asset["responses"].update(errors(("not_found",)))
    return {
        "/healthz": {
            "get": {
                **page("healthz", "Liveness", "application/json"),
                "responses": {"200": json_response("The process is up.", ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                **page("readyz", "Readiness: MongoDB, Redis, migrations, feed", "application/json"),
                "responses": {
                    "200": json_response("Ready.", ref("Ready")),
                    "503": json_response("Not ready; the failed checks say why.", ref("Ready")),
                },
            }
        },
        "/metrics": {"get": page("metrics", "Prometheus metrics of this process", "text/plain")},
        "/openapi.json": {"get": page("openapi", "This document", "application/json")},
        "/docs": {"get": page("docs", "This document for people", "text/html")},
        "/docs/{asset}": {"get": docs_asset},
        "/viewer/{asset}": {"get": viewer_asset},
        "/": {
            "get": page(
                "viewer",
                "The session viewer page",
                "text/html",
                parameters=[
                    {
                        "name": "session",
                        "in": "query",
                        "description": "Show this session live.",
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
    }
