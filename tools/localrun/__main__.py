"""``python -m tools.localrun --stack dev``: simulate (or take) a day of readings and run the pipeline.

Examples::

    python -m tools.localrun --stack dev                            # 20 devices, 1 day, every 5 minutes
    python -m tools.localrun --stack prod --devices 200 --days 2
    python -m tools.localrun --stack dev --input readings.csv --date 2025-06-01
    python -m tools.localrun --stack dev --input my-raw-folder/     # <YYYY-MM-DD>/*.csv inside

Every run is written into a folder of its own, ``out/<stage>/runs/<UTC time>/``, and
``out/<stage>/latest`` is switched to it only once the run is complete, so a refused or interrupted run
never destroys the previous result. Inside a run: ``run/buckets/<bucket>/`` (the object store),
``run/logs/`` (the detector's logs), ``report.md``, ``report.html``, ``anomalies.png``, ``battery.png`` and
``metrics.json`` (the CloudWatch datapoints AWS would have published for the run; the report's "Alarms"
table and the ``alarms:`` line printed after the run evaluate every alarm of the stage over them).
Everything a run is given is checked before ``out/<stage>/`` is touched; one run at a time may use it.
The exit status is 2 for refused input, 1 when an execution fails or the simulated ground truth is not
met, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from functions.detector.config import DetectorConfig
from spec.settings import SettingsError
from tools import stackfile
from tools.localrun import ground_truth, report, stack
from tools.localrun.asl import RedriveError
from tools.localrun.machine import DefinitionError
from tools.localrun.peak import CommandFigures, PeakSampler
from tools.localrun.run import InputError, LocalPipeline, check_header
from tools.localrun.summary import print_summary
from tools.localrun.worker import Faults
from tools.simulate import DEFAULT_START, Fleet, SimulationError, Thresholds, simulate

ROOT = Path(__file__).resolve().parents[2]
# Measured peak of a local run (make bench): ~865 MiB for a million readings, so about 907 bytes a
# reading; a run is refused when its estimate exceeds half of this machine's memory (--force overrides).
BYTES_PER_READING = 865 * 2**20 / 1_000_000
MEMORY_SHARE = 0.5
# Measured local throughput (make bench): about 106,000 readings a second, for the time estimate.
READINGS_PER_SECOND = 106_000
KEEP_RUNS = 3  # complete runs kept under out/<stage>/runs/ (the latest included)


class Refused(ValueError):
    """Something the run was given that it will not run with: one line, exit status 2."""


def _day(text: str) -> date:
    """``YYYY-MM-DD`` and a real calendar day (2025-02-30 is not)."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.replace("-", "").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a day as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a real date") from None


def _count(minimum: int) -> object:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value}: expected {minimum} or more")
        return value

    parse.__name__ = "integer"
    return parse


