"""One stage's pipeline, wired locally: the object store, Athena, Firehose, the executor and the map.

``LocalPipeline`` owns a run folder (``<root>/buckets/<bucket>/...`` is S3, ``<root>/firehose/`` holds
what Firehose has accepted but not yet delivered) and runs the stage's definition once per day with the
execution input ``{"runDate": day}``, starting at 02:30 UTC the next day, as the daily schedule would.
"""

from __future__ import annotations

import pickle
import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tools.localrun import asl, metrics
from tools.localrun.athena import AthenaError, AthenaStandIn
from tools.localrun.distmap import MapRunner
from tools.localrun.firehose import FirehoseDelivery, FirehoseStats
from tools.localrun.machine import DefinitionError, load
from tools.localrun.stack import LocalStack
from tools.localrun.store import ObjectStore, StoreError
from tools.localrun.worker import Faults

EXECUTIONS_FILE = "executions.pickle"  # the run's executions and map runs, for a later redrive
RAW_HEADER = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude"


class InputError(ValueError):
    """User-supplied raw data the raw table could not read as intended."""


@dataclass
class RunSummary:
    """What one execution did."""

    run_date: str
    execution_id: str
    status: str
    error: str | None
    cause: str | None
    failed_state: str | None
    output: Any
    rows: int = 0
    batches: int = 0
    child_executions: int = 0
    workers: int = 0
    parent_transitions: int = 0
    child_transitions: int = 0
    lambda_invocations: int = 0
    retries: int = 0
    firehose: FirehoseStats = field(default_factory=FirehoseStats)
    wall_seconds: float = 0.0
    map_seconds: float = 0.0
    simulated_seconds: float = 0.0
    map_run_arn: str | None = None
    history: list[tuple[str, str, str]] = field(default_factory=list)
    redrive_count: int = 0
    redrivable: bool = False  # FAILED and RedriveExecution would continue it
    failed_batches: list[int] = field(default_factory=list)  # batches whose child failed (0-based)


