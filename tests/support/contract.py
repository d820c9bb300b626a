"""What the tests know about the API contract beyond what this branch serves."""

from __future__ import annotations

import time

import jwt

from app.settings import ENVIRONMENT_VARIABLES

# Contract routes (DESIGN.md) that /openapi.json documents but that branches not merged yet
# add. The coordinator empties this set as they land; anything else documented without a
# route, or routed without documentation, fails tests/openapi/test_document.py.
PENDING_MERGE: frozenset[tuple[str, str]] = frozenset({})

FUZZ_SECRET = "fuzz-secret-of-at-least-thirty-two-bytes"


def auth_supported() -> bool:
    """Whether this service has access control (AUTH_MODE) to test."""
    return "AUTH_MODE" in ENVIRONMENT_VARIABLES


def jwt_env() -> dict[str, str]:
    return {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": FUZZ_SECRET}


def admin_token(ttl: float = 3600.0) -> str:
    claims = {
        "sub": "fuzz",
        "exp": int(time.time() + ttl),
        "scope": "admin",
        "sessions": ["*"],
    }
    return jwt.encode(claims, FUZZ_SECRET, algorithm="HS256")
