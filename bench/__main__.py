"""`./dev bench` (= `python -m bench`): run the benchmarks and rewrite BENCHMARKS.md.

With no part named, every part runs with bounded defaults (about 7-9 minutes on the project's
2-core machine; `--quick` for a short smoke run) and BENCHMARKS.md is rewritten. Naming a part
runs only that part and prints its table (BENCHMARKS.md is left alone):

    python -m bench load_test_sse --clients 1000 --duration 10 --sessions 100 --rate 1000
    python -m bench load_test_sse --server seed --clients 100 --rate 20   # database-fed
    python -m bench benchmark_events --events 500
    python -m bench push_vs_poll | ceiling | capacity | storm
    python -m bench scaling --clients 1000 --sessions 10 --rate 2000   # 1 vs 2 processes
    python -m bench load_test_sse scaling --sessions 10 --merge  # rerun two parts, merge them
    python -m bench embedded_growth --sizes 1000,10000   # rewrites its BENCHMARKS.md section

MongoDB and Redis come from MONGO_URL and REDIS_URL when set, else embedded ones are started
(the MongoDB stand-in is slow: see BENCHMARKS.md for which figures need a real MongoDB).
Raw results and profiles go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench import profile as profiling
from bench import report
from bench.backends import Backends, backends
from bench.benchmark_events import benchmark_events
from bench.capacity import capacity
from bench.ceiling import ceiling
from bench.embedded_growth import embedded_growth
from bench.load_test_sse import Load, measure
from bench.machine import facts
from bench.merge import merge
from bench.procs import ROOT, raise_nofile
from bench.push_vs_poll import push_vs_poll
from bench.scaling import scaling
from bench.stats import median
from bench.storm import run_storm

logger = logging.getLogger("bench")

PARTS = (
    "load_test_sse",
    "benchmark_events",
    "push_vs_poll",
    "ceiling",
    "capacity",
    "storm",
    "scaling",
    "embedded_growth",
)
RESULTS = ROOT / "bench" / "results"
LAYERS = {
    "in-process feed (bench/synthetic.py), incl. publishing": "bench/synthetic.py",
    "Publisher.publish (lag metric + Hub.publish)": "Publisher.publish (",
    "Hub.publish: fan-out into buffers, incl. framing": "Hub.publish (",
    "SSE framing (app/sse.py event_frame)": "event_frame (",
    "stream loop (app/stream.py)": "app/stream.py",
    "uvicorn HTTP protocol, incl. socket writes": "uvicorn/protocols",
    "Starlette middleware send wrappers": "starlette/middleware/errors.py",
    "asyncio.timeout (stream waits and sends)": "asyncio/timeouts.py",
    "prometheus_client": "prometheus_client",
    "hub write-out to parked subscribers, incl. socket writes": "Hub._write_out (",
    "direct writer (app/direct.py), incl. socket writes": "app/direct.py",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("parts", nargs="*", choices=("all", *PARTS), metavar="part")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="fold the named parts' results into --output instead of printing them",
    )
    parser.add_argument("--clients", type=int, help="SSE clients (load_test_sse, ceiling)")
    parser.add_argument("--duration", type=float, help="seconds of each measured window")
    parser.add_argument("--sessions", type=int, help="sessions the clients spread over")
    parser.add_argument("--rate", type=float, help="events/s written or generated, all sessions")
    parser.add_argument("--server", choices=["ours", "raw", "seed"], default="ours")
    parser.add_argument(
        "--feed",
        choices=["synthetic", "auto", "change_stream", "poll"],
        default="synthetic",
        help="ours: the in-process feed, or a database-fed one (with a writer process)",
    )
    parser.add_argument("--events", type=int, help="events per mode (benchmark_events)")
    parser.add_argument(
        "--sizes", help="stored events to measure at, comma-separated (embedded_growth)"
    )
    parser.add_argument("--repeat", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="tiny, fast configuration")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy runs")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not args.parts or "all" in args.parts:
        args.parts, args.part = list(PARTS), "all"
    else:
        args.part = args.parts[0] if len(args.parts) == 1 else "several"
    if args.merge and args.part == "all":
        parser.error("--merge takes the parts to merge")
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.repeat < 1 or (args.duration is not None and not 0 < args.duration <= 600):
        parser.error("--repeat must be >= 1 and --duration in (0, 600]")
    return args


def _pick(value: Any, default: Any, quick: Any, args: argparse.Namespace) -> Any:
    if value is not None:
        return value
    return quick if args.quick else default


def _summary(raw: Path | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    samples, hotspots = profiling.summarize(raw)
    return {
        "path": str(raw.relative_to(ROOT)),
        "samples": samples,
        "hotspots": [h.__dict__ for h in hotspots],
        "layers": {name: profiling.inclusive_share(raw, needle) for name, needle in LAYERS.items()},
    }


async def _repeated(found: Backends, load: Load, repeat: int) -> dict[str, Any]:
    runs = [await measure(found, load) for _ in range(repeat)]
    keys = ("deliveries_per_s", "server_cpu", "cpu_us_per_delivery", "server_rss_mb")
    keys += ("client_cpu", "reconnects", "errors", "db_reads_per_s")
    middle: dict[str, Any] = {key: median(run[key] for run in runs) for key in keys}
    for key in ("p50", "p95", "p99", "max"):
        middle[key] = median(run["latency_ms"][key] for run in runs)
    return {"config": load.__dict__, "runs": runs, "median": middle}


async def part_latency(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    load = Load(
        clients=_pick(args.clients, 1000, 100, args),
        sessions=_pick(args.sessions, 100, 10, args),
        rate=_pick(args.rate, 1000.0, 200.0, args),
        duration=_pick(args.duration, 10.0, 2.0, args),
        warmup=1.0 if args.quick else 2.0,
        server=args.server,
        feed=args.feed,
    )
    result = await _repeated(found, load, args.repeat)
    if args.part == "all" and not args.quick:
        # The target leaves the fan-out open: 10 subscribers per session above, 100 here.
        heavier = dataclasses.replace(load, sessions=10)
        result["variants"] = [await _repeated(found, heavier, args.repeat)]
    if not args.no_profile and not args.quick:
        profiled = [("profile", load, "profile-latency.txt")]
        profiled += [
            (f"variant_profile_{i}", v_load, f"profile-latency-{i + 2}.txt")
            for i, v_load in enumerate(
                dataclasses.replace(load, **v["config"]) for v in result.get("variants", [])
            )
        ]
        for key, profiled_load, name in profiled:
            logger.info("load_test_sse: one more run under py-spy (not in the medians)")
            raw = RESULTS / name
            await measure(found, profiled_load, profile=raw)
            result[key] = _summary(raw if raw.exists() else None)
    return result


async def part_ceiling(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    raw = None if args.no_profile or args.quick else RESULTS / "profile-throughput.txt"
    result = await ceiling(
        found,
        clients=_pick(args.clients, 1000, 100, args),
        sessions=_pick(args.sessions, 10, 10, args),
        rate=_pick(args.rate, 4000.0, 500.0, args),
        duration=_pick(args.duration, 10.0, 2.0, args),
        repeat=args.repeat,
        profile=raw,
    )
    if raw is not None:
        result["profile_summary"] = _summary(raw if raw.exists() else None)
    return result


async def part_push(args: argparse.Namespace, found: Backends) -> list[dict[str, Any]]:
    return await push_vs_poll(
        found,
        clients=(1, 100) if args.quick else (1, 100, 1000),
        rate=_push_rate(args, found),
        duration=_pick(args.duration, 10.0, 2.0, args),
    )


def _push_rate(args: argparse.Namespace, found: Backends) -> float:
    if args.rate is not None and args.part == "push_vs_poll":
        return float(args.rate)
    # The stand-in cannot take more; a real MongoDB gets the latency target's 1,000 events/s.
    return 20.0 if found.embedded or args.quick else 1000.0


async def part_events(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    default = 500 if found.embedded else 2000
    events = _pick(args.events, default, 50, args)
    return await benchmark_events(
        found, events, queries=20 if args.quick else 100, simulated=200 if args.quick else 2000
    )


async def part_capacity(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    return await capacity(
        found, target=_pick(None, 10_000, 500, args), heartbeat=1.0 if args.quick else 5.0
    )


async def part_scaling(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    return await scaling(
        found,
        clients=_pick(args.clients, 1000, 100, args),
        sessions=_pick(args.sessions, 10, 2, args),
        rate=_pick(args.rate, 2000.0, 200.0, args),
        duration=_pick(args.duration, 10.0, 2.0, args),
        repeat=args.repeat,
    )


async def part_growth(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    default = "1000" if args.quick else "1000,10000,50000"
    sizes = sorted(int(size) for size in (args.sizes or default).split(","))
    return await embedded_growth(found.redis_url, sizes, reference_sizes=sizes[:1])


async def part_storm(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    clients = _pick(args.clients if args.part == "storm" else None, 4000, 400, args)
    return await run_storm(found, clients=clients, cap=clients // 2)


# Each part: its name on the command line, the key of its results, and what runs it.
_RUNNERS: tuple[tuple[str, str, Callable[[argparse.Namespace, Backends], Awaitable[Any]]], ...] = (
    ("benchmark_events", "events", part_events),
    ("load_test_sse", "latency", part_latency),
    ("ceiling", "ceiling", part_ceiling),
    ("push_vs_poll", "push_vs_poll", part_push),
    ("capacity", "capacity", part_capacity),
    ("storm", "storm", part_storm),
    ("scaling", "scaling", part_scaling),
    ("embedded_growth", "growth", part_growth),
)


async def run(args: argparse.Namespace, found: Backends) -> dict[str, Any]:
    parts = tuple(args.parts)
    results: dict[str, Any] = {}
    for part, key, runner in _RUNNERS:
        if part in parts:
            results[key] = await runner(args, found)
            if part == "push_vs_poll":
                results["push_rate"] = _push_rate(args, found)
    results["profiles"] = _profiles(results)
    return results


def _profiles(results: dict[str, Any]) -> dict[str, Any]:
    profiles = {}
    if results.get("ceiling", {}).get("profile_summary"):
        profiles["throughput run (ceiling configuration)"] = results["ceiling"]["profile_summary"]
    latency = results.get("latency", {})
    if latency.get("profile"):
        per = latency["config"]["clients"] // latency["config"]["sessions"]
        profiles[f"latency run, {per} subscribers per session"] = latency["profile"]
    for i, variant in enumerate(latency.get("variants", [])):
        if latency.get(f"variant_profile_{i}"):
            per = variant["config"]["clients"] // variant["config"]["sessions"]
            profiles[f"latency run, {per} subscribers per session"] = latency[
                f"variant_profile_{i}"
            ]
    return profiles


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("httpx", "app.migrations", "embedded"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse(argv)
    raise_nofile()
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with backends() as found:
        logger.info("MongoDB: %s", found.mongo_kind)
        results = asyncio.run(run(args, found))
        results["facts"] = facts(found.mongo_kind)
        results["embedded"] = found.embedded
    results["elapsed_s"] = time.monotonic() - started
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["load_average_end"] = os.getloadavg()[0]
    results["repeat"] = args.repeat
    results["command"] = " ".join(["./dev bench", shlex.join(argv or sys.argv[1:])]).strip()
    name = "latest" if args.part == "all" else "-".join(args.parts)
    (RESULTS / f"{name}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    if args.merge:
        args.output.write_text(merge(args.output.read_text(), results, results["command"]))
        logger.info("merged into %s in %.0f s", args.output, results["elapsed_s"])
        return 0
    text = report.render(results)
    if args.part == "all":
        args.output.write_text(text)
        logger.info("wrote %s in %.0f s", args.output, results["elapsed_s"])
    elif args.part == "embedded_growth":
        section = report.growth_section(results)
        args.output.write_text(report.replace_section(args.output.read_text(), section))
        print("\n".join(section))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