class LocalPipeline:
    """A stage's pipeline on this machine."""

    def __init__(
        self,
        stack: LocalStack,
        root: Path,
        *,
        processes: int | None = None,
        faults: Faults | None = None,
        progress: bool = False,
        verify: bool = False,
        seed: int = 0,
        rows_per_file: int | None = None,
    ):
        self.stack = stack
        self.root = root
        self.store = ObjectStore(root / "buckets")
        ids = random.Random(seed)
        extra = {"rows_per_file": rows_per_file} if rows_per_file else {}
        (root / "athena").mkdir(parents=True, exist_ok=True)
        self.athena = AthenaStandIn(
            stack,
            self.store,
            id_factory=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)),
            temp_directory=root / "athena" / "tmp",
            **extra,
        )
        staging = root / "firehose" / stack.firehose.stream_name
        self.delivery = FirehoseDelivery(
            stream_name=stack.firehose.stream_name,
            store=self.store,
            bucket=stack.firehose.bucket,
            prefix=stack.firehose.prefix,
            compression=stack.firehose.compression,
            buffer_interval_seconds=stack.firehose.buffer_interval_seconds,
            staging=staging,
        )
        self.faults = faults or Faults()
        self.map_runner = MapRunner(
            stack=stack,
            store=self.store,
            staging=staging,
            log_dir=root / "logs",
            processes=processes,
            faults=self.faults,
            progress=progress,
            verify=verify,
        )
        # Refuse what AWS would refuse or fail on (tools.check_definition's own rules; the validators run in
        # make synth / check-definition), before anything runs.
        from tools.check_definition import rule_problems

        problems = rule_problems(stack.definition)
        if problems:
            raise DefinitionError(
                "the definition breaks rules AWS enforces:\n" + "\n".join(f"  {p.line()}" for p in problems)
            )
        self.machine = load(stack.definition, partition=_partition(stack.state_machine_arn))
        for state in self.machine.states.values():
            if state.type == "Map":
                self.map_runner.prewarm(state.extra["map"].max_concurrency)
        self.rng = random.Random(seed)
        self.verify = verify
        # What CloudWatch would hold for this pipeline's runs (tools/localrun/metrics.py).
        self.metrics = metrics.MetricRecorder()
        self.runs: list[RunSummary] = []
        self.results: dict[str, asl.ExecutionResult] = {}  # by execution ARN, for redrive
        self.skipped_inputs: list[tuple[str, str]] = []  # (path, why) of input put_raw left out
        self.buckets = {
            stack.exports[k] for k in ("rawBucket", "unloadBucket", "athenaResultsBucket", "analyticsBucket")
        }

    # ------------------------------------------------------------------------------------------ raw data
    def put_raw(self, source: Path) -> list[str]:
        """Copy ``<source>/daily-data/<day>/*.csv`` (or ``<source>/<day>/*.csv``) into the raw bucket.

        Everything else in the folder is left out and listed in ``skipped_inputs`` with the reason.
        """
        base = source / "daily-data" if (source / "daily-data").is_dir() else source
        entries = sorted(base.iterdir()) if base.is_dir() else []
        days = [p for p in entries if p.is_dir() and _is_day(p.name)]
        if not days:
            raise InputError(f"{source}: no <YYYY-MM-DD>/ folders of CSV files found")
        for entry in entries:
            if entry not in days:
                kind = "folder" if entry.is_dir() else "file"
                self.skipped_inputs.append(
                    (
                        str(entry),
                        f"{kind} outside a <YYYY-MM-DD>/ day folder: not a partition of the raw table",
                    )
                )
        bucket = self.stack.exports["rawBucket"]
        for day in days:
            for entry in sorted(day.iterdir()):
                reason = _skip_reason(entry)
                if reason:
                    self.skipped_inputs.append((str(entry), reason))
                    continue
                check_header(entry)
                target = self.store.path(bucket, f"daily-data/{day.name}/{entry.name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry, target)
        return [d.name for d in days]

    def put_raw_file(self, csv_file: Path, day: str) -> None:
        """One user CSV as the arrival day ``day``."""
        check_header(csv_file)
        target = self.store.path(self.stack.exports["rawBucket"], f"daily-data/{day}/{csv_file.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(csv_file, target)

    # ------------------------------------------------------------------------------------------ running
    def _tasks(self) -> dict[str, Any]:
        def athena_start(state: Any, args: dict[str, Any], ctx: dict[str, Any]) -> Any:
            try:
                return self.athena.start_query_execution(**args)
            except AthenaError as exc:
                if exc.code in ("InvalidRequestException", "TooManyRequestsException"):
                    raise asl.StatesError(f"Athena.{exc.code}", str(exc)) from None
                raise asl.StatesError("States.TaskFailed", f"state {state.name!r}: {exc}") from None
            except TypeError as exc:
                raise asl.StatesError("States.Runtime", f"state {state.name!r}: {exc}") from None

        def athena_results(state: Any, args: dict[str, Any], ctx: dict[str, Any]) -> Any:
            try:
                return self.athena.get_query_results(**args)
            except AthenaError as exc:
                raise asl.StatesError(f"Athena.{exc.code}", str(exc)) from None

        return {
            "athena:startQueryExecution.sync": athena_start,
            "athena:getQueryResults": athena_results,
            "aws-sdk:sfn:describeMapRun": self.map_runner.describe_map_run,
            "aws-sdk:s3:listObjectsV2": self._list_objects,
            "aws-sdk:s3:deleteObjects": self._delete_objects,
        }

    def _bucket(self, args: dict[str, Any]) -> str:
        bucket = args.get("Bucket")
        if bucket not in self.buckets:
            raise asl.StatesError("S3.NoSuchBucketException", f"bucket {bucket!r} is not one of the stage's")
        return str(bucket)

    def _list_objects(self, state: Any, args: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(args)
        prefix = str(args.get("Prefix", ""))
        found = self.store.list(bucket, prefix)[: int(args.get("MaxKeys", 1000))]
        result: dict[str, Any] = {
            "Name": bucket, "Prefix": prefix, "KeyCount": len(found), "MaxKeys": 1000, "IsTruncated": False,
        }  # fmt: skip
        if found:  # S3 omits Contents when nothing matches
            result["Contents"] = [{"Key": k, "Size": s, "StorageClass": "STANDARD"} for k, s in found]
        return result

    def _delete_objects(self, state: Any, args: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(args)
        objects = (args.get("Delete") or {}).get("Objects") or []
        if len(objects) > 1000:
            raise asl.StatesError("S3.MalformedXMLException", "DeleteObjects takes at most 1,000 keys")
        deleted = []
        for obj in objects:
            try:
                self.store.delete(bucket, obj["Key"])
            except (StoreError, KeyError, TypeError) as exc:
                raise asl.StatesError("S3.S3Exception", f"DeleteObjects: {exc}") from None
            deleted.append({"Key": obj["Key"]})
        return {} if (args.get("Delete") or {}).get("Quiet") else {"Deleted": deleted}

    def execute(
        self, run_date: str | None, *, name: str | None = None, start: datetime | None = None
    ) -> RunSummary:
        """Start one execution (input ``{"runDate": run_date}``) and run it to the end."""
        if start is None:
            day = date.fromisoformat(run_date) if run_date and _is_day(run_date) else date.today()
            start = datetime(day.year, day.month, day.day, 2, 30, tzinfo=UTC) + timedelta(days=1)
        executor = self._executor(start)
        name = name or f"local-{run_date or 'default'}-{len(self.runs) + 1}"
        execution_input = {"runDate": run_date} if run_date is not None else {}
        return self._track(lambda: executor.run(execution_input, name=name), run_date)

    def redrive(self, execution_id: str | None = None, *, after_seconds: float = 3600) -> RunSummary:
        """RedriveExecution of a failed execution (the last one by default), ``after_seconds`` after it
        stopped; raises ``asl.RedriveError`` when it is not redrivable."""
        if not self.results:
            raise asl.RedriveError("no execution to redrive")
        previous = self.results[execution_id] if execution_id else list(self.results.values())[-1]
        executor = self._executor(previous.stop + timedelta(seconds=after_seconds))
        return self._track(lambda: executor.redrive(previous), previous.variables.get("runDate"))

    def save_executions(self) -> None:
        """Keep what a later ``redrive`` needs beside the run: the executions and the map runs."""
        with (self.root / EXECUTIONS_FILE).open("wb") as f:
            pickle.dump(
                {"results": self.results, "map_runs": self.map_runner.runs, "metrics": self.metrics.points},
                f,
            )

    def load_executions(self) -> bool:
        """Take the executions and map runs a previous ``save_executions`` kept; False if there are none."""
        path = self.root / EXECUTIONS_FILE
        if not path.is_file():
            return False
        with path.open("rb") as f:
            kept = pickle.load(f)
        self.results.update(kept["results"])
        self.map_runner.runs.update(kept["map_runs"])
        # The earlier runs' metrics stay: a redrive's report evaluates the alarms over both.
        self.metrics.points[:0] = kept.get("metrics", [])
        return bool(self.results)

    def _executor(self, start: datetime) -> asl.Executor:
        clock = asl.Clock(start)
        clock.listeners.append(self.delivery.deliver_due)
        return asl.Executor(
            self.machine,
            tasks=self._tasks(),
            run_map=self.map_runner,
            clock=clock,
            state_machine_arn=self.stack.state_machine_arn,
            rng=self.rng,
            verify=self.verify,
        )

    def _track(self, run: Any, run_date: str | None) -> RunSummary:
        """Run an execution (or a redrive) and summarise what it did."""
        before_fh = FirehoseStats(**vars(self.map_runner.firehose))
        before_child = asl.Counters(
            transitions=self.map_runner.child_counters.transitions,
            lambda_invocations=self.map_runner.child_counters.lambda_invocations,
            retries=self.map_runner.child_counters.retries,
        )
        invocations_before = len(self.map_runner.invocations)
        children_before = {arn: r.children for arn, r in self.map_runner.runs.items()}
        started = time.perf_counter()
        result: asl.ExecutionResult = run()
        wall = time.perf_counter() - started
        self.results[result.execution_id] = result
        map_runs = [r for r in self.map_runner.runs.values() if r.execution_arn == result.execution_id]
        self._record_metrics(
            result,
            map_runs,
            self.map_runner.invocations[invocations_before:],
            children_before,
            FirehoseStats(
                **{k: getattr(self.map_runner.firehose, k) - getattr(before_fh, k) for k in vars(before_fh)}
            ),
        )
        child = self.map_runner.child_counters
        fh_now = self.map_runner.firehose
        summary = RunSummary(
            run_date=str(result.variables.get("runDate", run_date)),
            execution_id=result.execution_id,
            status=result.status,
            error=result.error,
            cause=result.cause,
            failed_state=result.failed_state,
            output=result.output,
            rows=sum(r.items_total for r in map_runs),
            batches=sum(r.batches for r in map_runs),
            child_executions=sum(r.children for r in map_runs),
            workers=max((r.workers for r in map_runs), default=0),
            parent_transitions=result.counters.transitions,
            child_transitions=child.transitions - before_child.transitions,
            lambda_invocations=child.lambda_invocations - before_child.lambda_invocations,
            retries=result.counters.retries + child.retries - before_child.retries,
            firehose=FirehoseStats(
                **{k: getattr(fh_now, k) - getattr(before_fh, k) for k in vars(before_fh)}
            ),
            wall_seconds=wall,
            map_seconds=sum(r.seconds for r in map_runs),
            simulated_seconds=(result.stop - result.start).total_seconds(),
            map_run_arn=map_runs[-1].arn if map_runs else None,
            history=result.counters.history,
            redrive_count=result.redrive_count,
            redrivable=result.status == "FAILED" and result.redrivable,
            failed_batches=[b for r in map_runs for b in r.failed_batches()],
        )
        self.runs.append(summary)
        return summary

    def _record_metrics(
        self,
        result: asl.ExecutionResult,
        map_runs: list[Any],
        invocations: list[Any],
        children_before: dict[str, int],
        firehose: FirehoseStats,
    ) -> None:
        """The datapoints AWS would publish for one execution (or redrive) that just ended."""
        redrive = result.redrive_count > 0
        metrics.record_execution(
            self.metrics,
            state_machine_arn=self.stack.state_machine_arn,
            status=result.status,
            start=result.start,
            stop=result.stop,
            redrive=redrive,
        )
        for record in map_runs:
            children = record.children - children_before.get(record.arn, 0)
            if not children:
                continue  # a map run this execution (or redrive) did not run
            at = datetime.fromisoformat(record.stop if redrive else record.start)
            metrics.record_map_run(
                self.metrics,
                function_name=self.stack.function_name,
                at=at,
                max_concurrency=record.max_concurrency,
                children=children,
            )
        metrics.record_invocations(
            self.metrics, function_name=self.stack.function_name, invocations=invocations
        )
        if invocations:
            metrics.record_firehose(
                self.metrics,
                stream_name=self.stack.firehose.stream_name,
                arrival=min(inv.at for inv in invocations),
                records=firehose.records,
                size=firehose.bytes,
                lost=firehose.lost_records,
                buffer_interval_seconds=self.stack.firehose.buffer_interval_seconds,
            )

    def settle(self) -> int:
        """Let Firehose deliver everything it accepted (as it would, one buffer interval later)."""
        far = datetime.now(UTC) + timedelta(days=3650)
        return self.delivery.deliver_due(far)

    def close(self) -> None:
        self.map_runner.close()
        self.athena.close()


def check_header(csv_file: Path) -> None:
    """The raw table skips the first line as the header: it must be the raw layout's header.

    The error names the columns that are missing, the ones that are not the raw table's, or the order.
    """
    with csv_file.open("rb") as f:
        first = f.readline().decode("utf-8", "replace").strip().lstrip("\ufeff")
    got = [c.strip().strip('"').lower() for c in first.split(",")] if first else []
    expected = RAW_HEADER.split(",")
    if got == expected and first.replace(" ", "").lower() == RAW_HEADER:
        return
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    details = []
    if missing:
        details.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        details.append(f"unexpected column(s) {', '.join(repr(c) for c in extra)}")
    if not details:
        if got == expected:
            details.append("quotes or spaces around the column names")
        elif sorted(got) == sorted(expected):
            details.append("the right columns in another order")
        else:
            details.append("a column given twice")
    raise InputError(
        f"{csv_file}: header {first[:120]!r}: {'; '.join(details)}; the raw table expects the header "
        f"{RAW_HEADER!r} (columns in that order, comma-separated, no quotes)"
    )


def _skip_reason(entry: Path) -> str | None:
    """Why ``put_raw`` leaves a day folder's entry out, or None for a raw CSV file it copies."""
    if entry.is_dir():
        return "folder inside a day folder: the raw table reads only the day folder's own files"
    if entry.name.startswith((".", "_")):
        return "hidden name (starts with '.' or '_'): Athena skips such files"
    if entry.suffix == ".csv":
        return None
    if entry.suffix.lower() == ".csv":
        return f"extension {entry.suffix!r} is not '.csv' (names are case-sensitive): rename it to read it"
    return f"not a .csv file (suffix {''.join(entry.suffixes) or 'none'!r}): only uncompressed .csv files are read"


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _partition(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 else "aws"
