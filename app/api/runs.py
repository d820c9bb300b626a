"""Runs: start one (202), read its record, cancel it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from app.api.events import read_json
from app.auth.middleware import SUBJECT, check_found
from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.errors import BadRequest, NotFound
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
        sub=request.scope.get(SUBJECT),
    )
    return JSONResponse(
        {"run_id": record["run_id"], "trace_id": record.get("trace_id")},
        status_code=202,
        headers={"Location": f"/v1/runs/{record['run_id']}"},
    )


async def _found(request: Request) -> str:
    """The run named in the path, once the token is known to cover its session."""
    run_id = identifier(request.path_params["run_id"], "run_id")
    missing = NotFound(f"no run {run_id}")
    record = await services(request).runs.find(run_id)
    if record is None:
        raise missing
    check_found(request, record["session_id"], missing)
    return run_id


async def get_run(request: Request) -> Response:
    record = await services(request).runs.get(await _found(request))
    return JSONResponse(run_view(record))


async def cancel_run(request: Request) -> Response:
    ended, record = await services(request).runs.cancel(await _found(request))
    return JSONResponse(run_view(record), status_code=200 if ended else 202)


_LOOKUP_READ = Access(Scope.EVENTS_READ, SessionRule.LOOKUP)
_LOOKUP_WRITE = Access(Scope.RUNS_WRITE, SessionRule.LOOKUP)

routes = [
    ProtectedRoute(
        "/v1/sessions/{session_id}/runs",
        start_run,
        methods=["POST"],
        access=Access(Scope.RUNS_WRITE),
    ),
    ProtectedRoute("/v1/runs/{run_id}", get_run, methods=["GET"], access=_LOOKUP_READ),
    ProtectedRoute("/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"], access=_LOOKUP_WRITE),
]
