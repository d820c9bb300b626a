"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.migrations import applied_version
from app.migrations.spec import SCHEMA_VERSION
from app.services import Services, services

CHECK_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks = {
        "mongo": _check(svc.collections.db.command("ping")),
        "redis": _check(svc.redis.ping()),
        "migrations": _migrations(svc),
    }
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    results["feed"] = {"ok": svc.feed.running, "mode": svc.feed.mode}
    ready = all(result["ok"] for result in results.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "auth": svc.settings.auth_mode.value,
        "pid": os.getpid(),
        "checks": results,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _check(probe: Awaitable[object]) -> dict[str, object]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g}s"}
    except Exception as exc:  # a readiness probe reports every failure; it never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


async def _migrations(svc: Services) -> dict[str, object]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            version = await applied_version(svc.collections)
    except Exception as exc:  # reported in the body, like the other checks
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    if version != SCHEMA_VERSION:
        return {"ok": False, "error": f"schema version {version}, expected {SCHEMA_VERSION}"}
    return {"ok": True, "version": version}


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
