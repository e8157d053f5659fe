"""The Distributed Map's children, run in worker processes (or in-process when asked).

Each worker is a fresh process (a Lambda cold start): it sets the function's environment from the
rendered stack, imports the real handler and gives it this process's Firehose stand-in, then runs
child executions: the ItemProcessor's own states, through the same executor as the parent, with its
``lambda:invoke`` task calling ``lambda_handler`` in-process. A worker runs one child at a time, so the
number of workers (at most the map's MaxConcurrency) bounds the children in flight.

Process safety is this module's concern, not the handler's: workers are spawned, not forked
(``distmap``), and each builds and installs its own Firehose stand-in (``_configure``), so no client or
open file crosses a process boundary, and the detector keeps Lambda's one-client-per-environment model.

Items are built where they are used: a worker reads the rows of a batch from the UNLOAD files itself,
so the parent never materialises a million dicts.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tools.localrun import items as item_io
from tools.localrun.asl import Clock, Counters, Executor, StatesError
from tools.localrun.expressions import Template
from tools.localrun.firehose import FirehoseStandIn, FirehoseStats
from tools.localrun.machine import load

HANDLER_MODULE = "functions.detector.handler"


@dataclass(frozen=True)
class Faults:
    """Failures to inject, by batch number (0-based, in map order)."""

    lose_batches: frozenset[int] = frozenset()  # Firehose accepts the batch's records and never writes them
    duplicate_batches: frozenset[int] = frozenset()  # the batch's child runs twice (Express: at-least-once)
    # Firehose refuses every record of the batch, on every attempt of the first map run (an outage longer
    # than every retry); a redrive of the map run finds it over.
    fail_batches: frozenset[int] = frozenset()


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; plain data so it crosses process boundaries."""

    env: dict[str, str]
    stream_name: str
    staging: str
    log_dir: str  # the function's log output (CloudWatch Logs stands here)
    key: str  # the map run this configuration belongs to
    compression: str
    buffer_size_bytes: int
    arrival: datetime
    processor: dict[str, Any]  # the ItemProcessor definition
    partition: str
    function_arn: str
    function_name: str
    lambda_timeout_seconds: int
    lambda_memory_mb: int
    child_arn_prefix: str  # arn:...:execution:<state machine>/<label>:
    state_machine_arn: str
    files: list[str]  # s3 URIs, as the manifest lists them
    paths: list[str]  # the local files standing for them
    input_type: str
    csv_headers: list[str] | None
    csv_header_location: str | None
    selector: dict[str, Any] | None  # ItemSelector (raw), None when absent
    selector_shape: (
        list[tuple[str, str, Any]] | None
    )  # fast shape: (key, Value|Source|Index|literal, literal)
    map_input: Any
    map_context: dict[str, Any]
    variables: dict[str, Any]
    batch_input: Any  # evaluated BatchInput, or None
    batched: bool
    faults: Faults = Faults()
    fast: bool = True
    verify: bool = False
    handler_module: str = HANDLER_MODULE


@dataclass
class ChildOutcome:
    batch: int
    items: int
    status: str  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    execution_arn: str = ""


@dataclass(frozen=True)
class Invocation:
    """One invocation of the detector, as Lambda and CloudWatch Logs would see it.

    ``at`` is the simulated time the function was invoked (Lambda stamps its invocation metrics with the
    invocation time); ``emf`` holds the embedded-metric-format documents the handler printed to stdout
    during the invocation, verbatim (CloudWatch Logs extracts metrics from exactly these lines).
    """

    at: datetime
    duration_ms: float
    error: bool  # an unhandled function error (or a timeout): Lambda's ``Errors``
    emf: tuple[str, ...] = ()


@dataclass
class UnitResult:
    """What a worker did for one unit of batches."""

    children: list[ChildOutcome] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    firehose: FirehoseStats = field(default_factory=FirehoseStats)
    child_executions: int = 0
    seconds: float = 0.0


