"""Input checks shared by every endpoint. Values that reach a query are plain, checked strings."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from app.errors import BadRequest

# The rules below are also what /openapi.json says (app/openapi imports these names).
ID_MAX = 128
TYPE_MAX = 64
ID_PATTERN = rf"^[A-Za-z0-9._:-]{{1,{ID_MAX}}}$"
# Lookups also reach the ids the service derives for runs ("<run_id>~<step>", app.store.runs).
LOOKUP_ID_PATTERN = rf"^[A-Za-z0-9._:~-]{{1,{ID_MAX}}}$"
TYPE_PATTERN = rf"^[A-Za-z0-9._:-]{{1,{TYPE_MAX}}}$"
_ID = re.compile(ID_PATTERN)
_LOOKUP_ID = re.compile(LOOKUP_ID_PATTERN)
_TYPE = re.compile(TYPE_PATTERN)
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what BSON can store
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() also takes '٣' and '³'
_MILLIS = re.compile(r"-?[0-9]{1,15}")


def identifier(value: object, field: str) -> str:
    """A session, event, trace, message or run id: 1-128 characters of [A-Za-z0-9._:-]."""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string, got {_kind(value)}")
    if not _ID.fullmatch(value):  # fullmatch: '$' alone lets a final newline in
        raise BadRequest(f"{field} must be 1-128 characters from [A-Za-z0-9._:-]")
    return value


def lookup_event_id(value: str) -> str:
    """An event id to look up: a client id, or one the service derived from a run id."""
    if not _LOOKUP_ID.fullmatch(value):
        raise BadRequest("event_id must be 1-128 characters from [A-Za-z0-9._:~-]")
    return value


def optional_identifier(value: object, field: str) -> str | None:
    return None if value is None else identifier(value, field)


def event_type(value: object, field: str = "type") -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string, got {_kind(value)}")
    if not _TYPE.fullmatch(value):
        raise BadRequest(f"{field} must be 1-64 characters from [A-Za-z0-9._:-]")
    return value


def json_object(value: object, field: str) -> dict[str, Any]:
    """A JSON object MongoDB can store: keys never start with '$' and hold no NUL, integers
    fit in 64 bits (signed), at any depth."""
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be a JSON object, got {_kind(value)}")
    _check_value(value, field, 0)
    return value


def _check_value(value: object, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadRequest(f"{path} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "\x00" in key:
                raise BadRequest(f"{path} has a key that starts with '$' or holds NUL: {key!r}")
            _check_value(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, path, depth + 1)
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(f"{path} holds an integer outside the 64-bit signed range: {value}")


def allowed_fields(body: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"{what} has unknown fields: {', '.join(unknown)}")


def bounded_int(raw: str | None, field: str, low: int, high: int, default: int) -> int:
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{field} must be a whole number from {low} to {high}")
    return int(raw)


def timestamp(raw: str, field: str = "since_timestamp") -> datetime.datetime:
    """ISO 8601 (a zone is required unless it is UTC by default) or epoch milliseconds."""
    text = raw.strip()
    if _MILLIS.fullmatch(text):
        millis = int(text)
        try:
            return datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise BadRequest(f"{field} is out of range") from None
    if not text.isascii() or len(text) > 40:
        raise BadRequest(f"{field} must be ISO 8601 or epoch milliseconds")
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(f"{field} must be ISO 8601 or epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise BadRequest(f"{field} is out of range (years 1 to 9999 in UTC)") from None


def format_timestamp(value: datetime.datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a trailing Z."""
    value = value.astimezone(datetime.UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
