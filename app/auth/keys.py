"""Public keys for RS256 and ES256: the key type fixes the algorithm, never the token."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

type PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class KeyProblem(ValueError):
    """The configured public key cannot be used."""


def load_public_key(pem: str) -> tuple[PublicKey, str]:
    """The key and its algorithm: RSA (at least 2048 bits) -> RS256, EC P-256 -> ES256."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise KeyProblem("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise KeyProblem(f"an RSA key of {key.key_size} bits; RS256 needs at least 2048")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyProblem(f"an EC key on {key.curve.name}; ES256 needs P-256 (secp256r1)")
        return key, "ES256"
    raise KeyProblem(f"a {type(key).__name__}; RS256 needs RSA and ES256 needs EC P-256")


def algorithm_of(pem: str) -> str:
    return load_public_key(pem)[1]
