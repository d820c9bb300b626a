"""The policy alone: patterns, coverage, scopes and the decision for each kind of route."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth.policy import Access, Decision, Patterns, Principal, Scope, SessionRule, decide


def principal(scope: str = "events:read", sessions: list[str] | None = None) -> Principal:
    return Principal(
        "alice", Principal.parse_scopes(scope), Patterns.parse(sessions or []), expires_at=1e12
    )


def test_patterns_cover_exact_ids_prefixes_and_everything() -> None:
    patterns = Patterns.parse(["demo*", "s1", "team:a.*"])
    assert patterns.covers("demo")
    assert patterns.covers("demo-42")
    assert patterns.covers("s1")
    assert patterns.covers("team:a.x")
    assert not patterns.covers("s10")
    assert not patterns.covers("dem")
    assert not patterns.covers("team:b")
    everything = Patterns.parse(["s1", "*"])
    assert everything.everything
    assert everything.covers("anything")
    assert Patterns.parse([]).empty
    assert not Patterns.parse([]).covers("s1")
    assert Patterns.parse(None).empty


def test_patterns_are_reduced_to_the_widest() -> None:
    patterns = Patterns.parse(["ab*", "abc*", "abd", "x", "b*"])
    assert patterns.prefixes == ("ab", "b")
    assert patterns.exact == frozenset({"x"})


@pytest.mark.parametrize(
    "claim",
    ["*", [""], ["a*b"], ["**"], ["bad id"], [1], ["x" * 129], [None], {"s": 1}],
)
def test_bad_session_claims_are_refused(claim: object) -> None:
    with pytest.raises(ValueError, match="sessions"):
        Patterns.parse(claim)


def test_the_query_matches_exactly_the_covered_sessions() -> None:
    assert Patterns(everything=True).query("session_id") == {}
    assert Patterns().query("session_id") == {"session_id": {"$in": []}}
    assert Patterns.parse(["b", "a"]).query("f") == {"f": {"$in": ["a", "b"]}}
    assert Patterns.parse(["demo*"]).query("f") == {"f": {"$gte": "demo", "$lt": "demp"}}
    assert Patterns.parse(["s1", "ab*"]).query("f") == {
        "$or": [{"f": {"$in": ["s1"]}}, {"f": {"$gte": "ab", "$lt": "ac"}}]
    }
    # The range is exact: ids with the prefix are inside, no other id is.
    bounds = Patterns.parse(["demo*"]).query("f")["f"]
    ids = ["dem", "demo", "demo-1", "demoz", "demo~", "demp", "demn", "demo0", "DEMO"]
    inside = [i for i in ids if bounds["$gte"] <= i < bounds["$lt"]]
    assert inside == [i for i in ids if i.startswith("demo")]


def test_scopes_ignore_unknown_words_and_refuse_other_types() -> None:
    assert Principal.parse_scopes("events:read  other admin") == {Scope.EVENTS_READ, Scope.ADMIN}
    assert Principal.parse_scopes(None) == frozenset()
    with pytest.raises(ValueError, match="space-separated"):
        Principal.parse_scopes(["events:read"])


PATH_READ = Access(Scope.EVENTS_READ)
LOOKUP_WRITE = Access(Scope.RUNS_WRITE, SessionRule.LOOKUP)
FILTER_READ = Access(Scope.EVENTS_READ, SessionRule.FILTER)


@pytest.mark.parametrize(
    ("who", "access", "session", "expected"),
    [
        (principal("events:read", ["s1"]), PATH_READ, "s1", Decision.ALLOW),
        (principal("events:read", ["s1"]), PATH_READ, "s2", Decision.FORBIDDEN),
        (principal("events:write", ["s1"]), PATH_READ, "s1", Decision.FORBIDDEN),
        (principal("events:read", ["demo*"]), PATH_READ, "demo-1", Decision.ALLOW),
        (principal("events:read", ["*"]), PATH_READ, "any", Decision.ALLOW),
        (principal("admin", []), PATH_READ, "any", Decision.ALLOW),
        # Lookups: outside the sessions it is "not found" whatever the scopes.
        (principal("runs:write", ["s1"]), LOOKUP_WRITE, "s1", Decision.ALLOW),
        (principal("runs:write", ["s1"]), LOOKUP_WRITE, "s2", Decision.NOT_FOUND),
        (principal("events:read", ["s2"]), LOOKUP_WRITE, "s1", Decision.NOT_FOUND),
        (principal("events:read", ["s1"]), LOOKUP_WRITE, "s1", Decision.FORBIDDEN),
        (principal("admin", []), LOOKUP_WRITE, "s9", Decision.ALLOW),
        (principal("events:read", []), FILTER_READ, None, Decision.ALLOW),
        (principal("runs:write", ["*"]), FILTER_READ, None, Decision.FORBIDDEN),
    ],
)
def test_decide(who: Principal, access: Access, session: str | None, expected: Decision) -> None:
    assert decide(who, access, session) is expected


def test_a_session_rule_without_the_session_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs the session id"):
        decide(principal(), PATH_READ, None)


def test_everyone_and_admin_see_every_session() -> None:
    assert Principal.everyone().visible().everything
    assert principal("admin", ["s1"]).visible().everything
    assert principal("events:read", ["s1"]).visible() == Patterns.parse(["s1"])


ALPHABET = "ab.:-9Z"
ids = st.text(alphabet=ALPHABET, min_size=1, max_size=6)
entries = st.one_of(ids, ids.map(lambda p: p + "*"), st.just("*"))


def matches(query: dict[str, Any], value: str) -> bool:
    """The few MongoDB operators Patterns.query uses, evaluated on one field value."""
    if not query:
        return True
    if "$or" in query:
        return any(matches(clause, value) for clause in query["$or"])
    (condition,) = query.values()
    if "$in" in condition:
        return value in condition["$in"]
    return bool(condition["$gte"] <= value < condition["$lt"])


@given(st.lists(entries, max_size=5), st.lists(ids, min_size=1, max_size=20))
def test_the_query_and_covers_always_agree(claim: list[str], sessions: list[str]) -> None:
    patterns = Patterns.parse(claim)
    query = patterns.query("session_id")
    for session in sessions:
        assert matches(query, session) == patterns.covers(session), (claim, session, query)
