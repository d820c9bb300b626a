"""The client is usable without the server: it imports only the standard library and httpx."""

from __future__ import annotations

import subprocess
import sys

from support.worker import ROOT

CHECK = """
import sys
before = set(sys.modules)
import agentstream_client
loaded = sorted(set(sys.modules) - before)
print("\\n".join(loaded))
"""


def test_the_client_imports_nothing_of_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert "agentstream_client" in loaded
    assert "httpx" in loaded
    ours = {"app", "worker", "embedded", "support", "bench"}
    assert loaded & ours == set(), loaded & ours
    server_side = {
        "starlette",
        "uvicorn",
        "pymongo",
        "bson",
        "arq",
        "redis",
        "orjson",
        "jwt",
        "prometheus_client",
        "mongoeco",
    }
    assert loaded & server_side == set(), loaded & server_side
