"""Running the Distributed Map (compiled by ``mapspec``): the manifest's items, batches, children, results.

What happens, in Step Functions' order (docs: state-map-distributed.html, input-output-itemreader.html,
input-output-itembatcher.html, input-output-resultwriter.html):

1. ``ItemReader`` (``s3:getObject``, ``ManifestType: ATHENA_DATA``): the manifest lists data files, one
   ``s3://`` URI per line; every ROW of those files is one item, in manifest order. ``Map.Item.Index``
   counts items across the whole run here (the docs do not say whether AWS restarts it per file;
   reconciliation counts (index, reading) pairs, so it holds either way); ``Map.Item.Source`` is the
   row's file.
2. ``ItemSelector`` shapes each item; ``ItemBatcher`` groups consecutive items greedily up to
   ``MaxItemsPerBatch`` and ``MaxInputBytesPerBatch`` with ``tools.tune.packing.batch_sizes`` (the planner's
   function, so both count batches alike). Each batch is one child execution's input
   ``{"Items": [...], "BatchInput": {...}}``.
3. Children run in worker processes, at most ``min(MaxConcurrency, CPU cores)`` at a time; a progress bar
   follows the items.
4. ``ToleratedFailurePercentage``: the share of failed items above which the run fails with
   ``States.ExceedToleratedFailureThreshold`` (``maprun``).
5. ``ResultWriter`` (``s3:putObject``): the children's results and a manifest, under the map run's id
   (``maprun.write_results``).
6. The run is kept for ``describeMapRun`` (``ItemCounts``, ``ExecutionCounts``).
7. Redrive (redrive-map-run.html): when the parent execution is redriven (``RedriveCount`` > 0) and this
   state's map run failed, the same map run is redriven instead of a new one started: only the batches
   whose child failed run again (EXPRESS children: new executions, StartExecution), the item and execution
   counts add up the new outcomes, ``RedriveCount`` rises, the ResultWriter writes the results again, and
   the state's result names the same ``MapRunArn``.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.localrun import items as item_io
from tools.localrun import worker
from tools.localrun.asl import Counters, StatesError
from tools.localrun.expressions import EvaluationError, Expression, Template
from tools.localrun.firehose import FirehoseStats
from tools.localrun.machine import CompiledState
from tools.localrun.maprun import MapRunRecord, write_results
from tools.localrun.mapspec import MapSpec
from tools.localrun.pool import WorkerPool
from tools.localrun.store import ObjectStore, StoreError
from tools.tune.packing import BatchingError, batch_sizes, json_size

DEFAULT_CONCURRENCY = 10_000  # MaxConcurrency 0 or unset (aws-facts)
UNIT_ROWS = 20_000  # rows per unit of work handed to a worker (progress granularity, IPC size)
MAX_ITEM_BYTES = 262_144  # an item, or a batch's input, is at most 256 KiB (Step Functions' payload limit)


@dataclass
class MapRunner:
    """Runs Distributed Map states for the parent executor."""

    stack: Any  # LocalStack
    store: ObjectStore
    staging: Path
    log_dir: Path
    processes: int | None = None  # None: min(MaxConcurrency, cores); 0: in this process
    faults: worker.Faults = field(default_factory=worker.Faults)
    progress: bool = False
    fast: bool = True
    verify: bool = False
    runs: dict[str, MapRunRecord] = field(default_factory=dict)
    firehose: FirehoseStats = field(default_factory=FirehoseStats)
    child_counters: Counters = field(default_factory=Counters)
    # Every detector invocation of every map run, in completion order (tools/localrun/metrics.py).
    invocations: list[worker.Invocation] = field(default_factory=list)
    last_worker_seconds: float = 0.0
    worker_pool: WorkerPool = field(init=False)

    def __post_init__(self) -> None:
        self.worker_pool = WorkerPool(
            env=self.stack.lambda_env, log_dir=self.log_dir, processes=self.processes
        )

    def __call__(  # noqa: PLR0917 - the executor's run_map calling convention
        self, state: CompiledState, data: Any, ctx: dict, variables: dict, counters: Counters, executor: Any
    ) -> dict[str, Any]:
        spec: MapSpec = state.extra["map"]
        previous = self._failed_run(spec, ctx)
        if previous is not None:  # 7. redrive
            return self._redrive(previous, spec, executor)
        started, start_iso = time.perf_counter(), executor.clock.iso()
        ev = self._evaluator(data, ctx, variables)
        files, paths = self._read_manifest(spec, ev(spec.reader_args))  # 1. ItemReader
        run_id = str(uuid.uuid4())
        concurrency = int(ev(spec.max_concurrency) or 0) or DEFAULT_CONCURRENCY
        tolerated = float(ev(spec.tolerated_percentage))
        batch_input = ev(spec.batch_input) if spec.batch_input is not None else None
        config = self._worker_config(spec, run_id, files, paths, data, ctx, variables, batch_input, executor)
        workers = self.worker_pool.workers(concurrency)
        pool = self.worker_pool.start(workers, config)
        with self._worker_deaths(spec.name):
            counts, batches = self._plan(spec, pool, config, ev, batch_input)  # 2. ItemBatcher
            units = _units(batches, counts, _unit_rows(sum(counts), workers))
            outcomes, unit_results = self._run_children(pool, config, units, sum(counts), spec.name)  # 3.
        self.last_worker_seconds = sum(r.seconds for r in unit_results)
        record = MapRunRecord(
            arn=self._arn("mapRun", spec.label) + run_id,
            execution_arn=ctx["Execution"]["Id"],
            status="RUNNING",
            start=start_iso,
            stop=start_iso,
            max_concurrency=concurrency,
            tolerated_percentage=tolerated,
            items_total=sum(counts),
            batches=len(batches),
            workers=workers or 1,
            state_name=spec.name,
            plan={
                "batches": batches,
                "counts": counts,
                "final": {},
                "outcomes": [],
                "config": config,
                "writer": ev(spec.writer_args) if spec.writer_args else None,
                "run_id": run_id,
                "workers": workers,
                "written": None,
            },
        )
        self._tally(record, spec, outcomes, unit_results, executor, started)  # 4. and 5.
        self.runs[record.arn] = record  # 6. kept for describeMapRun
        return record.state_result()

    def _failed_run(self, spec: MapSpec, ctx: dict) -> MapRunRecord | None:
        """A redriven execution's failed map run of this state, which it redrives instead of starting one."""
        if ctx["Execution"].get("RedriveCount", 0) == 0:
            return None
        previous = next(
            (
                r
                for r in self.runs.values()
                if r.execution_arn == ctx["Execution"]["Id"] and r.state_name == spec.name
            ),
            None,
        )
        return previous if previous is not None and previous.status == "FAILED" else None

    def _evaluator(self, data: Any, ctx: dict, variables: dict) -> Callable[[Any], Any]:
        """Evaluates the state's expressions and templates (other values pass through) against its input."""
        bindings = dict(variables, states={"input": data, "context": ctx})

        def ev(value: Any) -> Any:
            if isinstance(value, Expression | Template):
                try:
                    return value.evaluate(bindings, fast=self.fast, verify=self.verify)
                except EvaluationError as exc:
                    raise StatesError("States.QueryEvaluationError", str(exc)) from None
            return value

        return ev

    def _read_manifest(self, spec: MapSpec, reader: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The data files the manifest lists: their URIs and the local files standing for them."""
        try:
            manifest = self.store.get(str(reader["Bucket"]), str(reader["Key"])).decode()
            files = [line.strip() for line in manifest.splitlines() if line.strip()]
            paths = [str(self.store.path_of_uri(f)) for f in files]
        except (StoreError, UnicodeDecodeError) as exc:
            raise StatesError("States.ItemReaderFailed", f"state {spec.name!r}: {exc}") from None
        missing = [f for f, p in zip(files, paths, strict=True) if not Path(p).is_file()]
        if missing:
            raise StatesError(
                "States.ItemReaderFailed", f"state {spec.name!r}: manifest lists missing files {missing[:3]}"
            )
        return files, paths

    def _arn(self, kind: str, label: str) -> str:
        """``arn:...:<kind>:<state machine>/<label>:``, the prefix of map run and child execution ARNs."""
        sm_arn = self.stack.state_machine_arn
        return f"{sm_arn.rsplit(':', 2)[0]}:{kind}:{sm_arn.rsplit(':', 1)[-1]}/{label}:"

    def _worker_config(  # noqa: PLR0917 - one map run's every input
        self,
        spec: MapSpec,
        run_id: str,
        files: list[str],
        paths: list[str],
        data: Any,
        ctx: dict,
        variables: dict,
        batch_input: Any,
        executor: Any,
    ) -> worker.WorkerConfig:
        return worker.WorkerConfig(
            env=dict(self.stack.lambda_env),
            stream_name=self.stack.firehose.stream_name,
            staging=str(self.staging),
            log_dir=str(self.log_dir),
            key=run_id,
            compression=self.stack.firehose.compression,
            buffer_size_bytes=self.stack.firehose.buffer_size_mb * 1024 * 1024,
            arrival=executor.clock.now,
            processor=spec.processor,
            partition=executor.machine.partition,
            function_arn=self.stack.function_arn,
            function_name=self.stack.function_name,
            lambda_timeout_seconds=self.stack.lambda_timeout_seconds,
            lambda_memory_mb=int(self.stack.settings.get("lambda_memory_mb", 512)),
            child_arn_prefix=self._arn("execution", spec.label),
            state_machine_arn=self.stack.state_machine_arn,
            files=files,
            paths=paths,
            input_type=spec.input_type,
            csv_headers=spec.csv_headers,
            csv_header_location=spec.csv_header_location,
            selector=spec.selector,
            selector_shape=spec.selector_shape,
            map_input=data,
            map_context=ctx,
            variables=dict(variables),
            batch_input=batch_input,
            batched=spec.batched,
            faults=self.faults,
            fast=self.fast,
            verify=self.verify,
        )

    def _plan(
        self,
        spec: MapSpec,
        pool: ProcessPoolExecutor | None,
        config: worker.WorkerConfig,
        ev: Callable[[Any], Any],
        batch_input: Any,
    ) -> tuple[list[int], list[int]]:
        """Item sizes (in parallel, per file), then batches: (rows per file, items per batch)."""
        counts, sizes = self._sizes(pool, config)
        flat = np.concatenate(
            [np.asarray(_sizes_result(s), dtype=np.int64) for s in sizes] or [np.zeros(0, np.int64)]
        )
        if not spec.batched:
            every = flat.tolist()
            too_big = next((i for i, s in enumerate(every) if s > MAX_ITEM_BYTES), None)
            if too_big is not None:
                raise StatesError(
                    "States.DataLimitExceeded", f"state {spec.name!r}: item {too_big} exceeds 256 KiB"
                )
            return counts, [1] * sum(counts)
        try:
            return counts, batch_sizes(
                flat,
                max_items=int(ev(spec.max_items) or 100_000_000),
                max_bytes=int(ev(spec.max_bytes) or MAX_ITEM_BYTES),
                batch_input_bytes=json_size(batch_input) if batch_input is not None else 0,
            )
        except BatchingError as exc:
            raise StatesError("States.DataLimitExceeded", f"state {spec.name!r}: {exc}") from None

    def _sizes(
        self, pool: ProcessPoolExecutor | None, config: worker.WorkerConfig
    ) -> tuple[list[int], list[Any]]:
        # Parquet footers give the row counts, hence each file's first item index, before any row is read.
        counts = []
        for path in config.paths:
            if config.input_type == "PARQUET":
                import pyarrow.parquet as pq

                counts.append(pq.ParquetFile(path).metadata.num_rows)
            else:
                counts.append(None)
        if any(c is None for c in counts):
            # Text files: sizes first (they give the counts), sequentially so indexes are known.
            sizes, first = [], 0
            for i in range(len(config.paths)):
                s = (
                    pool.submit(worker.item_sizes, config, i, first).result()
                    if pool
                    else worker.item_sizes(None, i, first)
                )
                sizes.append(s)
                first += len(s)
            return [len(s) for s in sizes], sizes
        firsts = [sum(counts[:i]) for i in range(len(counts))]
        if pool is not None:  # futures, collected in file order by the batcher (``_sizes_result``)
            return counts, [pool.submit(worker.item_sizes, config, i, f) for i, f in enumerate(firsts)]
        try:
            sizes = [worker.item_sizes(None, i, f) for i, f in enumerate(firsts)]
        except item_io.ItemReaderError as exc:
            raise StatesError("States.ItemReaderFailed", str(exc)) from None
        return counts, sizes

    @contextmanager
    def _worker_deaths(self, name: str) -> Iterator[None]:
        """A worker process that dies fails the state with ``States.Runtime`` (and the pool goes)."""
        try:
            yield
        except BrokenProcessPool as exc:
            self.close()
            raise StatesError("States.Runtime", f"state {name!r}: a worker process died: {exc}") from None

    def _run_children(
        self,
        pool: ProcessPoolExecutor | None,
        config: worker.WorkerConfig,
        units: list[list],
        rows: int,
        name: str,
    ) -> tuple[list[worker.ChildOutcome], list[worker.UnitResult]]:
        """Run the units' children; their Firehose, counter and invocation figures join the runner's."""
        outcomes, unit_results = self._run_units(pool, config, units, rows, name)
        for result in unit_results:
            self.firehose.add(result.firehose)
            self.child_counters.add(result.counters)
            self.invocations.extend(result.invocations)
        return outcomes, unit_results

    def _run_units(
        self,
        pool: ProcessPoolExecutor | None,
        config: worker.WorkerConfig,
        units: list[list],
        total: int,
        name: str,
    ):
        from tqdm import tqdm

        outcomes: list[worker.ChildOutcome] = []
        results: list[worker.UnitResult] = []
        bar = tqdm(total=total, unit="row", desc=name, disable=not self.progress, leave=False)
        try:
            if pool is None:
                for unit in units:
                    result = worker.run_unit(None, unit)
                    results.append(result)
                    outcomes.extend(result.children)
                    bar.update(sum(seg[2] for _, segs in unit for seg in segs))
            else:
                pending = {pool.submit(worker.run_unit, config, unit): unit for unit in units}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        unit = pending.pop(future)
                        result = future.result()
                        results.append(result)
                        outcomes.extend(result.children)
                        bar.update(sum(seg[2] for _, segs in unit for seg in segs))
        finally:
            bar.close()
        outcomes.sort(key=lambda o: o.batch)
        return outcomes, results

    def _redrive(self, record: MapRunRecord, spec: MapSpec, executor: Any) -> dict[str, Any]:
        """Redrive a failed map run: run the failed batches' children again, then count every batch."""
        plan = record.plan
        failed = set(record.failed_batches())
        started = time.perf_counter()
        config = dataclasses.replace(
            plan["config"],
            key=f"{plan['run_id']}-redrive-{record.redrive_count + 1}",
            arrival=executor.clock.now,
            faults=dataclasses.replace(plan["config"].faults, fail_batches=frozenset()),
        )
        pool = self.worker_pool.start(plan["workers"], config)
        chosen = [
            batch for unit in _units(plan["batches"], plan["counts"]) for batch in unit if batch[0] in failed
        ]
        rows = sum(plan["batches"][b] for b, _segments in chosen)
        units = [chosen[i : i + 8] for i in range(0, len(chosen), 8)]
        with self._worker_deaths(spec.name):
            outcomes, unit_results = self._run_children(pool, config, units, rows, spec.name)
        record.redrive_count += 1
        self._tally(record, spec, outcomes, unit_results, executor, started)
        return record.state_result()

    def _tally(  # noqa: PLR0917 - the children's outcomes, of the first run or a redrive
        self,
        record: MapRunRecord,
        spec: MapSpec,
        outcomes: list[worker.ChildOutcome],
        unit_results: list[worker.UnitResult],
        executor: Any,
        started: float,
    ) -> None:
        """Count the children's outcomes in, judge the run (``MapRunRecord.count``), write the results."""
        results = record.count(outcomes, unit_results)
        plan = record.plan
        plan["written"] = write_results(self.store, plan["writer"], spec, plan["run_id"], record.arn, results)
        record.results_written = len(results)
        record.stop = executor.clock.iso()
        record.seconds += time.perf_counter() - started

    # -------------------------------------------------------------------------------------------------
    def prewarm(self, max_concurrency: Any) -> None:
        """Start the worker processes now (they import the handler while the parent exports the day)."""
        if isinstance(max_concurrency, int):
            self.worker_pool.prewarm(max_concurrency or DEFAULT_CONCURRENCY)

    def close(self) -> None:
        self.worker_pool.close()

    def abort(self) -> None:
        """Stop the workers now (Ctrl-C)."""
        self.worker_pool.abort()

    def describe_map_run(self, state: Any, arguments: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        arn = arguments.get("MapRunArn")
        record = self.runs.get(arn)
        if record is None:
            raise StatesError("Sfn.ResourceNotFoundException", f"map run {arn!r} does not exist")
        return record.describe()


def _unit_rows(total: int, workers: int) -> int:
    """Rows per unit: at least four units per worker, at most ``UNIT_ROWS``."""
    return max(1, min(UNIT_ROWS, total // max(1, (workers or 1) * 4)))


def _sizes_result(sizes: Any) -> Any:
    """A file's item sizes: the array itself, or a worker's future of it."""
    if not isinstance(sizes, Future):
        return sizes
    try:
        return sizes.result()
    except item_io.ItemReaderError as exc:
        raise StatesError("States.ItemReaderFailed", str(exc)) from None


def _units(
    batches: list[int], counts: list[int], unit_rows: int = UNIT_ROWS
) -> list[list[tuple[int, list[tuple[int, int, int, int]]]]]:
    """Group batches into units of about ``unit_rows`` rows (at least one batch each); every batch as
    segments (file, start, count, first item index). Several units per worker keep both cores busy to
    the end and the progress bar moving."""
    units: list[list[tuple[int, list[tuple[int, int, int, int]]]]] = []
    current: list[tuple[int, list[tuple[int, int, int, int]]]] = []
    rows_in_unit = 0
    file_index, offset, global_index = 0, 0, 0
    for batch_no, size in enumerate(batches):
        segments = []
        remaining = size
        while remaining:
            while offset >= counts[file_index]:
                file_index, offset = file_index + 1, 0
            take = min(remaining, counts[file_index] - offset)
            segments.append((file_index, offset, take, global_index))
            offset += take
            global_index += take
            remaining -= take
        current.append((batch_no, segments))
        rows_in_unit += size
        if rows_in_unit >= unit_rows:
            units.append(current)
            current, rows_in_unit = [], 0
    if current:
        units.append(current)
    return units
