"""Verification with the configured key and algorithm only; settings that stop start-up."""

from __future__ import annotations

import base64
import subprocess
import sys
import time

import jwt
import orjson
import pytest

from app.auth.policy import Patterns, Scope
from app.auth.verifier import CannotMint, InvalidToken, Verifier, mint
from app.settings import AuthMode, Secret, Settings, SettingsError
from support.tokens import SECRET, ec_keys, rsa_keys, token


def hs256(**options: object) -> Verifier:
    verifier = Verifier.from_settings(
        Settings(auth_jwt_secret=Secret(SECRET), **options)  # type: ignore[arg-type]
    )
    assert verifier is not None
    return verifier


def test_a_good_token_gives_its_principal() -> None:
    found = hs256().verify(token("alice", "events:read runs:write", ["demo*", "s1"]))
    assert found.subject == "alice"
    assert found.scopes == {Scope.EVENTS_READ, Scope.RUNS_WRITE}
    assert found.sessions == Patterns.parse(["demo*", "s1"])
    assert found.expires_at is not None
    assert found.expires_at > time.time()


def unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("not-a-token", "malformed"),
        ("a.b.c", "malformed"),
        (token(key="another-secret-that-is-32-bytes-long!!"), "signature"),
        (unsigned({"sub": "x", "exp": int(time.time()) + 60, "sessions": ["*"]}), "HS256"),
        (token(ttl=-60), "expired"),
        (token(drop=("sub",)), "sub"),
        (token(drop=("exp",)), "exp"),
        (token(sub=""), "sub"),
        (token(sessions=["bad id"]), "sessions"),
        (token() + "x", "signature"),
        (token(nbf=int(time.time()) + 600), "not valid yet"),
    ],
)
def test_bad_tokens_are_refused_with_a_message_that_never_quotes_them(
    bad: str, message: str
) -> None:
    with pytest.raises(InvalidToken) as refused:
        hs256().verify(bad)
    assert message in str(refused.value)
    if bad:
        assert bad not in str(refused.value)


def test_clock_leeway_is_five_seconds_at_most() -> None:
    verifier = hs256()
    assert verifier.leeway <= 5
    verifier.verify(token(ttl=-2))  # inside the leeway
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token(ttl=-7))


def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = hs256(auth_jwt_issuer="https://issuer", auth_jwt_audience="agentstream")
    verifier.verify(token(iss="https://issuer", aud="agentstream"))
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(token(iss="https://other", aud="agentstream"))
    with pytest.raises(InvalidToken, match="audience"):
        verifier.verify(token(iss="https://issuer", aud="other"))
    with pytest.raises(InvalidToken, match="iss"):
        verifier.verify(token(aud="agentstream"))
    hs256().verify(token(iss="anyone", aud="anything"))  # not configured: not checked


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_public_keys_fix_the_algorithm_and_refuse_confusion(kind: str) -> None:
    private, pem = rsa_keys() if kind == "RS256" else ec_keys()
    verifier = Verifier.from_settings(Settings(auth_jwt_public_key=pem))
    assert verifier is not None
    assert verifier.algorithm == kind
    assert verifier.verify(token("bob", key=private, algorithm=kind)).subject == "bob"
    # Algorithm confusion: an HMAC token whose secret is the public key's own bytes.
    forged = _hmac_token(pem)
    with pytest.raises(InvalidToken, match=kind):
        verifier.verify(forged)
    with pytest.raises(InvalidToken):
        verifier.verify(token(key=SECRET))
    with pytest.raises(InvalidToken):
        verifier.verify(unsigned({"sub": "x", "exp": int(time.time()) + 60}))
    other_alg = "ES256" if kind == "RS256" else "RS256"
    other_private, _ = ec_keys() if other_alg == "ES256" else rsa_keys()
    with pytest.raises(InvalidToken, match=kind):
        verifier.verify(token(key=other_private, algorithm=other_alg))


