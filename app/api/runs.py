"""Runs: start one (202), read its record, cancel it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.events import read_json
from app.errors import BadRequest
from app.services import services
from app.store.runs import run_view
from app.validation import allowed_fields, identifier

if TYPE_CHECKING:
    from starlette.requests import Request

_FIELDS = frozenset({"agent", "input", "trace_id", "run_id"})


async def start_run(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    body = await read_json(request, svc.settings.event_max_bytes + 4096)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    allowed_fields(body, _FIELDS, "the body")
    for field in ("agent", "input"):
        if field not in body:
            raise BadRequest(f"{field} is required")
    record = await svc.runs.start(
        session_id,
        body["agent"],
        body["input"],
        trace_id=body.get("trace_id"),
        run_id=body.get("run_id"),
    )
    return JSONResponse(
        {"run_id": record["run_id"], "trace_id": record.get("trace_id")},
        status_code=202,
        headers={"Location": f"/v1/runs/{record['run_id']}"},
    )


async def get_run(request: Request) -> Response:
    record = await services(request).runs.get(request.path_params["run_id"])
    return JSONResponse(run_view(record))


async def cancel_run(request: Request) -> Response:
    ended, record = await services(request).runs.cancel(request.path_params["run_id"])
    return JSONResponse(run_view(record), status_code=200 if ended else 202)


routes = [
    Route("/v1/sessions/{session_id}/runs", start_run, methods=["POST"]),
    Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
    Route("/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
]
