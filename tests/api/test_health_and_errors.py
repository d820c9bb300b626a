import httpx

from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from support.servers import RunningAPI


async def test_healthz_and_readyz(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "mongo": True,
        "redis": True,
        "migrations": True,
        "feed": True,
    }
    assert body["checks"]["feed"]["mode"] in ("change_stream", "poll")


async def test_unknown_paths_and_methods_get_the_json_error_shape(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        missing = await client.get("/nowhere")
        wrong = await client.delete("/healthz")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_a_500_never_leaks_a_stack_trace(api: RunningAPI) -> None:
    async def broken(request: object) -> None:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    app = api.server.config.app
    everyone = Access(Scope.EVENTS_READ, SessionRule.NONE)  # AUTH_MODE=off here
    app.router.routes.append(ProtectedRoute("/broken", broken, methods=["GET"], access=everyone))
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/broken")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal server error"}}
    assert "secret" not in response.text
