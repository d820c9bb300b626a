"""Tokens for access-control tests: HS256 from the test secret, RS256 and ES256 key pairs."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "test-secret-that-is-at-least-32-bytes-long"
ALL_SCOPES = "events:read events:write runs:write"


def token(
    sub: str | None = "tester",
    scope: str | None = ALL_SCOPES,
    sessions: list[str] | None = None,
    *,
    ttl: float = 300.0,
    key: Any = SECRET,
    algorithm: str = "HS256",
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> str:
    """A signed token; `drop` leaves claims out (e.g. ("exp",)). sessions default to ["*"]."""
    now = time.time()
    claims: dict[str, Any] = {
        "sub": sub,
        "scope": scope,
        "sessions": ["*"] if sessions is None else sessions,
        "iat": int(now),
        "exp": int(now + ttl),
        **extra,
    }
    for name in drop:
        claims.pop(name, None)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def rsa_keys() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, public_pem(private)


def ec_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, public_pem(private)


def public_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
