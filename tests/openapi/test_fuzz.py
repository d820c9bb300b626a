"""Property-based fuzzing of the live service against its own /openapi.json (schemathesis 4).

A real `python -m app serve` (embedded or real MongoDB, real Redis) on a free port. Schemathesis
loads the document the server serves and, per operation, runs the examples, coverage and
fuzzing phases: valid and invalid parameters and bodies, boundary values, missing fields.
Every answer must be documented (status, content type, body schema), never a 5xx, and invalid
input must be refused with a 4xx.

Auth: with access control present (AUTH_MODE in the settings), the server runs with
AUTH_MODE=jwt and is fuzzed twice: with an admin token (where `ignored_auth` also replays each
request without and with a bad token, expecting 401/403) and with no token at all (every /v1
answer must then be a documented 401). Without access control the document marks credentials
optional and the run has no token.

`./dev fuzz` runs the same with many more examples (FUZZ_EXAMPLES) and a stateful run that
follows the document's links (append -> get event, start run -> get and cancel run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.browser import ARTIFACTS
from support.contract import PENDING_MERGE, admin_token, auth_supported, jwt_env
from support.served import Served, app_serve

PHASES = ("examples", "coverage", "fuzzing")
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "negative_data_rejection",
    "ignored_auth",
)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("FUZZ_SEED", "20261130"))
STATEFUL = os.environ.get("FUZZ_STATEFUL", "") == "1"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# (AUTH_MODE the server runs with, whether the fuzzer holds an admin token)
MODES = [("jwt", True), ("jwt", False)] if auth_supported() else [("off", False)]


@pytest.fixture(
    scope="module", params=MODES, ids=[f"{m}-{'admin' if t else 'no-token'}" for m, t in MODES]
)
def fuzz_target(
    request: pytest.FixtureRequest, mongo_url: str, redis_url: str
) -> Iterator[tuple[Served, str | None]]:
    mode, with_token = request.param
    # Streams end after SSE_TIMEOUT with `stream.reconnect`, so each stream case is short.
    env = {"SSE_TIMEOUT": "0.2", **(jwt_env() if mode == "jwt" else {})}
    with app_serve(mongo_url, redis_url, env) as served:
        yield served, admin_token() if with_token else None


def schemathesis_run(url: str, token: str | None, workdir: Path) -> list[str]:
    """The `schemathesis run` command line for the server at `url`."""
    config = [
        "max-stream-events = 50",
        "[generation]",
        'database = "none"',
    ]
    if token is not None:
        config += ["[auth.openapi.bearer]", f'bearer = "{token}"']
    (workdir / "schemathesis.toml").write_text("\n".join(config) + "\n")
    document = httpx.get(f"{url}/openapi.json").json()
    pending = [
        document["paths"][path][method.lower()]["operationId"] for method, path in PENDING_MERGE
    ]
    phases = (*PHASES, "stateful") if STATEFUL else PHASES
    return [
        str(SCHEMATHESIS),
        "--config-file",
        str(workdir / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        f"--phases={','.join(phases)}",
        f"--checks={','.join(CHECKS)}",
        # Without a token every /v1 answer is the same 401: fewer examples say as much.
        f"--max-examples={EXAMPLES if token is not None or not auth_supported() else 2}",
        f"--seed={SEED}",
        "--mode=all",
        "--workers=2",
        "--request-timeout=10",
        "--wait-for-schema=10",
        # A slow generator on a loaded machine is not the service's fault.
        "--suppress-health-check=too_slow",
        *(f"--exclude-operation-id={operation}" for operation in pending),
    ]


@pytest.mark.timeout(1800)
def test_the_live_service_keeps_its_document(fuzz_target: tuple[Served, str | None]) -> None:
    served, token = fuzz_target
    with tempfile.TemporaryDirectory() as workdir:
        command = schemathesis_run(served.url, token, Path(workdir))
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, check=False, timeout=1700
        )
    report = result.stdout + result.stderr
    print(report[report.find("SUMMARY") :])  # shown with -s, and in CI logs on failure
    if result.returncode != 0:
        saved = ARTIFACTS / "fuzz.log"
        ARTIFACTS.mkdir(exist_ok=True)
        saved.write_text(f"{report}\n--- server log ---\n{served.log()}")
        pytest.fail(f"schemathesis found failures (all of it in {saved}):\n{report[-15000:]}")
    assert "No issues found" in report or "passed" in report, report[-5000:]
