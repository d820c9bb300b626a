"""Settings with access control on (AUTH_MODE=jwt, the test secret), for suites whose own
`settings` fixture already gives each test its databases."""

from __future__ import annotations

import dataclasses

from app.settings import AuthMode, Secret, Settings
from support.tokens import SECRET


def with_jwt(settings: Settings) -> Settings:
    return dataclasses.replace(settings, auth_mode=AuthMode.JWT, auth_jwt_secret=Secret(SECRET))
