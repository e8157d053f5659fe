"""``python -m tools.localrun --stack dev``: simulate (or take) a day of readings and run the pipeline.

Examples::

    python -m tools.localrun --stack dev                            # 20 devices, 1 day, every 5 minutes
    python -m tools.localrun --stack prod --devices 200 --days 2
    python -m tools.localrun --stack dev --input readings.csv --date 2025-06-01
    python -m tools.localrun --stack dev --input my-raw-folder/     # <YYYY-MM-DD>/*.csv inside

Everything goes under ``out/<stage>/``: ``run/buckets/<bucket>/`` (the object store), ``run/logs/`` (the
detector's logs), ``report.md``, ``report.html``, ``anomalies.png`` and ``battery.png``. The exit status is
non-zero when an execution fails or the simulated ground truth is not met.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from functions.detector.config import DetectorConfig
from tools.localrun import report, stack
from tools.localrun.asl import DefinitionError
from tools.localrun.run import InputError, LocalPipeline
from tools.simulate import DEFAULT_START, Fleet, SimulationError, Thresholds, simulate

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.localrun", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", default="dev", help="stage to run (build/<stage>/ from make synth)")
    p.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    p.add_argument("--days", type=int, default=1, help="simulated days, one execution each (default 1)")
    p.add_argument(
        "--interval", type=int, default=300, help="seconds between a device's readings (default 300)"
    )
    p.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START, help="first simulated day")
    p.add_argument("--seed", type=int, default=42, help="simulator seed")
    p.add_argument("--anomaly-share", type=float, default=0.01)
    p.add_argument("--malformed-share", type=float, default=0.01)
    p.add_argument("--input", type=Path, help="your raw CSV file, or a folder of <YYYY-MM-DD>/*.csv")
    p.add_argument("--date", help="arrival day of an --input file (default: the day before today, UTC)")
    p.add_argument("--out", type=Path, help="output folder (default out/<stage>)")
    p.add_argument(
        "--processes", type=int, help="worker processes (default: min(MaxConcurrency, cores); 0: none)"
    )
    p.add_argument("--build-dir", type=Path, help="where make synth wrote the stages (default build/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        local = stack.load(args.stack, build_dir=args.build_dir)
    except (stack.StackError, ValueError) as exc:
        print(f"localrun: {exc}", file=sys.stderr)
        return 2
    if local.source == "settings":
        print(
            f"note: build/{args.stack}/ not found; rendered {args.stack} in-process (run `make synth` for the real one)"
        )
    out = args.out or ROOT / "out" / local.stage
    run_root = out / "run"
    shutil.rmtree(run_root, ignore_errors=True)
    try:
        pipeline = LocalPipeline(
            local, run_root, processes=args.processes, progress=sys.stderr.isatty() and not args.no_progress
        )
    except DefinitionError as exc:
        print(f"localrun: the {local.stage} definition cannot run locally: {exc}", file=sys.stderr)
        return 2

    truth = None
    try:
        if args.input is not None:
            if args.input.is_dir():
                days = pipeline.put_raw(args.input)
            elif args.input.is_file():
                day = args.date or (date.today().fromordinal(date.today().toordinal() - 1)).isoformat()
                pipeline.put_raw_file(args.input, day)
                days = [day]
            else:
                raise InputError(f"--input {args.input}: no such file or folder")
        else:
            # The simulator labels its ground truth with the thresholds the detector will apply: read
            # from the stage's Lambda environment by the detector's own parser, not retyped here.
            rules = DetectorConfig.from_env(local.lambda_env).thresholds
            fleet = Fleet(
                devices=args.devices,
                days=args.days,
                interval_seconds=args.interval,
                start=args.start,
                seed=args.seed,
                anomaly_share=args.anomaly_share,
                malformed_share=args.malformed_share,
                thresholds=Thresholds(**dataclasses.asdict(rules)),
            )
            sim_dir = run_root / "simulated"
            truth = simulate(fleet, sim_dir)
            print(
                f"simulated {truth.num_rows:,} readings: {args.devices} devices x {args.days} day(s) every {args.interval} s"
            )
            days = pipeline.put_raw(sim_dir)
    except (InputError, SimulationError) as exc:
        print(f"localrun: {exc}", file=sys.stderr)
        return 2
    for path, why in pipeline.skipped_inputs:
        print(f"skipped {path}: {why}")

    runs = []
    for day in days:
        summary = pipeline.execute(day)
        runs.append(summary)
        line = f"{summary.run_date}: {summary.status} in {summary.wall_seconds:.2f} s, {summary.rows:,} rows"
        if summary.status != "SUCCEEDED":
            line += f" -- failed in {summary.failed_state}: {summary.error}: {summary.cause}"
        print(line)
    pipeline.settle()
    check = None
    if truth is not None:
        check = report.check_ground_truth(pipeline, truth, [r.execution_id for r in runs])
        print(check.describe())
    paths = report.write_report(pipeline, runs, out, truth_check=check)
    print(report.print_summary(runs, pipeline))
    print(f"\nresults in {out}:")
    for name, path in paths.items():
        print(f"  {name:10} {path}")
    bucket = local.exports["analyticsBucket"]
    print(f"  {'records':10} {run_root / 'buckets' / bucket / 'analysis'}")
    print(f"  {'kpis':10} {run_root / 'buckets' / bucket / 'kpis'}")
    print(f"  {'logs':10} {run_root / 'logs'}")
    print(f"total {time.perf_counter() - started:.1f} s")
    pipeline.close()
    failed = any(r.status != "SUCCEEDED" for r in runs) or (check is not None and not check.ok)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
