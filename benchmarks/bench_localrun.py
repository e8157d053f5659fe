"""Local pipeline throughput: executions of a stage's definition over a million readings.

Run: ``make bench ARGS=localrun``, or
``.venv/bin/python -m benchmarks.bench_localrun [--rows 1000000] [--stack prod] [--repeat 3]``. Prints a
Markdown table and writes ``build/benchmarks/localrun.json``.

The readings are simulated first (not timed: that is test data, not pipeline). Timed, end to end, is one
execution as ``make demo`` runs it: the UNLOAD in DuckDB, the Distributed Map (item sizes, batching,
children in worker processes running the real handler, Firehose writing gzip objects), the waits
(simulated), reconciliation's count and the KPI UNLOAD over the delivered records. Rows per second is
readings / wall time of that execution.

The execution runs ``--repeat`` times (default 3), each in a fresh run folder with fresh workers, and
each is checked against the ground truth. The figure is the fastest run's, timeit's rule (on a shared
machine, noise only ever adds time: here the same code runs anywhere between 6.5 s and 13 s); the
median and every run's wall time are printed and written beside it.

Peak memory is the peak resident set of the process tree during the execution: a sampler thread reads
``VmRSS`` of this process and every descendant from ``/proc`` every 100 ms and keeps the largest sum.
The simulator runs in its own process beforehand and the ground-truth check after, so neither counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUTPUT = Path("build/benchmarks/localrun.json")
TARGET_ROWS_PER_SECOND = 100_000
TARGET_PEAK_MIB = 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m benchmarks.bench_localrun", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="readings (rounded to whole device-days)")
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--interval", type=int, default=60, help="seconds between a device's readings")
    parser.add_argument("--repeat", type=int, default=3, help="executions; the fastest is the figure")
    parser.add_argument("--keep", type=Path, help="keep the run folders here instead of a temporary one")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: at least one execution")
    # Imported here, not at the top: the map's workers are spawned, and a spawned process first imports
    # the parent's main module (Python docs, multiprocessing, "Safe importing of main module"). Run as
    # ``-m benchmarks.bench_localrun``, that module is this one; with the pipeline imported at its top,
    # each worker would also import DuckDB, sqlglot and the Athena stand-in, about a second of CPU each,
    # on the cores the parent's UNLOAD is using. ``make demo`` (``-m tools.localrun``) is spared: a main
    # module named ``__main__`` is not re-imported.
    from tools.localrun import ground_truth, stack
    from tools.localrun.peak import PeakSampler
    from tools.localrun.run import LocalPipeline

    per_device = 86_400 // args.interval
    devices = max(1, round(args.rows / per_device))
    local = stack.load(args.stack)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-localrun-"))
    shutil.rmtree(root, ignore_errors=True)
    runs, peaks, checks = [], [], []
    try:
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "tools.simulate",
            "--devices",
            str(devices),
            "--interval",
            str(args.interval),
        ]
        subprocess.run(
            [*command, "--seed", "1", "--out", str(root / "simulated")], check=True, capture_output=True
        )
        simulate_seconds = time.perf_counter() - started
        day = sorted(p.name for p in (root / "simulated" / "daily-data").iterdir())[0]
        truth = root / "simulated" / "ground-truth.parquet"
        for number in range(args.repeat):
            folder = root / f"run-{number + 1}"
            sampler = PeakSampler()
            sampler.start()
            pipeline = LocalPipeline(local, folder, progress=sys.stderr.isatty())
            pipeline.put_raw(root / "simulated")
            run = pipeline.execute(day)
            peaks.append(sampler.stop())
            if run.status != "SUCCEEDED":
                print(f"run {number + 1} failed: {run.error}: {run.cause}", file=sys.stderr)
                return 1
            checks.append(ground_truth.check_ground_truth(pipeline, truth, [run.execution_id]).ok)
            pipeline.close()
            runs.append(run)
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)  # about 0.45 GB a run
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    run = min(runs, key=lambda r: r.wall_seconds)
    walls = [r.wall_seconds for r in runs]
    peak_mib = max(peaks)
    result = {
        "stack": args.stack,
        "source": local.source,
        "rows": run.rows,
        "devices": devices,
        "repeat": args.repeat,
        "wall_seconds": round(run.wall_seconds, 3),
        "rows_per_second": round(run.rows / run.wall_seconds),
        "median_wall_seconds": round(statistics.median(walls), 3),
        "median_rows_per_second": round(run.rows / statistics.median(walls)),
        "wall_seconds_of_each_run": [round(w, 3) for w in walls],
        "map_seconds": round(run.map_seconds, 3),
        "batches": run.batches,
        "child_executions": run.child_executions,
        "workers": run.workers,
        "state_transitions": run.parent_transitions + run.child_transitions,
        "lambda_invocations": run.lambda_invocations,
        "firehose_calls": run.firehose.calls,
        "firehose_bytes": run.firehose.bytes,
        "firehose_billed_bytes": run.firehose.billed_bytes,
        "peak_rss_mib_tree": round(peak_mib, 1),
        "simulate_seconds": round(simulate_seconds, 2),
        "ground_truth_ok": all(checks),
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
        "target_peak_mib": TARGET_PEAK_MIB,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["rows_per_second"] >= TARGET_ROWS_PER_SECOND and peak_mib < TARGET_PEAK_MIB and all(checks)
    print("| measure | value | target |\n|---|---|---|")
    print(
        f"| readings ({args.stack}, {result['workers']} workers, {os.cpu_count()} cores) | {run.rows:,} | 1,000,000 |"
    )
    print(
        f"| end-to-end wall time, fastest of {args.repeat} (median) | {run.wall_seconds:.2f} s "
        f"({statistics.median(walls):.2f} s) | |"
    )
    print(
        f"| throughput, fastest (median) | {result['rows_per_second']:,} rows/s "
        f"({result['median_rows_per_second']:,}) | >= {TARGET_ROWS_PER_SECOND:,} |"
    )
    print(f"| of which the map | {run.map_seconds:.2f} s | |")
    print(
        f"| child executions / Lambda invocations | {run.child_executions:,} / {run.lambda_invocations:,} | |"
    )
    print(f"| Firehose calls / billed bytes | {run.firehose.calls:,} / {run.firehose.billed_bytes:,} | |")
    print(
        f"| peak RSS of the process tree (parent + {run.workers} workers), largest | {peak_mib:,.0f} MiB | < {TARGET_PEAK_MIB:,} |"
    )
    ok_text = "ok" if all(checks) else "MISMATCH"
    print(f"| ground truth of every run (every row once, every verdict right) | {ok_text} | ok |")
    print(f"\nwrote {OUTPUT}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
