"""`./dev bench`: the benchmark suite that regenerates BENCHMARKS.md (see bench/__main__.py)."""