def physical_memory() -> int:
    """This machine's memory in bytes (0 when the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_size(readings: int, *, memory: int | None = None, force: bool = False) -> str:
    """Refuse a run too big for this machine; return the estimate line printed before starting."""
    memory = physical_memory() if memory is None else memory
    need = readings * BYTES_PER_READING
    minutes = readings / READINGS_PER_SECOND / 60
    estimate = f"{readings:,} readings: about {need / 2**30:.1f} GiB and {minutes:,.0f} min here"
    limit = int(memory * MEMORY_SHARE / BYTES_PER_READING) if memory else 0
    if limit and readings > limit and not force:
        raise Refused(
            f"{estimate}; this machine ({memory / 2**30:.1f} GiB) holds at most {limit:,} readings "
            f"(half its memory at {BYTES_PER_READING:.0f} bytes a reading). Fewer --devices/--days, a "
            "longer --interval, or --force (ARGS=--force with make) to run anyway"
        )
    return estimate


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line naming it (``make demo`` users need no usage dump to fix a date)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help lists the options)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m tools.localrun", description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", default="dev", help="stage to run (build/<stage>/ from make synth)")
    p.add_argument("--devices", type=_count(1), default=20, help="simulated devices (default 20)")
    p.add_argument("--days", type=_count(1), default=1, help="simulated days, one execution each (default 1)")
    p.add_argument(
        "--interval", type=_count(1), default=300, help="seconds between a device's readings (default 300)"
    )
    p.add_argument("--start", type=_day, default=DEFAULT_START, help="first simulated day (YYYY-MM-DD)")
    p.add_argument("--seed", type=int, default=42, help="simulator seed")
    p.add_argument("--anomaly-share", type=float, default=0.01)
    p.add_argument("--malformed-share", type=float, default=0.01)
    p.add_argument("--input", type=Path, help="your raw CSV file, or a folder of <YYYY-MM-DD>/*.csv")
    p.add_argument(
        "--date", type=_day, help="arrival day of an --input file (default: the day before today, UTC)"
    )
    p.add_argument("--out", type=Path, help="output folder (default out/<stage>)")
    p.add_argument(
        "--processes",
        type=_count(0),
        help="worker processes (default: min(MaxConcurrency, cores); 0: none)",
    )
    p.add_argument("--build-dir", type=Path, help="where make synth wrote the stages (default build/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="run even when the size estimate exceeds memory")
    p.add_argument(
        "--fail-batches",
        type=_count(0),
        default=0,
        help="the first N batches meet a Firehose outage longer than every retry (the run fails, redrivable)",
    )
    p.add_argument(
        "--redrive",
        action="store_true",
        help="redrive the last failed execution in the output folder (RedriveExecution), then report",
    )
    return p


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold ``<out>/.lock`` for the run; a second run on the same folder is refused, not raced."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(f"another run is using {out}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish(out: Path, folder: Path) -> Path:
    """Point ``<out>/latest`` at a complete run folder atomically, then drop runs beyond ``KEEP_RUNS``."""
    latest = out / "latest"
    staging = out / ".latest.new"
    staging.unlink(missing_ok=True)
    staging.symlink_to(folder.relative_to(out))
    os.replace(staging, latest)  # rename(2) over the old link: readers see the old run or the new one
    runs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())
    for old in runs[:-KEEP_RUNS]:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return latest


def _new_run_folder(out: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = out / "runs" / stamp
    folder.mkdir(parents=True)
    return folder


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    if args.redrive:
        return _redrive(args, started)
    try:
        local, plan = _prepare(args)
    except (Refused, InputError, SimulationError, SettingsError, stack.StackError) as exc:
        print(f"localrun: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlocalrun: interrupted before the run started", file=sys.stderr)
        return 130
    out = args.out or ROOT / "out" / local.stage
    folder: Path | None = None
    pipeline: LocalPipeline | None = None
    sampler = PeakSampler()
    sampler.start()
    try:
        with exclusive(out):
            folder = _new_run_folder(out)
            pipeline = LocalPipeline(
                local,
                folder / "run",
                processes=args.processes,
                progress=sys.stderr.isatty() and not args.no_progress,
                faults=Faults(fail_batches=frozenset(range(args.fail_batches))),
            )
            status = _run(
                args,
                local=local,
                fleet=plan,
                pipeline=pipeline,
                out=out,
                folder=folder,
                started=started,
                sampler=sampler,
            )
            folder = None  # published: keep it
            return status
    except Refused as exc:
        print(f"localrun: {exc}", file=sys.stderr)
        return 2
    except DefinitionError as exc:
        print(f"localrun: the {local.stage} definition cannot run locally: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if pipeline is not None:
            pipeline.map_runner.abort()
            pipeline = None
        kept = out / "latest"
        note = f"; {_shown(kept)} still holds the previous run" if kept.exists() else ""
        print(f"\nlocalrun: interrupted{note}", file=sys.stderr)
        return 130
    finally:
        sampler.stop()
        if pipeline is not None:
            pipeline.close()
        if folder is not None:  # refused or interrupted half way: the previous result stays current
            shutil.rmtree(folder, ignore_errors=True)


def _prepare(args: argparse.Namespace) -> tuple[stack.LocalStack, Fleet | None]:
    """Everything checked before the output folder is touched: stack, input, size."""
    stackfile.load(args.stack)
    local = stack.load(args.stack, build_dir=args.build_dir)
    if local.source == stack.IN_PROCESS:
        print(f"note: build/{args.stack}/ not found; rendered {args.stack} in-process as `make synth` does")
    if args.input is not None:
        if args.input.is_file():
            check_header(args.input)
            # About 60 bytes a raw CSV line: the file's size bounds the readings it holds.
            print(check_size(max(1, args.input.stat().st_size // 60), force=args.force))
        elif args.input.is_dir():
            if args.date is not None:
                raise Refused(
                    f"--date applies to an --input file; {args.input} is a folder of <day>/ folders"
                )
        else:
            raise InputError(f"--input {args.input}: no such file or folder")
        return local, None
    # The simulator labels its ground truth with the thresholds the detector will apply: read from the
    # stage's Lambda environment by the detector's own parser, not retyped here.
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
    print(check_size(args.devices * args.days * (86_400 // args.interval), force=args.force))
    return local, fleet


def _run(
    args: argparse.Namespace,
    *,
    local: stack.LocalStack,
    fleet: Fleet | None,
    pipeline: LocalPipeline,
    out: Path,
    folder: Path,
    started: float,
    sampler: PeakSampler,
) -> int:
    run_root = folder / "run"
    truth = None
    try:
        if fleet is None:
            if args.input.is_dir():
                days = pipeline.put_raw(args.input)
            else:
                day = (args.date or date.today() - timedelta(days=1)).isoformat()
                pipeline.put_raw_file(args.input, day)
                days = [day]
        else:
            sim_dir = run_root / "simulated"
            with sampler.window("simulate"):
                readings = simulate(fleet, sim_dir).num_rows
                # The check reads the ground truth from its file when it runs: not held during the run.
                truth = sim_dir / "ground-truth.parquet"
                days = pipeline.put_raw(sim_dir)
            print(
                f"simulated {readings:,} readings: {fleet.devices} devices x {fleet.days} day(s) every {fleet.interval_seconds} s"
            )
    except (InputError, SimulationError) as exc:
        raise Refused(str(exc)) from None
    for path, why in pipeline.skipped_inputs:
        print(f"skipped {path}: {why}")

    runs = []
    for day in days:
        with sampler.window("execution"):
            summary = pipeline.execute(day)
        runs.append(summary)
        line = f"{summary.run_date}: {summary.status} in {summary.wall_seconds:.2f} s, {summary.rows:,} rows"
        if summary.status != "SUCCEEDED":
            line += f" -- {report.failure_line(summary)}"
            line += "\n" + _redrive_hint(summary)
        print(line)
    pipeline.map_runner.close()  # the children are done: their processes' memory goes before the check
    with sampler.window("settle"):
        pipeline.save_executions()
        pipeline.settle()
    check = None
    if truth is not None:
        with sampler.window("ground truth"):
            check = ground_truth.check_ground_truth(pipeline, truth, [r.execution_id for r in runs])
        print(check.describe())
    with sampler.window("report"):
        paths = report.write_report(pipeline, runs, folder, truth_check=check)
        print(print_summary(runs, pipeline))
        print("\n".join(report.alarm_lines(pipeline, check)))
    latest = publish(out, folder)
    print(f"\nresults in {latest} (-> {folder.relative_to(out)}):")
    for name, path in paths.items():
        print(f"  {name:10} {latest / path.relative_to(folder)}")
    bucket = local.exports["analyticsBucket"]
    print(f"  {'records':10} {latest / 'run' / 'buckets' / bucket / 'analysis'}")
    print(f"  {'kpis':10} {latest / 'run' / 'buckets' / bucket / 'kpis'}")
    print(f"  {'logs':10} {latest / 'run' / 'logs'}")
    figures = CommandFigures(time.perf_counter() - started, sampler.stop(), sampler.windows)
    print(figures.describe())
    failed = any(r.status != "SUCCEEDED" for r in runs) or (check is not None and not check.ok)
    return 1 if failed else 0


def _redrive_hint(summary: Any) -> str:
    if summary.failed_batches:
        batches = f"batches {summary.failed_batches} (0-based, in map order) failed; "
    else:
        batches = ""
    if summary.redrivable:
        return f"  {batches}the run can be redriven: make demo ARGS=--redrive (RedriveExecution)"
    return f"  {batches}not redrivable: fix the cause and start a new run"


def _redrive(args: argparse.Namespace, started: float) -> int:
    """RedriveExecution of the last failed execution of the latest run, in that run's own folder."""
    try:
        stackfile.load(args.stack)
        local = stack.load(args.stack, build_dir=args.build_dir)
    except (SettingsError, stack.StackError) as exc:
        print(f"localrun: {exc}", file=sys.stderr)
        return 2
    out = args.out or ROOT / "out" / local.stage
    latest = out / "latest"
    if not (latest / "run").is_dir():
        print(f"localrun: nothing to redrive: {_shown(latest)} holds no run", file=sys.stderr)
        return 2
    with exclusive(out):
        folder = latest.resolve()
        pipeline = LocalPipeline(local, folder / "run", processes=args.processes)
        try:
            if not pipeline.load_executions():
                print(f"localrun: nothing to redrive: {_shown(latest)} kept no execution", file=sys.stderr)
                return 2
            try:
                summary = pipeline.redrive()
            except RedriveError as exc:
                print(f"localrun: cannot redrive: {exc}", file=sys.stderr)
                return 2
            pipeline.save_executions()
            line = f"{summary.run_date}: redrive {summary.redrive_count}: {summary.status}, {summary.rows:,} rows"
            if summary.status != "SUCCEEDED":
                line += f" -- {report.failure_line(summary)}\n" + _redrive_hint(summary)
            print(line)
            pipeline.settle()
            if summary.status == "SUCCEEDED":
                records = ground_truth.delivered_records(pipeline, [summary.execution_id])
                rows = {(r["runid"], r["sourceindex"], r["recordid"]) for r in records}
                ids = {r["recordid"] for r in records}
                print(
                    f"reconciliation: {summary.output['rowsDelivered']:,} of {summary.output['rowsProcessed']:,} "
                    f"rows delivered; on disk {len(rows):,} distinct rows, {len(ids):,} distinct record ids "
                    f"({len(records) - len(ids):,} duplicate deliveries counted once)"
                )
            paths = report.write_report(pipeline, [summary], folder)
            print("\n".join(report.alarm_lines(pipeline)))
            for name, path in paths.items():
                print(f"  {name:10} {latest / path.relative_to(folder)}")
        finally:
            pipeline.close()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0 if summary.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
