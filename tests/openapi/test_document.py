"""/openapi.json: a valid OpenAPI 3.1 document, for every route the app has and no other."""

from __future__ import annotations

import httpx
import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from starlette.routing import Route

from app.application import create_app
from app.errors import BadRequest
from app.openapi import auth_required, build_document, document
from app.openapi.responses import CODES
from app.settings import Secret, Settings
from app.store import tokens
from app.validation import bounded_int, identifier
from support.contract import FUZZ_SECRET, PENDING_MERGE
from support.servers import RunningAPI


def operations(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def routed(settings: Settings) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in create_app(settings).routes:
        # A Mount or a websocket route would need documenting too: it shows up here as "*".
        methods = route.methods if isinstance(route, Route) and route.methods else {"*"}
        found |= {(method, route.path) for method in methods if method != "HEAD"}  # type: ignore[attr-defined]
    return found


@pytest.fixture
def offline_settings() -> Settings:
    """Settings for building the app without starting it (no connection is made)."""
    return Settings(
        mongo_url=Secret("mongodb://127.0.0.1:1"),
        redis_url=Secret("redis://x:1"),
        auth_jwt_secret=Secret(FUZZ_SECRET),
    )


@pytest.mark.parametrize("auth_required", [True, False], ids=["jwt", "off"])
def test_the_document_is_valid_openapi_3_1(auth_required: bool) -> None:
    doc = document(auth_required=auth_required, agents=["echo"])
    validate(doc)
    assert doc["openapi"].startswith("3.1.")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["cookie"]["in"], schemes["cookie"]["name"]) == ("cookie", "agentstream_token")
    assert (schemes["query"]["in"], schemes["query"]["name"]) == ("query", "access_token")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            names = {name for requirement in operation["security"] for name in requirement}
            if path.startswith("/v1/"):
                # The cookie and the query token are for GET (EventSource) only.
                assert names == ({"bearer", "cookie", "query"} if method == "get" else {"bearer"})
                assert ({} in operation["security"]) is not auth_required
                assert {"401", "403"} <= set(operation["responses"])
            else:
                assert operation["security"] == []


def test_the_security_requirements_follow_the_auth_mode(offline_settings: Settings) -> None:
    # AUTH_MODE arrives with access control; until then no token is needed.
    expected = getattr(offline_settings, "auth_mode", "off") == "jwt"
    assert auth_required(offline_settings) is expected
    served = build_document(offline_settings)["paths"]["/v1/events/{event_id}"]["get"]
    assert ({} not in served["security"]) is expected


def test_every_route_is_documented_and_every_documented_route_exists(
    offline_settings: Settings,
) -> None:
    documented = operations(build_document(offline_settings))
    routes = routed(offline_settings)
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes - PENDING_MERGE == set(), "documented, but no such route"
    # Once a pending route is merged it must leave PENDING_MERGE (tests/support/contract.py).
    assert PENDING_MERGE & routes == set(), "merged: remove these from PENDING_MERGE"
    assert documented >= PENDING_MERGE


def test_every_error_code_the_service_raises_is_documented() -> None:
    from app import errors, runs

    raised = {
        cls.code
        for module in (errors, runs)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, errors.APIError)
    }
    assert raised - set(CODES) == set()
    for code, (status, _) in CODES.items():
        assert 400 <= status < 600, code


def test_links_name_real_operations_and_parameters() -> None:
    doc = document(auth_required=True, agents=["echo"])
    by_id = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    links = [
        (source, link)
        for source, op in by_id.items()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert {(s, link["operationId"]) for s, link in links} == {
        ("appendEvents", "getEvent"),
        ("startRun", "getRun"),
        ("startRun", "cancelRun"),
    }
    for _, link in links:
        target = {p["name"] for p in by_id[link["operationId"]]["parameters"]}
        assert set(link["parameters"]) <= target


async def test_the_app_serves_its_document(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == build_document(api.services.settings)
    agents = response.json()["components"]["schemas"]
    assert "StreamEvent" in agents


# The document and the validators agree: a value the schema accepts, the validator accepts,
# and the other way round. Schemas are checked as schemathesis checks them (jsonschema-rs,
# whose `$` is the end of the text, as in the ECMA-262 regexes JSON Schema specifies).


def _schema(name: str, where: str) -> dict[str, object]:
    doc = document(auth_required=False, agents=["echo"])
    for parameter in doc["paths"][where]["get"]["parameters"]:
        if parameter["name"] == name:
            return parameter["schema"]
    raise AssertionError(f"no parameter {name} on {where}")


def _accepts(check: object, *args: object) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except BadRequest:
        return False
    return True


ID_SCHEMA = _schema("session_id", "/v1/sessions/{session_id}/events")
LIMIT_SCHEMA = _schema("limit", "/v1/sessions/{session_id}/events")
AFTER_SCHEMA = _schema("after", "/v1/sessions/{session_id}/events")


@given(
    st.one_of(st.text(max_size=140), st.from_regex(r"[A-Za-z0-9._:-]{120,130}\n?", fullmatch=True))
)
def test_ids_the_document_accepts_are_the_ids_the_service_accepts(value: str) -> None:
    valid = jsonschema_rs.is_valid(ID_SCHEMA, value)
    assert _accepts(identifier, value, "id") is valid


@given(st.one_of(st.integers(-5, 1005).map(str), st.text(max_size=6)))
def test_limits_the_document_accepts_are_the_limits_the_service_accepts(raw: str) -> None:
    low, high = LIMIT_SCHEMA["minimum"], LIMIT_SCHEMA["maximum"]
    as_int = int(raw) if raw.isascii() and raw.lstrip("-").isdigit() else None
    valid = as_int is not None and str(as_int) == raw and low <= as_int <= high
    assert _accepts(bounded_int, raw, "limit", low, high, 1) is valid


@given(
    st.one_of(
        st.from_regex(r"[0-9]{1,19}\.[0-9a-f]{8}\s?", fullmatch=True),
        st.text(max_size=30),
    )
)
def test_tokens_the_document_accepts_are_the_tokens_the_service_decodes(value: str) -> None:
    tag = tokens.session_tag("s")
    candidate = value[: value.find(".") + 1] + tag if "." in value else value
    valid = jsonschema_rs.is_valid(AFTER_SCHEMA, candidate) and candidate != ""
    assert _accepts(tokens.decode, "s", candidate) is valid
