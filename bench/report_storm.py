"""The storm part's rows and section of BENCHMARKS.md (bench/storm.py)."""

from __future__ import annotations

from typing import Any

Results = dict[str, Any]
QUICK_MS = 1000  # "the rest get 503 quickly": every refusal answered within a second (p99)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def storm_row(results: Results) -> list[str] | None:
    s = results.get("storm")
    if not s:
        return None
    p99 = s["healthz_ms"].get("p99")
    refused_p99 = s["refused_ms"].get("p99")
    met = (
        s["accepted"] == s["cap"]
        and s["over_capacity"] == s["clients"] - s["cap"]
        and refused_p99 is not None
        and refused_p99 < QUICK_MS
        and p99 is not None
        and p99 < 100
        and s["open_after"] == 0
    )
    return [
        f"{_num(s['clients'])} clients within {s['within_s']:g} s at SSE_MAX_CONNECTIONS="
        f"{_num(s['cap'])}: the cap streams, the rest 503 within {QUICK_MS:,} ms,"
        " /healthz p99 < 100 ms, all released",
        f"{_num(s['accepted'])} streamed, {_num(s['over_capacity'])} got 503"
        f" (p99 {_num(s['refused_ms'].get('p99'), 1)} ms), {_num(s['other'])} other;"
        f" /healthz p99 {_num(p99, 1)} ms; {_num(s['open_after'])} open"
        f" {_num(s['released_s'], 2)} s after they left",
        "met" if met else "**not met**",
    ]


def storm_section(results: Results, table: Any) -> list[str]:
    s = results.get("storm")
    if not s:
        return []
    h, a, r = s["healthz_ms"], s["accepted_ms"], s["refused_ms"]
    lines = [
        "## storm: a connection storm against the stream cap",
        "",
        f"{_num(s['clients'])} clients open `GET /v1/sessions/…/stream` spread over"
        f" {s['within_s']:g} s (one client process, raw sockets) against one API process with"
        f" SSE_MAX_CONNECTIONS={_num(s['cap'])}; another process asks `/healthz` every 10 ms"
        " throughout. The cap is decided before the stream starts, so a refused client costs"
        " one small 503 and no database read.",
        "",
    ]
    rows = [
        [
            _num(s["accepted"]),
            _num(s["over_capacity"]),
            _num(s["other"]),
            _num(s["answers_per_s"]),
            f"{_num(a.get('p50'), 1)} / {_num(a.get('p99'), 1)}",
            f"{_num(r.get('p50'), 1)} / {_num(r.get('p99'), 1)}",
        ]
    ]
    lines += table(
        [
            "streamed (200)",
            "refused (503)",
            "other",
            "answers/s",
            "200 answer p50/p99 ms",
            "503 answer p50/p99 ms",
        ],
        rows,
    )
    lines += [""]
    lines += table(
        ["/healthz probes", "failures", "p50 ms", "p99 ms", "max ms"],
        [
            [
                _num(s["healthz_probes"]),
                _num(s["healthz_failures"]),
                _num(h.get("p50"), 1),
                _num(h.get("p99"), 1),
                _num(h.get("max"), 1),
            ]
        ],
    )
    lines += [
        "",
        f"After the clients left: {_num(s['open_after'])} streams open"
        f" {_num(s['released_s'], 2)} s later; server tasks {s.get('tasks_before')} before the"
        f" storm, {s.get('tasks_after')} after.",
        "",
    ]
    return lines
