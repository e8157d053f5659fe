"""``make bench``: every benchmark under benchmarks/, one after the other (figures in build/benchmarks/)."""

from __future__ import annotations

import importlib
import sys

# Modules, imported when run: the local run's workers are spawned, and a spawned process first imports
# the parent's main module (this one, under ``make bench``), so what it imports at its top every worker
# imports too (see bench_localrun.main).
BENCHMARKS = {
    "detector": "benchmarks.bench_detector",
    "localrun": "benchmarks.bench_localrun",
    "tune": "benchmarks.bench_tune",
}


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (default: all) with their default arguments."""
    names = list(argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(BENCHMARKS[name]).main([])
    return status


if __name__ == "__main__":
    sys.exit(main())