def _hmac_token(pem: str) -> str:
    """HS256 signed with the PEM text, built by hand (PyJWT refuses to sign with a PEM key)."""
    import hashlib
    import hmac

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    claims = {"sub": "mallory", "exp": int(time.time()) + 60, "sessions": ["*"], "scope": "admin"}
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"AUTH_JWT_SECRET": "short"}, "AUTH_JWT_SECRET='**********' is invalid"),
        ({"AUTH_JWT_PUBLIC_KEY": "nope"}, "AUTH_JWT_PUBLIC_KEY='PEM' is invalid"),
        ({"AUTH_MODE": "maybe"}, "AUTH_MODE accepts jwt or off"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"CORS_ORIGINS": "https://a.example/path"}, "CORS_ORIGINS"),
    ],
)
def test_bad_auth_settings_are_refused(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert fragment in str(refused.value)
    assert "short" not in str(refused.value)


def test_settings_accept_keys_modes_and_origins() -> None:
    _, pem = ec_keys()
    settings = Settings.from_env(
        {
            "AUTH_JWT_PUBLIC_KEY": pem.replace("\n", "\\n"),  # one-line form for .env files
            "CORS_ORIGINS": "https://app.example.com, http://localhost:5173/",
        }
    )
    assert settings.auth_mode is AuthMode.JWT
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.describe()["auth_jwt_public_key"] == "PEM public key"
    settings.check_auth()
    secret = Settings.from_env({"AUTH_JWT_SECRET": SECRET})
    assert SECRET not in repr(secret)
    assert SECRET not in str(secret.describe())
    assert Settings.from_env({"AUTH_MODE": "off"}).auth_mode is AuthMode.OFF


def test_jwt_mode_needs_exactly_one_key() -> None:
    with pytest.raises(SettingsError, match="AUTH_MODE=jwt needs AUTH_JWT_SECRET"):
        Settings().check_auth()
    _, pem = rsa_keys()
    with pytest.raises(SettingsError, match="not both"):
        Settings(auth_jwt_secret=Secret(SECRET), auth_jwt_public_key=pem).check_auth()
    Settings(auth_mode=AuthMode.OFF).check_auth()
    assert Verifier.from_settings(Settings(auth_mode=AuthMode.OFF)) is None


def test_serve_without_a_key_stops_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env={"PATH": "/usr/bin:/bin", "MONGO_URL": "mongodb://db", "REDIS_URL": "redis://r"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: AUTH_MODE=jwt needs AUTH_JWT_SECRET")


def test_mint_signs_with_the_secret_only() -> None:
    settings = Settings(auth_jwt_secret=Secret(SECRET), auth_jwt_issuer="me")
    made = mint(settings, subject="cli", scopes="events:read", sessions=["demo*"], ttl=60)
    verifier = Verifier.from_settings(settings)
    assert verifier is not None
    assert verifier.verify(made).sessions == Patterns.parse(["demo*"])
    _, pem = rsa_keys()
    with pytest.raises(CannotMint, match="only AUTH_JWT_PUBLIC_KEY"):
        mint(Settings(auth_jwt_public_key=pem), subject="x", scopes="", sessions=[], ttl=1)
    with pytest.raises(ValueError, match="unknown scopes"):
        mint(settings, subject="x", scopes="events:raed", sessions=[], ttl=1)


def test_app_token_prints_a_token_for_the_configured_secret() -> None:
    env = {"PATH": "/usr/bin:/bin", "AUTH_JWT_SECRET": SECRET}
    args = [sys.executable, "-m", "app", "token", "--sub", "cli", "--sessions", "demo*,s1"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=True)
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "cli"
    assert claims["scope"] == "events:read"
    assert claims["sessions"] == ["demo*", "s1"]
    assert 3590 <= claims["exp"] - claims["iat"] <= 3600
    _, pem = ec_keys()
    refused = subprocess.run(
        args,
        env={"PATH": "/usr/bin:/bin", "AUTH_JWT_PUBLIC_KEY": pem},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "cannot mint a token: only AUTH_JWT_PUBLIC_KEY is configured" in refused.stderr
