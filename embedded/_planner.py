"""Index bounds for the embedded engine: which documents a query can possibly match.

`candidates` turns a mongoeco query plan into slices of one `OrderedIndex`: equality (or `$in`)
on a prefix of the index's fields, then an optional range on the next field. The slices hold
every document the filter can match and usually few others; mongoeco still applies the whole
filter, sort, skip, limit and projection to them, so answers stay exactly mongoeco's.

With a sort whose first field is the index field right after the equality prefix, and a limit,
the slice is walked in sort order and the walk stops once `skip + limit` documents have
matched and the sort value has moved past the last of them. The documents kept are then every
match that sorts before or level with the last one, so mongoeco's stable sort of them (ties in
natural order, as in a full scan) gives the same first `skip + limit` as a full scan.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mongoeco.core.query_plan import (
    AndCondition,
    EqualsCondition,
    GreaterThanCondition,
    GreaterThanOrEqualCondition,
    InCondition,
    LessThanCondition,
    LessThanOrEqualCondition,
    OrCondition,
)

from embedded._ordered import TOP, Entry, Key, OrderedIndex, Unsupported, just_above, order_key

type Matches = Callable[[Any], bool]
_MAX_PREFIXES = 1000
_POINTS = (EqualsCondition, InCondition)
_LOWER = (GreaterThanCondition, GreaterThanOrEqualCondition)
_UPPER = (LessThanCondition, LessThanOrEqualCondition)


@dataclasses.dataclass(frozen=True, slots=True)
class Sort:
    field: str
    direction: int
    window: int  # skip + limit


@dataclasses.dataclass(slots=True)
class _Bounds:
    points: dict[str, list[Key]] = dataclasses.field(default_factory=dict)
    lower: dict[str, Key] = dataclasses.field(default_factory=dict)  # probe at the lower end
    upper: dict[str, Key] = dataclasses.field(default_factory=dict)  # probe past the upper end


def _clauses(plan: object) -> Iterator[object]:
    if isinstance(plan, AndCondition):
        for clause in plan.clauses:
            yield from _clauses(clause)
    else:
        yield plan


def _bounds(plan: object) -> _Bounds:
    bounds = _Bounds()
    for clause in _clauses(plan):
        field = getattr(clause, "field", None)
        if not isinstance(field, str):
            continue
        try:
            if isinstance(clause, EqualsCondition) and field not in bounds.points:
                bounds.points[field] = [order_key(clause.value)]
            elif isinstance(clause, InCondition) and field not in bounds.points:
                bounds.points[field] = sorted({order_key(value) for value in clause.values})
            elif isinstance(clause, _LOWER) and field not in bounds.lower:
                key = order_key(clause.value)
                bounds.lower[field] = just_above(key) if isinstance(clause, _LOWER[0]) else key
            elif isinstance(clause, _UPPER) and field not in bounds.upper:
                key = order_key(clause.value)
                bounds.upper[field] = key if isinstance(clause, _UPPER[0]) else just_above(key)
        except Unsupported:
            continue
    return bounds


@dataclasses.dataclass(slots=True)
class _Choice:
    index: OrderedIndex
    prefixes: list[Key]
    lower: Key | None
    upper: Key | None
    walk: Sort | None

    def slices(self) -> Iterator[tuple[int, int]]:
        for prefix in self.prefixes:
            low = (*prefix, self.lower) if self.lower is not None else prefix
            if self.upper is not None:
                high = (*prefix, self.upper)
            elif prefix:
                high = (*prefix[:-1], just_above(prefix[-1]))
            else:
                high = TOP
            yield self.index.span(low, high)


def _choose(indexes: Sequence[OrderedIndex], bounds: _Bounds, sort: Sort | None) -> _Choice | None:
    best: tuple[tuple[int, int, int], _Choice] | None = None
    for index in indexes:
        fields = index.fields
        used = 0
        while used < len(fields) and fields[used] in bounds.points:
            used += 1
        combos = 1
        for field in fields[:used]:
            combos *= len(bounds.points[field])
        if combos > _MAX_PREFIXES:
            continue
        next_field = fields[used] if used < len(fields) else None
        lower = bounds.lower.get(next_field) if next_field else None
        upper = bounds.upper.get(next_field) if next_field else None
        walk = sort if sort is not None and combos == 1 and next_field == sort.field else None
        score = (used, int(lower is not None or upper is not None), int(walk is not None))
        if score == (0, 0, 0) or (best is not None and score <= best[0]):
            continue
        prefixes = [
            tuple(combo) for combo in itertools.product(*(bounds.points[f] for f in fields[:used]))
        ]
        best = (score, _Choice(index, prefixes, lower, upper, walk))
    return None if best is None else best[1]


def candidates(
    plan: object,
    indexes: Sequence[OrderedIndex],
    sort: Sort | None,
    matches: Callable[[Any], bool],
) -> list[Any] | None:
    """Storage keys, in natural order, of a superset of the documents `plan` matches whose
    first `sort.window` in sort order are those of a full scan; None when no index helps."""
    if isinstance(plan, OrCondition):
        keys: dict[Any, int] = {}
        for clause in plan.clauses:
            found = _entries(clause, indexes, None, matches)
            if found is None:
                return None
            keys.update((entry[-1], entry[-2]) for entry in found)
        return sorted(keys, key=keys.__getitem__)
    found = _entries(plan, indexes, sort, matches)
    if found is None:
        return None
    return [entry[-1] for entry in sorted(found, key=lambda entry: entry[-2])]


def _entries(
    plan: object, indexes: Sequence[OrderedIndex], sort: Sort | None, matches: Matches
) -> list[Entry] | None:
    choice = _choose(indexes, _bounds(plan), sort)
    if choice is None:
        return None
    if choice.walk is None:
        return [
            entry for start, stop in choice.slices() for entry in choice.index.entries(start, stop)
        ]
    ((start, stop),) = choice.slices()
    position = len(choice.prefixes[0])
    descending = choice.walk.direction < 0
    return _walk(
        choice.index.entries(start, stop, reverse=descending),
        position,
        choice.walk.window,
        matches,
    )


def _walk(entries: Iterator[Entry], position: int, window: int, matches: Matches) -> list[Entry]:
    kept: list[Entry] = []
    last: Key | None = None
    for entry in entries:
        if len(kept) >= window and entry[position] != last:
            break
        if matches(entry[-1]):
            kept.append(entry)
            last = entry[position]
    return kept
