"""`--merge`: fold the results of one part into an existing BENCHMARKS.md.

A full `./dev bench` takes a quarter of an hour on a busy 2-core machine; a change that
touches one part reruns that part and merges it, keeping every other figure as it was:
- the part's own sections (`## Targets (issue 16)`, `## scaling ...`, `## storm ...`,
  `## embedded_growth ...`) replace theirs, or are added (the targets after the other
  targets, the rest before the profiles);
- a load_test_sse run of 100 subscribers per session replaces that table (the last block of
  the load_test_sse section) and its profile;
- a line under the machine facts says what was merged, when, and under what load.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any

from bench import report
from bench.report_scaling import scaling_section, targets16
from bench.report_storm import storm_section

Results = dict[str, Any]

VARIANT = "The same with 100 subscribers per session"
PROFILES = "## Where the time goes"


def _sections(text: str) -> list[str]:
    """The text split before each `## ` heading (the first item is the preamble)."""
    parts = text.split("\n## ")
    return [parts[0], *("## " + part for part in parts[1:])]


def _put(sections: list[str], new: str, *, after: str | None = None) -> None:
    title = new.split("\n", 1)[0]
    for i, section in enumerate(sections):
        if section.split("\n", 1)[0] == title:
            sections[i] = new
            return
    for i, section in enumerate(sections):
        if after is not None and section.startswith(after):
            sections.insert(i + 1, new)
            return
    at = next((i for i, s in enumerate(sections) if s.startswith(PROFILES)), len(sections))
    sections.insert(at, new)


def _block(lines: list[str]) -> str:
    return "\n".join(lines).rstrip() + "\n"


def _variant_block(latency: dict[str, Any]) -> str:
    cfg = latency["config"]
    per = cfg["clients"] // cfg["sessions"]
    offered = cfg["rate"] * per
    return _block(
        [
            f"{VARIANT} ({cfg['sessions']} sessions): {report.num(offered)} deliveries/s offered"
            " (rerun for issue 16: see the note under the machine facts).",
            "",
            *report.table(
                report.LOAD_HEAD,
                [
                    *(report._load_row(f"run {i + 1}", r) for i, r in enumerate(latency["runs"])),
                    report._load_row("**median**", latency["median"]),
                ],
            ),
        ]
    )


def _replace_profile(section: str, new_profiles: str) -> str:
    """Swap the bold-titled profile blocks of `new_profiles` into the profiles `section`."""
    head, *blocks = section.split("\n**")
    old = {b.split("**", 1)[0]: b for b in blocks}
    for block in new_profiles.split("\n**")[1:]:
        old[block.split("**", 1)[0]] = block
    return "\n**".join([head, *old.values()])


def merge(existing: str, results: Results, command: str) -> str:
    sections = _sections(existing)
    latency = results.get("latency")
    if latency:
        cfg = latency["config"]
        if cfg["clients"] // cfg["sessions"] == 100:
            i = next(i for i, s in enumerate(sections) if s.startswith("## load_test_sse"))
            kept = sections[i].split(VARIANT, 1)[0]
            sections[i] = kept + _variant_block(latency) + "\n"
            _retarget(sections, latency["median"]["p99"])
            profiles = results.get("profiles") or {}
            if profiles:
                rendered = "\n".join(report.profiles_section({"profiles": profiles}))
                j = next((j for j, s in enumerate(sections) if s.startswith(PROFILES)), None)
                if j is not None:
                    sections[j] = _replace_profile(sections[j], rendered).rstrip() + "\n\n"
    for section in (
        scaling_section(results),
        storm_section(results, report.table),
        report.growth_section(results),
    ):
        if section:  # the parts that ran: their sections replace theirs, or are added
            _put(sections, _block(section) + "\n")
    merged = "\n".join(s.rstrip("\n") + "\n" for s in sections)
    # The issue-16 targets read the 100-per-session table and the scaling part: re-derive them
    # from what the file now holds plus these results.
    if latency or results.get("scaling"):
        targets = targets16(results)
        if targets:
            sections = _sections(merged)
            _put(sections, _block(targets) + "\n", after="## Targets (issue 6)")
            merged = "\n".join(s.rstrip("\n") + "\n" for s in sections)
    return _note(merged, command, results)


def _retarget(sections: list[str], p99: float) -> None:
    """The issue-6 latency target names the 100-per-session p99 too: give it the new one."""
    i = next((i for i, s in enumerate(sections) if s.startswith("## Targets (issue 6)")), None)
    if i is None:
        return
    verdict = "met" if p99 < 20 else "**missed**"
    text = re.sub(
        r"; [\d,.]+ ms with 100 per session",
        f"; {report.num(p99, 1)} ms with 100 per session (issue-16 rerun)",
        sections[i],
    )
    sections[i] = re.sub(
        r"; (met|\*\*missed\*\*) with 100 per session", f"; {verdict} with 100 per session", text
    )


def _note(text: str, command: str, results: Results) -> str:
    now = results.get("finished_at") or datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    load = results.get("load_average_end") or os.getloadavg()[0]
    line = (
        f"Merged: `{command}` at {now}, load average {load:.1f} at its end (other work shares"
        " the machine); its sections replace theirs, every other figure is from the run above."
    )
    lines = text.split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("Command: `"))
    lines.insert(at + 1, "")
    lines.insert(at + 2, line)
    return "\n".join(lines)
