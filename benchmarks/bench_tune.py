"""The capacity planner's own cost: time and peak memory of a plan at a hundred billion readings.

Run: ``python -m benchmarks.bench_tune [--rows 100000000000] [--stack prod]`` (or ``make bench``). Prints a
Markdown table and writes ``build/benchmarks/tune.json``.

A plan is arithmetic on the stage's settings and a few sizes, so its time and memory must not grow with
the rows it plans. Two figures, each at ``--rows`` and at 1,000 rows for comparison:

* the plan in this process (``tools.tune.plan_stack``, the stack file read and validated, sizes measured,
  the model run): wall time, and the peak of Python allocations during it (``tracemalloc``);
* the command a user types (``tools.tune.__main__.main`` with ``--stack ... --rows ...`` in a fresh child
  Python): wall time, and its peak resident set (``VmHWM`` from ``/proc/self/status``, Linux).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from tools.tune import costs, plan_stack

OUTPUT = Path("build/benchmarks/tune.json")
TARGET_SECONDS = 1.0
TARGET_PLAN_PEAK_MIB = 16.0
SMALL_ROWS = 1_000


def measure_plan(stack: str, rows: int, repeat: int = 3) -> dict[str, float]:
    """Best seconds of ``repeat`` plans, then one more under ``tracemalloc`` for the allocation peak (MiB).

    Without the benchmark file, so the figures do not depend on another benchmark's run; timed without
    ``tracemalloc``, which slows Python code several times over.
    """
    seconds = []
    for _ in range(repeat):
        costs.clear_caches()  # the batch the plan packs counts, as in a fresh process
        started = time.perf_counter()
        plan_stack(stack, rows, benchmark=None)
        seconds.append(time.perf_counter() - started)
    costs.clear_caches()
    tracemalloc.start()
    try:
        plan_stack(stack, rows, benchmark=None)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"seconds": min(seconds), "peak_mib": peak / 2**20}


# The command's own main, then its peak resident set from /proc/self/status. VmHWM belongs to the process
# image since exec; getrusage's ru_maxrss would also count the parent's memory copied at fork.
_PROBE = """
import contextlib, io, sys
from tools.tune.__main__ import main
with contextlib.redirect_stdout(io.StringIO()):
    status = main(sys.argv[1:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]), file=sys.stderr)
sys.exit(status)
"""


def measure_command(stack: str, rows: int) -> dict[str, float]:
    """Seconds and peak RSS (MiB) of the ``python -m tools.tune`` command's code in a child process (Linux)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "--stack", stack, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": int(done.stderr.split()[-1]) / 1024}


def run(stack: str, rows: int) -> dict[str, Any]:
    plan_stack(stack, SMALL_ROWS, benchmark=None)  # imports and first-use caches, not the plan's cost
    return {
        "stack": stack,
        "rows": rows,
        "plan": measure_plan(stack, rows),
        "plan_small": measure_plan(stack, SMALL_ROWS),
        "command": measure_command(stack, rows),
        "command_small": measure_command(stack, SMALL_ROWS),
        "targets": {"seconds": TARGET_SECONDS, "plan_peak_mib": TARGET_PLAN_PEAK_MIB},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def render(report: dict[str, Any]) -> str:
    rows, small = f"{report['rows']:,}", f"{SMALL_ROWS:,}"
    plan, plan_small = report["plan"], report["plan_small"]
    command, command_small = report["command"], report["command_small"]
    return "\n".join(
        [
            f"| planner, {report['stack']} | {rows} readings | {small} readings | target at {rows} |",
            "|---|---:|---:|---:|",
            f"| plan_stack wall time | {plan['seconds'] * 1000:,.0f} ms | {plan_small['seconds'] * 1000:,.0f} ms "
            f"| < {TARGET_SECONDS * 1000:,.0f} ms |",
            f"| plan_stack peak Python allocations | {plan['peak_mib']:,.2f} MiB | {plan_small['peak_mib']:,.2f} MiB "
            f"| < {TARGET_PLAN_PEAK_MIB:,.0f} MiB |",
            f"| `python -m tools.tune` wall time | {command['seconds']:,.2f} s | {command_small['seconds']:,.2f} s | |",
            f"| `python -m tools.tune` peak RSS | {command['peak_rss_mib']:,.0f} MiB "
            f"| {command_small['peak_rss_mib']:,.0f} MiB | |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_tune", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=100_000_000_000)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be positive")
    report = run(args.stack, args.rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwritten: {args.output}")
    plan = report["plan"]
    return 0 if plan["seconds"] < TARGET_SECONDS and plan["peak_mib"] < TARGET_PLAN_PEAK_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