class LambdaContext:
    """The attributes of Lambda's context object the handler may read."""

    def __init__(self, config: WorkerConfig):
        self.function_name = config.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = config.function_arn
        self.memory_limit_in_mb = config.lambda_memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{config.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + config.lambda_timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _State:
    """Per-process state: set once by ``init``."""

    config: WorkerConfig
    handler: Any
    firehose: FirehoseStandIn
    machine: Any
    selector: Template | None
    tables: dict[int, Any]
    log: Any
    in_process: bool
    key: str | None
    clock: Clock | None  # the running child's clock (the invocation time of its Lambda calls)
    invocations: list[Invocation]  # of the unit being run


_S = _State()


def warm(env: dict[str, str], handler_module: str, log_dir: str, *, in_process: bool = False) -> None:
    """Cold start of a worker: the function's environment, its log file, the handler import.

    A worker process writes the function's logs and metrics (stdout, as in Lambda) to its own file under
    ``log_dir``, as CloudWatch Logs keeps them; in-process they are captured per invocation. Workers are
    started while the parent is still exporting the day, like warm Lambda environments, and serve every
    map run of the pipeline.
    """
    if not in_process:
        # Ctrl-C reaches the whole process group: the parent alone handles it (one line, exit 130) and
        # ends the workers, instead of every worker printing its own KeyboardInterrupt traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(NotImplementedError, AttributeError):  # give freed Arrow memory back promptly
        pa.jemalloc_set_decay_ms(0)
    log = open(Path(log_dir) / f"detector-{os.getpid()}.log", "a", buffering=1 << 16)  # noqa: SIM115
    _S.log = log
    _S.in_process = in_process
    _S.key = None
    _S.clock = None
    _S.invocations = []
    if not in_process:
        sys.stdout = log
    os.environ.update(env)
    module = sys.modules.get(handler_module)
    # The handler reads its environment when it is imported (its module-level Powertools Logger and
    # Metrics), as in a Lambda cold start, so an import from before this environment is redone: in-process
    # (tests run stages with different settings in one process) and in a spawned worker, whose re-import
    # of the parent's main module may have imported the handler already (one that imports it at its top).
    with contextlib.redirect_stdout(log):
        _S.handler = importlib.reload(module) if module else importlib.import_module(handler_module)


def init(config: WorkerConfig, *, in_process: bool = False) -> None:
    """Warm (in-process: cold-start) and configure for one map run."""
    warm(config.env, config.handler_module, config.log_dir, in_process=in_process)
    _configure(config)


def _configure(config: WorkerConfig) -> None:
    """Per map run: the Firehose client, the compiled ItemProcessor and ItemSelector, no cached files."""
    if getattr(_S, "firehose", None) is not None:
        _S.firehose.flush()
    firehose = FirehoseStandIn(
        stream_name=config.stream_name,
        staging=Path(config.staging),
        compression=config.compression,
        buffer_size_bytes=config.buffer_size_bytes,
        arrival=config.arrival,
    )
    install = getattr(_S.handler, "use_firehose_client", None)
    if install is None:
        raise RuntimeError(
            f"{config.handler_module} has no use_firehose_client(client): cannot install Firehose"
        )
    install(firehose)
    _S.config = config
    _S.firehose = firehose
    _S.machine = load(config.processor, partition=config.partition, where="ItemProcessor")
    _S.selector = Template(config.selector, "ItemSelector") if config.selector is not None else None
    _S.tables = {}
    _S.key = config.key


def _ensure(config: WorkerConfig | None) -> None:
    if config is not None and getattr(_S, "key", None) != config.key:
        _configure(config)


def _table(file_index: int) -> Any:
    table = _S.tables.get(file_index)
    if table is None:
        c = _S.config
        if _S.tables:  # one file at a time: units walk the files in order
            _S.tables.pop(next(iter(_S.tables)))
        table = item_io.read_table(
            Path(c.paths[file_index]), c.input_type, c.csv_headers, c.csv_header_location
        )
        _S.tables[file_index] = table
    return table


def item_sizes(config: WorkerConfig | None, file_index: int, first_index: int) -> np.ndarray:
    """Bytes of every item the file yields (after ItemSelector), as the batcher measures them."""
    _ensure(config)
    c = _S.config
    table = _table(file_index)
    n = item_io.row_count(table)
    source = c.files[file_index]
    if c.selector is None:
        return item_io.row_sizes(table)
    if c.selector_shape is not None:
        shape = c.selector_shape
        total = np.full(
            n, 2 + sum(item_io._json_len(k) + 1 for k, _, _ in shape) + len(shape) - 1, dtype=np.int64
        )
        if not isinstance(table, pa.Table) and any(kind == "Values" for _, kind, _ in shape):
            built = _items(file_index, 0, n, first_index)  # JSONL: row by row
            return np.fromiter((item_io._json_len(i) for i in built), dtype=np.int64, count=n)
        for _key, kind, literal in shape:
            if kind == "Value":
                total += item_io.row_sizes(table)
            elif kind == "Values":
                total += item_io.values_sizes(table, literal)
            elif kind == "Source":
                total += item_io._json_len(source)
            elif kind == "Index":
                total += item_io.index_digits(first_index, n)
            else:
                total += item_io._json_len(literal)
        return total
    built = _items(file_index, 0, n, first_index)
    return np.fromiter((item_io._json_len(i) for i in built), dtype=np.int64, count=n)


def _items(file_index: int, start: int, count: int, first_index: int) -> list[Any]:
    c = _S.config
    source = c.files[file_index]
    table = _table(file_index)
    if c.selector is not None and c.selector_shape is not None and isinstance(table, pa.Table):
        # An Arrow table holds scalar columns only (item_io.read_table): every row passes positional_ok,
        # and the items are built from its columns without a dict per row.
        part = table.slice(start, count)
        built = item_io.shaped(part, c.selector_shape, source, first_index)
        if c.verify:
            _verify_shaped(part.to_pylist(), built, source, first_index)
        return built
    rows = item_io.rows(table, start, count)
    if c.selector is None:
        return rows
    if c.selector_shape is not None:
        positional = any(kind == "Values" for _, kind, _ in c.selector_shape)
        if not positional or all(map(item_io.positional_ok, rows)):
            built = item_io.shaped(rows, c.selector_shape, source, first_index)
            if c.verify:
                _verify_shaped(rows, built, source, first_index)
            return built
    return [_selected(row, first_index + offset, source) for offset, row in enumerate(rows)]


def _verify_shaped(rows: list[Any], built: list[Any], source: str, first_index: int) -> None:
    """The fast shapes must be what Step Functions' JSONata gives, item for item."""
    for offset, (row, got) in enumerate(zip(rows, built, strict=True)):
        expected = _selected(row, first_index + offset, source)
        if got != expected and repr(got) != repr(expected):  # repr: a NaN is not == itself
            raise AssertionError(f"fast ItemSelector gave {got!r}, JSONata {expected!r}")


def _selected(row: Any, index: int, source: str) -> Any:
    """One item as the ItemSelector's JSONata makes it."""
    c = _S.config
    assert _S.selector is not None
    context = dict(c.map_context, Map={"Item": {"Value": row, "Index": index, "Source": source}})
    bindings = dict(c.variables, states={"input": c.map_input, "context": context})
    return _S.selector.evaluate(bindings, fast=c.fast, verify=c.verify)


def _invoke(state: Any, arguments: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    c = _S.config
    function = arguments.get("FunctionName")
    if function not in (c.function_arn, c.function_name, f"{c.function_arn}:$LATEST"):
        raise StatesError("Lambda.ResourceNotFoundException", f"Function not found: {function}")
    unknown = sorted(set(arguments) - {"FunctionName", "Payload"})
    if unknown:
        raise StatesError(
            "States.Runtime", f"state {state.name!r}: lambda:invoke arguments {unknown} not emulated"
        )
    # Lambda hands the function a decoded copy of the JSON payload. The items of a child are built fresh
    # from the data file for this invocation (JSON types only: str, float, int, bool, None, dict, list)
    # and its BatchInput is copied per child, so the handler gets an unshared, JSON-shaped payload
    # without the cost of an encode/decode round trip per row.
    payload = arguments.get("Payload")
    at = _S.clock.now if _S.clock is not None else c.arrival
    # The handler's stdout is the function's log stream: capture it per invocation, keep the EMF
    # documents it printed (the metrics CloudWatch Logs would extract), then append it to the log file.
    captured = io.StringIO()
    started = time.monotonic()
    error = False
    try:
        with contextlib.redirect_stdout(captured):
            result = _S.handler.lambda_handler(payload, LambdaContext(c))
    except Exception as exc:  # an unhandled function error: Step Functions names it by its errorType
        error = True
        cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
        raise StatesError(type(exc).__name__, cause) from None
    finally:
        elapsed = time.monotonic() - started
        text = captured.getvalue()
        _S.log.write(text)
        timed_out = elapsed > c.lambda_timeout_seconds
        _S.invocations.append(
            Invocation(
                at=at,
                duration_ms=min(elapsed, c.lambda_timeout_seconds) * 1000.0,
                error=error or timed_out,
                emf=tuple(line for line in text.splitlines() if line.startswith("{") and '"_aws"' in line),
            )
        )
    limit = state.raw.get("TimeoutSeconds")
    if elapsed > c.lambda_timeout_seconds or (limit and elapsed > limit):
        raise StatesError("States.Timeout", f"the detector ran {elapsed:.1f} s")
    return {"Payload": json.loads(json.dumps(result)), "StatusCode": 200, "ExecutedVersion": "$LATEST"}


def run_unit(
    config: WorkerConfig | None, batches: list[tuple[int, list[tuple[int, int, int, int]]]]
) -> UnitResult:
    """Run the children of some batches: each batch is (batch number, [(file, start, count, first index)])."""
    _ensure(config)
    started = time.perf_counter()
    # Items and lines are acyclic: the cyclic collector would only rescan the growing heap of a batch.
    gc.disable()
    try:
        return _run_unit(batches, started)
    finally:
        gc.enable()


def _run_unit(batches: list[tuple[int, list[tuple[int, int, int, int]]]], started: float) -> UnitResult:
    c = _S.config
    out = UnitResult()
    _S.invocations = out.invocations
    before = FirehoseStats(**vars(_S.firehose.stats))
    for batch_no, segments in batches:
        items: list[Any] = []
        for file_index, start, count, first in segments:
            items.extend(_items(file_index, start, count, first))
        child_input: Any = items[0] if not c.batched else {"Items": items}
        if c.batched and c.batch_input is not None:
            child_input["BatchInput"] = json.loads(json.dumps(c.batch_input))
        runs = 2 if batch_no in c.faults.duplicate_batches else 1
        for _ in range(runs):
            _S.firehose.lose = batch_no in c.faults.lose_batches
            _S.firehose.outage = batch_no in c.faults.fail_batches
            out.children.append(_run_child(batch_no, len(items), child_input, out.counters))
            out.child_executions += 1
        _S.firehose.lose = _S.firehose.outage = False
    _S.firehose.flush()
    _S.log.flush()
    after = _S.firehose.stats
    out.firehose = FirehoseStats(**{k: getattr(after, k) - getattr(before, k) for k in vars(before)})
    out.seconds = time.perf_counter() - started
    return out


def _run_child(batch_no: int, count: int, child_input: Any, counters: Counters) -> ChildOutcome:
    c = _S.config
    name = str(uuid.uuid4())
    arn = c.child_arn_prefix + name
    executor = Executor(
        _S.machine,
        tasks={"lambda:invoke": _invoke},
        clock=Clock(c.arrival),
        state_machine_arn=c.state_machine_arn,
        fast=c.fast,
        verify=c.verify,
    )
    _S.clock = executor.clock
    try:
        result = executor.run(child_input, name=name, execution_id=arn, record_history=False)
    finally:
        _S.clock = None
    counters.add(result.counters)
    if result.status == "SUCCEEDED":
        return ChildOutcome(batch_no, count, "SUCCEEDED", output=result.output, execution_arn=arn)
    return ChildOutcome(batch_no, count, "FAILED", error=result.error, cause=result.cause, execution_arn=arn)
