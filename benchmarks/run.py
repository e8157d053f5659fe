"""``make bench``: every benchmark under benchmarks/, one after the other (figures in build/benchmarks/)."""

from __future__ import annotations

import sys

from benchmarks import bench_detector, bench_localrun, bench_tune

BENCHMARKS = {"detector": bench_detector.main, "localrun": bench_localrun.main, "tune": bench_tune.main}


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
        status |= BENCHMARKS[name]([])
    return status


if __name__ == "__main__":
    sys.exit(main())
