"""The Distributed Map: ItemReader over an Athena manifest, ItemSelector, ItemBatcher, children, results.

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
   ``States.ExceedToleratedFailureThreshold``.
5. ``ResultWriter`` (``s3:putObject``): ``<Prefix>/<map run id>/manifest.json`` plus ``SUCCEEDED_0.json[l]``
   (COMPACT: each child's output) and ``FAILED_0.json[l]`` (failed children as NONE shapes them); the
   state's result is ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``.
6. The run is kept for ``describeMapRun`` (``ItemCounts``, ``ExecutionCounts``).
7. Redrive (redrive-map-run.html): when the parent execution is redriven (``RedriveCount`` > 0) and this
   state's map run failed, the same map run is redriven instead of a new one started: only the batches
   whose child failed run again (EXPRESS children: new executions, StartExecution), the item and execution
   counts add up the new outcomes, ``RedriveCount`` rises, the ResultWriter writes the results again, and
   the state's result names the same ``MapRunArn``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.detector import schema
from spec import definition
from tools.localrun import items as item_io
from tools.localrun import worker
from tools.localrun.asl import Counters, StatesError
from tools.localrun.expressions import Expression, Template, is_expression
from tools.localrun.firehose import FirehoseStats
from tools.localrun.machine import CompiledState, DefinitionError, check_fields
from tools.localrun.store import ObjectStore, StoreError
from tools.tune.packing import BatchingError, batch_sizes, json_size

ITEM_READER_FIELDS = {"Resource", "ReaderConfig", "Arguments"}
READER_CONFIG_FIELDS = {"InputType", "ManifestType", "CSVHeaderLocation", "CSVHeaders"}
ITEM_BATCHER_FIELDS = {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
RESULT_WRITER_FIELDS = {"Resource", "Arguments", "WriterConfig"}
WRITER_CONFIG_FIELDS = {"Transformation", "OutputType"}
SELECTOR_PATHS = {
    "$states.context.Map.Item.Value": "Value",
    "$states.context.Map.Item.Source": "Source",
    "$states.context.Map.Item.Index": "Index",
    # The definition's positional item (spec.definition): computed column-wise; a test and
    # ``verify`` keep them equal to JSONata's result.
    definition.ITEM_ROW_EXPRESSION: "Values",
    definition.ITEM_FILE_EXPRESSION: "SourceName",
}
DEFAULT_CONCURRENCY = 10_000  # MaxConcurrency 0 or unset (aws-facts)
UNIT_ROWS = 20_000  # rows per unit of work handed to a worker (progress granularity, IPC size)


@dataclass
class MapSpec:
    """A Distributed Map state, checked and compiled."""

    name: str
    reader_args: Template
    input_type: str
    manifest_type: str
    csv_headers: list[str] | None
    csv_header_location: str | None
    selector: dict[str, Any] | None
    selector_template: Template | None
    selector_shape: list[tuple[str, str, Any]] | None
    batched: bool
    max_items: int | Expression | None
    max_bytes: int | Expression | None
    batch_input: Template | None
    max_concurrency: int | Expression
    tolerated_percentage: float | Expression
    label: str
    processor: dict[str, Any]
    execution_type: str
    writer_args: Template | None
    transformation: str
    output_type: str


def compile_map(name: str, raw: dict[str, Any], partition: str) -> MapSpec:
    """Check a Map state's fields and compile its expressions (``DefinitionError`` names the field)."""
    at = f"state {name!r}"
    prefix = f"arn:{partition}:states:::"
    reader = raw.get("ItemReader")
    if reader is None:
        raise DefinitionError(
            f"{at}: field 'ItemReader' is required locally (only DISTRIBUTED maps over S3 run)"
        )
    check_fields(f"{at}, field 'ItemReader'", reader, ITEM_READER_FIELDS)
    if reader.get("Resource") != prefix + "s3:getObject":
        raise DefinitionError(
            f"{at}, field 'ItemReader.Resource' is {reader.get('Resource')!r}; supported: {prefix}s3:getObject"
        )
    config = reader.get("ReaderConfig") or {}
    check_fields(f"{at}, field 'ItemReader.ReaderConfig'", config, READER_CONFIG_FIELDS)
    if config.get("ManifestType") != "ATHENA_DATA":
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.ManifestType' is {config.get('ManifestType')!r}; supported: ATHENA_DATA"
        )
    input_type = config.get("InputType")
    if input_type not in ("PARQUET", "CSV", "JSONL"):
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.InputType' is {input_type!r}; with ATHENA_DATA: PARQUET, CSV, JSONL"
        )
    header_location = config.get("CSVHeaderLocation")
    if input_type == "CSV" and header_location not in ("GIVEN", "FIRST_ROW"):
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.CSVHeaderLocation' must be GIVEN or FIRST_ROW"
        )
    if header_location == "GIVEN" and not config.get("CSVHeaders"):
        raise DefinitionError(f"{at}, field 'ItemReader.ReaderConfig.CSVHeaders' is required with GIVEN")
    if set(reader.get("Arguments") or {}) != {"Bucket", "Key"}:
        raise DefinitionError(f"{at}, field 'ItemReader.Arguments' must hold exactly Bucket and Key")

    selector = raw.get("ItemSelector")
    shape: list[tuple[str, str, Any]] | None = None
    if selector is not None:
        if not isinstance(selector, dict):
            raise DefinitionError(f"{at}, field 'ItemSelector' must be an object")
        shape = []
        for key, value in selector.items():
            if is_expression(value) and value[2:-2].strip() in SELECTOR_PATHS:
                kind = SELECTOR_PATHS[value[2:-2].strip()]
                shape.append((key, kind, list(schema.ITEM_FIELDS) if kind == "Values" else None))
            elif not _has_expression(value):
                shape.append((key, "literal", value))
            else:
                shape = None  # anything else is evaluated per item with JSONata
                break

    batcher = raw.get("ItemBatcher")
    max_items = max_bytes = None
    batch_input = None
    if batcher is not None:
        check_fields(f"{at}, field 'ItemBatcher'", batcher, ITEM_BATCHER_FIELDS)
        max_items = _int_or_expr(
            batcher.get("MaxItemsPerBatch"), f"{at}, field 'ItemBatcher.MaxItemsPerBatch'"
        )
        max_bytes = _int_or_expr(
            batcher.get("MaxInputBytesPerBatch"), f"{at}, field 'ItemBatcher.MaxInputBytesPerBatch'"
        )
        if max_items is None and max_bytes is None:
            raise DefinitionError(
                f"{at}, field 'ItemBatcher' needs MaxItemsPerBatch or MaxInputBytesPerBatch"
            )
        if "BatchInput" in batcher:
            batch_input = Template(batcher["BatchInput"], f"{at}, field 'ItemBatcher.BatchInput'")

    processor = raw.get("ItemProcessor") or {}
    pconfig = processor.get("ProcessorConfig") or {}
    check_fields(f"{at}, field 'ItemProcessor.ProcessorConfig'", pconfig, {"Mode", "ExecutionType"})
    if pconfig.get("Mode") != "DISTRIBUTED":
        raise DefinitionError(
            f"{at}, field 'ItemProcessor.ProcessorConfig.Mode' is {pconfig.get('Mode')!r}; only DISTRIBUTED runs locally"
        )
    if pconfig.get("ExecutionType") not in ("EXPRESS", "STANDARD"):
        raise DefinitionError(
            f"{at}, field 'ItemProcessor.ProcessorConfig.ExecutionType' must be EXPRESS or STANDARD"
        )
    label = raw.get("Label", name)
    if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", label):
        raise DefinitionError(f"{at}, field 'Label' must be 1-40 letters, digits, '-' or '_'")

    writer = raw.get("ResultWriter")
    writer_args = None
    transformation, output_type = "COMPACT", "JSON"
    if writer is not None:
        check_fields(f"{at}, field 'ResultWriter'", writer, RESULT_WRITER_FIELDS)
        wconfig = writer.get("WriterConfig") or {}
        check_fields(f"{at}, field 'ResultWriter.WriterConfig'", wconfig, WRITER_CONFIG_FIELDS)
        transformation = wconfig.get("Transformation", "NONE")
        output_type = wconfig.get("OutputType", "JSON")
        if transformation not in ("COMPACT", "NONE") or output_type not in ("JSON", "JSONL"):
            raise DefinitionError(
                f"{at}, field 'ResultWriter.WriterConfig': Transformation COMPACT|NONE, OutputType JSON|JSONL"
            )
        if "Resource" in writer:
            if writer["Resource"] != prefix + "s3:putObject":
                raise DefinitionError(f"{at}, field 'ResultWriter.Resource' must be {prefix}s3:putObject")
            if set(writer.get("Arguments") or {}) - {"Bucket", "Prefix"}:
                raise DefinitionError(f"{at}, field 'ResultWriter.Arguments' may hold Bucket and Prefix only")
            writer_args = Template(writer.get("Arguments") or {}, f"{at}, field 'ResultWriter.Arguments'")

    concurrency = _int_or_expr(raw.get("MaxConcurrency", 0), f"{at}, field 'MaxConcurrency'")
    tolerated = raw.get("ToleratedFailurePercentage", 0)
    if is_expression(tolerated):
        tolerated = Expression(tolerated, f"{at}, field 'ToleratedFailurePercentage'")
    elif not isinstance(tolerated, int | float) or not 0 <= tolerated <= 100:
        raise DefinitionError(f"{at}, field 'ToleratedFailurePercentage' must be 0-100")
    return MapSpec(
        name=name,
        reader_args=Template(reader["Arguments"], f"{at}, field 'ItemReader.Arguments'"),
        input_type=input_type,
        manifest_type="ATHENA_DATA",
        csv_headers=list(config.get("CSVHeaders") or []) or None,
        csv_header_location=header_location,
        selector=selector,
        selector_template=Template(selector, f"{at}, field 'ItemSelector'") if selector is not None else None,
        selector_shape=shape,
        batched=batcher is not None,
        max_items=max_items,
        max_bytes=max_bytes,
        batch_input=batch_input,
        max_concurrency=concurrency if concurrency is not None else 0,
        tolerated_percentage=tolerated,
        label=label,
        processor=processor,
        execution_type=pconfig["ExecutionType"],
        writer_args=writer_args,
        transformation=transformation,
        output_type=output_type,
    )


