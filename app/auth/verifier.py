"""JWT verification (PyJWT) with the algorithm fixed by configuration, and minting for `app token`.

HS256 with AUTH_JWT_SECRET, or RS256 / ES256 by the type of AUTH_JWT_PUBLIC_KEY. Only that one
algorithm is accepted, so `alg: none` and algorithm confusion (an HS256 token signed with the
public key's bytes) fail. `exp` and `sub` are required; `iss` and `aud` are checked when
configured; the clock leeway is LEEWAY seconds.

Error messages are fixed texts chosen by the kind of failure: they never quote the token.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jwt

from app.auth.keys import PublicKey, load_public_key
from app.auth.policy import Patterns, Principal, Scope
from app.settings import AuthMode, Settings

LEEWAY = 5.0
_MAX_TOKEN_CHARS = 8192


class InvalidToken(Exception):
    """Missing, malformed, badly signed or expired: 401. The message is safe to show."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verifier:
    key: str | PublicKey
    algorithm: str
    issuer: str | None = None
    audience: str | None = None
    leeway: float = LEEWAY

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier | None:
        """The verifier AUTH_MODE=jwt needs; None when AUTH_MODE=off. SettingsError when the
        key is missing (see Settings.check_auth)."""
        settings.check_auth()
        if settings.auth_mode is AuthMode.OFF:
            return None
        issuer, audience = settings.auth_jwt_issuer, settings.auth_jwt_audience
        if settings.auth_jwt_secret is not None:
            return cls(settings.auth_jwt_secret.get(), "HS256", issuer, audience)
        assert settings.auth_jwt_public_key is not None
        key, algorithm = load_public_key(settings.auth_jwt_public_key)
        return cls(key, algorithm, issuer, audience)

    def verify(self, token: str) -> Principal:
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise InvalidToken("the token is empty or too long")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"the token is not signed with {self.algorithm}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token's issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token's audience is not accepted") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is invalid") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is malformed") from None
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise InvalidToken("the token's sub claim must be a string of 1-256 characters")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise InvalidToken("the token's exp claim must be a number")
    try:
        scopes = Principal.parse_scopes(claims.get("scope"))
        sessions = Patterns.parse(claims.get("sessions"))
    except ValueError as exc:
        raise InvalidToken(str(exc)) from None
    return Principal(subject, scopes, sessions, float(expires))


class CannotMint(Exception):
    """Only a public key is configured (or none): this process cannot sign tokens."""


def mint(
    settings: Settings,
    *,
    subject: str,
    scopes: str,
    sessions: list[str],
    ttl: float,
    now: float | None = None,
) -> str:
    """An HS256 token signed with AUTH_JWT_SECRET (for development and scripts)."""
    if settings.auth_jwt_secret is None:
        if settings.auth_jwt_public_key is not None:
            raise CannotMint(
                "only AUTH_JWT_PUBLIC_KEY is configured: tokens for it are signed with the"
                " private key by whoever issues them; this command signs with AUTH_JWT_SECRET"
            )
        raise CannotMint("AUTH_JWT_SECRET is not set (at least 32 bytes)")
    unknown = [word for word in scopes.split() if word not in {s.value for s in Scope}]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(s.value for s in Scope)}")
    Patterns.parse(sessions)  # ValueError on a bad pattern
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": scopes,
        "sessions": sessions,
        "iat": int(issued),
        "exp": int(issued + ttl),
    }
    if settings.auth_jwt_issuer is not None:
        claims["iss"] = settings.auth_jwt_issuer
    if settings.auth_jwt_audience is not None:
        claims["aud"] = settings.auth_jwt_audience
    return jwt.encode(claims, settings.auth_jwt_secret.get(), algorithm="HS256")