def _has_expression(value: Any) -> bool:
    if is_expression(value):
        return True
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def _int_or_expr(value: Any, where: str) -> int | Expression | None:
    if value is None:
        return None
    if is_expression(value):
        return Expression(value, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DefinitionError(
            f"{where} must be a non-negative integer or a JSONata expression, got {value!r}"
        )
    return value


@dataclass
class MapRunRecord:
    """A finished map run, as ``describeMapRun`` reports it, plus local figures."""

    arn: str
    execution_arn: str
    status: str
    start: str
    stop: str
    max_concurrency: int
    tolerated_percentage: float
    items_total: int
    items_succeeded: int
    items_failed: int
    children: int
    children_failed: int
    batches: int
    workers: int
    seconds: float
    results_written: int
    redrive_count: int = 0
    state_name: str = ""
    # What a redrive needs: the batch plan, each batch's last outcome, the configuration and writer args.
    plan: dict[str, Any] = field(default_factory=dict, repr=False)

    def failed_batches(self) -> list[int]:
        return sorted(b for b, o in self.plan.get("final", {}).items() if o.status == "FAILED")

    def describe(self) -> dict[str, Any]:
        return {
            "MapRunArn": self.arn,
            "ExecutionArn": self.execution_arn,
            "Status": self.status,
            "StartDate": self.start,
            "StopDate": self.stop,
            "MaxConcurrency": self.max_concurrency,
            "ToleratedFailurePercentage": self.tolerated_percentage,
            "ToleratedFailureCount": 0,
            "RedriveCount": self.redrive_count,
            "ItemCounts": {
                "Pending": 0, "Running": 0, "Succeeded": self.items_succeeded, "Failed": self.items_failed,
                "TimedOut": 0, "Aborted": 0, "Total": self.items_total, "ResultsWritten": self.results_written,
                "FailuresNotRedrivable": 0, "PendingRedrive": 0,
            },
            "ExecutionCounts": {
                "Pending": 0, "Running": 0, "Succeeded": self.children - self.children_failed,
                "Failed": self.children_failed, "TimedOut": 0, "Aborted": 0, "Total": self.children,
                "ResultsWritten": self.children, "FailuresNotRedrivable": 0, "PendingRedrive": 0,
            },
        }  # fmt: skip


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
    _executor: ProcessPoolExecutor | None = None
    _executor_workers: int = 0
    _config: Any = None

    def __call__(  # noqa: PLR0917 - the executor's run_map calling convention
        self, state: CompiledState, data: Any, ctx: dict, variables: dict, counters: Counters, executor: Any
    ) -> dict[str, Any]:
        spec: MapSpec = state.extra["map"]
        if ctx["Execution"].get("RedriveCount", 0) > 0:
            previous = next(
                (
                    r
                    for r in self.runs.values()
                    if r.execution_arn == ctx["Execution"]["Id"] and r.state_name == spec.name
                ),
                None,
            )
            if previous is not None and previous.status == "FAILED":
                return self._redrive(previous, spec, executor)
        started = time.perf_counter()
        start_iso = executor.clock.iso()
        bindings = dict(variables, states={"input": data, "context": ctx})

        def ev(value: Any) -> Any:
            if isinstance(value, Expression | Template):
                from tools.localrun.expressions import EvaluationError

                try:
                    return value.evaluate(bindings, fast=self.fast, verify=self.verify)
                except EvaluationError as exc:
                    raise StatesError("States.QueryEvaluationError", str(exc)) from None
            return value

        # 1. the manifest
        reader = ev(spec.reader_args)
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

        sm_arn = self.stack.state_machine_arn
        sm_name = sm_arn.rsplit(":", 1)[-1]
        arn_base = sm_arn.rsplit(":", 2)[0]
        run_id = str(uuid.uuid4())
        map_run_arn = f"{arn_base}:mapRun:{sm_name}/{spec.label}:{run_id}"
        concurrency = int(ev(spec.max_concurrency) or 0) or DEFAULT_CONCURRENCY
        tolerated = float(ev(spec.tolerated_percentage))
        batch_input = ev(spec.batch_input) if spec.batch_input is not None else None
        config = worker.WorkerConfig(
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
            child_arn_prefix=f"{arn_base}:execution:{sm_name}/{spec.label}:",
            state_machine_arn=sm_arn,
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
        workers = self._workers(concurrency)
        pool = self._pool(workers, config)
        self._config = config
        try:
            # 2. item sizes (in parallel, per file), then batches
            counts, sizes = self._sizes(pool, config)
            total = sum(counts)
            # A generator: the batcher walks the first files' sizes while workers still measure the rest.
            flat = (s for file_sizes in sizes for s in _sizes_result(file_sizes).tolist())
            if spec.batched:
                try:
                    batches = batch_sizes(
                        flat,
                        max_items=int(ev(spec.max_items) or 100_000_000),
                        max_bytes=int(ev(spec.max_bytes) or 262_144),
                        batch_input_bytes=json_size(batch_input) if batch_input is not None else 0,
                    )
                except BatchingError as exc:
                    raise StatesError("States.DataLimitExceeded", f"state {spec.name!r}: {exc}") from None
            else:
                flat = list(flat)
                too_big = next((i for i, s in enumerate(flat) if s > 262_144), None)
                if too_big is not None:
                    raise StatesError(
                        "States.DataLimitExceeded", f"state {spec.name!r}: item {too_big} exceeds 256 KiB"
                    )
                batches = [1] * total
            target = max(1, min(UNIT_ROWS, total // max(1, (workers or 1) * 4)))
            units = _units(batches, counts, target)
            # 3. children
            outcomes, unit_results = self._run_units(pool, units, total, spec.name)
        except BrokenProcessPool as exc:
            self.close()
            raise StatesError(
                "States.Runtime", f"state {spec.name!r}: a worker process died: {exc}"
            ) from None
        self.last_worker_seconds = sum(r.seconds for r in unit_results)
        for result in unit_results:
            self.firehose.add(result.firehose)
            self.child_counters.add(result.counters)
            self.invocations.extend(result.invocations)
        children = sum(r.child_executions for r in unit_results)
        # An item counts once, whatever happened to duplicate children: its batch's last outcome decides.
        final: dict[int, worker.ChildOutcome] = {}
        for outcome in outcomes:
            final[outcome.batch] = outcome
        failed_items = sum(o.items for o in final.values() if o.status == "FAILED")
        status = "SUCCEEDED"
        # 4. tolerated failures
        if total and failed_items * 100.0 / total > tolerated:
            status = "FAILED"
        # 5. results
        written = self._write_results(
            ev(spec.writer_args) if spec.writer_args else None, spec, run_id, map_run_arn, outcomes
        )
        record = MapRunRecord(
            arn=map_run_arn,
            execution_arn=ctx["Execution"]["Id"],
            status=status,
            start=start_iso,
            stop=executor.clock.iso(),
            max_concurrency=concurrency,
            tolerated_percentage=tolerated,
            items_total=total,
            items_succeeded=total - failed_items,
            items_failed=failed_items,
            children=children,
            children_failed=sum(1 for o in outcomes if o.status == "FAILED"),
            batches=len(batches),
            workers=workers or 1,
            seconds=time.perf_counter() - started,
            results_written=len(outcomes),
            state_name=spec.name,
            plan={
                "batches": batches,
                "counts": counts,
                "final": final,
                "outcomes": outcomes,
                "config": config,
                "writer": ev(spec.writer_args) if spec.writer_args else None,
                "run_id": run_id,
                "workers": workers,
                "written": written,
            },
        )
        self.runs[map_run_arn] = record
        return self._outcome(record, spec)

    def _outcome(self, record: MapRunRecord, spec: MapSpec) -> dict[str, Any]:
        """The state's result, or the map's error when more items failed than tolerated."""
        if record.status == "FAILED":
            first = next((o for o in record.plan["final"].values() if o.status == "FAILED"), None)
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"map run {record.arn}: {record.items_failed} of {record.items_total} items failed "
                f"(tolerated {record.tolerated_percentage:g}%) in batches {record.failed_batches()}; "
                f"first failure: {first.error if first else ''}: {first.cause if first else ''}",
            )
        result: dict[str, Any] = {"MapRunArn": record.arn}
        if record.plan.get("written") is not None:
            result["ResultWriterDetails"] = record.plan["written"]
        return result

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
        workers = plan["workers"]
        pool = self._pool(workers, config)
        self._config = config
        chosen = [
            batch for unit in _units(plan["batches"], plan["counts"]) for batch in unit if batch[0] in failed
        ]
        rows = sum(plan["batches"][b] for b, _segments in chosen)
        units = [chosen[i : i + 8] for i in range(0, len(chosen), 8)]
        try:
            outcomes, unit_results = self._run_units(pool, units, rows, spec.name)
        except BrokenProcessPool as exc:
            self.close()
            raise StatesError(
                "States.Runtime", f"state {spec.name!r}: a worker process died: {exc}"
            ) from None
        for result in unit_results:
            self.firehose.add(result.firehose)
            self.child_counters.add(result.counters)
            self.invocations.extend(result.invocations)
        for outcome in outcomes:
            plan["final"][outcome.batch] = outcome
        plan["outcomes"] = sorted(plan["outcomes"] + outcomes, key=lambda o: o.batch)
        failed_items = sum(o.items for o in plan["final"].values() if o.status == "FAILED")
        record.items_failed = failed_items
        record.items_succeeded = record.items_total - failed_items
        record.children += sum(r.child_executions for r in unit_results)
        record.children_failed = sum(1 for o in plan["outcomes"] if o.status == "FAILED")
        record.redrive_count += 1
        record.stop = executor.clock.iso()
        record.seconds += time.perf_counter() - started
        total = record.items_total
        record.status = (
            "FAILED" if total and failed_items * 100.0 / total > record.tolerated_percentage else "SUCCEEDED"
        )
        final_outcomes = [plan["final"][b] for b in sorted(plan["final"])]
        plan["written"] = self._write_results(
            plan["writer"], spec, plan["run_id"], record.arn, final_outcomes
        )
        record.results_written = len(final_outcomes)
        return self._outcome(record, spec)

    # -------------------------------------------------------------------------------------------------
    def prewarm(self, max_concurrency: Any) -> None:
        """Start the worker processes now (they import the handler while the parent exports the day)."""
        if self.processes == 0 or not isinstance(max_concurrency, int):
            return
        workers = self._workers(max_concurrency or DEFAULT_CONCURRENCY)
        if workers > 0:
            self._process_pool(workers)

    def _workers(self, concurrency: int) -> int:
        cores = os.cpu_count() or 1
        return min(concurrency, cores) if self.processes is None else min(concurrency, self.processes)

    def _process_pool(self, workers: int) -> ProcessPoolExecutor:
        if self._executor is not None and self._executor_workers == workers:
            return self._executor
        self.close()
        # spawn: each worker is a clean interpreter (a cold start); no state leaks from the parent.
        context = multiprocessing.get_context("spawn")
        env = dict(self.stack.lambda_env)
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=worker.warm,
            initargs=(env, worker.HANDLER_MODULE, str(self.log_dir)),
        )
        self._executor_workers = workers
        # Workers start with SIGINT ignored (an ignored signal stays ignored across exec, and Python keeps
        # it so), so a Ctrl-C during their start-up reaches only the parent; worker.warm keeps it ignored.
        with _sigint_ignored():
            for _ in range(workers):  # start every worker now rather than on first use
                self._executor.submit(time.sleep, 0)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._executor_workers = 0

    def abort(self) -> None:
        """Stop the workers now (Ctrl-C): they ignore SIGINT, so the parent ends them, once."""
        executor, self._executor, self._executor_workers = self._executor, None, 0
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)

    def _pool(self, workers: int, config: worker.WorkerConfig) -> ProcessPoolExecutor | None:
        if workers <= 0 or self.processes == 0:
            worker.init(config, in_process=True)
            return None
        return self._process_pool(workers)

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

    def _run_units(self, pool: ProcessPoolExecutor | None, units: list[list], total: int, name: str):
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
                pending = {pool.submit(worker.run_unit, self._config, unit): unit for unit in units}
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

    def _write_results(
        self, args: dict | None, spec: MapSpec, run_id: str, map_run_arn: str, outcomes: list
    ) -> dict | None:
        if args is None:
            return None
        bucket, prefix = str(args.get("Bucket")), str(args.get("Prefix", "")).rstrip("/")
        base = f"{prefix}/{run_id}" if prefix else run_id
        succeeded = [o.output for o in outcomes if o.status == "SUCCEEDED"]
        failed = [
            {"ExecutionArn": o.execution_arn, "Status": "FAILED", "Error": o.error, "Cause": o.cause}
            for o in outcomes
            if o.status == "FAILED"
        ]
        if spec.transformation == "NONE":
            succeeded = [
                {"ExecutionArn": o.execution_arn, "Status": "SUCCEEDED", "Output": json.dumps(o.output)}
                for o in outcomes
                if o.status == "SUCCEEDED"
            ]
        ext = "jsonl" if spec.output_type == "JSONL" else "json"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for kind, entries in (("SUCCEEDED", succeeded), ("FAILED", failed)):
            if not entries:
                continue
            body = "".join(json.dumps(e) + "\n" for e in entries) if ext == "jsonl" else json.dumps(entries)
            key = f"{base}/{kind}_0.{ext}"
            self.store.put(bucket, key, body.encode())
            files[kind].append({"Key": key, "Size": len(body.encode())})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
        key = f"{base}/manifest.json"
        self.store.put(bucket, key, json.dumps(manifest).encode())
        return {"Bucket": bucket, "Key": key}

    def describe_map_run(self, state: Any, arguments: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        arn = arguments.get("MapRunArn")
        record = self.runs.get(arn)
        if record is None:
            raise StatesError("Sfn.ResourceNotFoundException", f"map run {arn!r} does not exist")
        return record.describe()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
