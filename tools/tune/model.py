"""The capacity and cost model: pure arithmetic from a stage's settings and a day's rows to counts, time, cost.

Layers, each a pure function of its inputs (no AWS, no Pulumi, no files):

1. Packing, exact and shared with the local run (``tools/localrun`` imports ``batch_sizes`` so both batch
   alike): ``batch_sizes`` (the ItemBatcher's greedy batching) and ``deliver`` (one batch's analysis lines
   through the detector's own packing, ``functions/detector/delivery.py``: records, PutRecordBatch calls
   and Firehose's 5 KB billing are computed there, in one place), and ``count_run`` over one run's
   per-item sizes.
2. Limits: ``effective_parallelism`` (which of MaxConcurrency, Lambda reserved concurrency, the account's
   Lambda concurrency and the Distributed Map's 10,000 binds) and ``firehose_load`` (whether the stream's
   Direct PUT quota binds at that parallelism).
3. ``plan``: the counts, wall time and cost of one run for this project's design and for the reference
   sample's design on the same rows, with recommendations, warnings and the floor (the readings' own
   bytes through Firehose).

A plan is arithmetic: equal batches are counted once with their number (an estimate has at most two
sizes), so it takes the same memory and time for any number of rows (benchmarks/bench_tune.py).

How bytes are counted: a batch is ``{"Items":[<item>,<item>,...],"BatchInput":<batch input>}`` in compact
JSON (no spaces), UTF-8. Step Functions does not document how it measures MaxInputBytesPerBatch; this
convention is the project's (inference), kept in one place so the planner and the local run agree.
Docs: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from functions.detector import delivery
from tools.tune.prices import Rates

GIB: Final = 1024**3
TIB: Final = 1024**4
MIB: Final = 1024**2

# {"Items":[]} and ,"BatchInput": in compact JSON.
_ITEMS_ENVELOPE_BYTES: Final = len('{"Items":[]}')
_BATCH_INPUT_KEY_BYTES: Final = len(',"BatchInput":')

# The parent workflow's states on the path a successful first run of a day takes (no old KPIs to delete,
# delivery reconciled at the first check), as built by ``components.definition.build_definition``; a test
# walks the real definition and keeps this table equal to it. (state, type, transitions)
# Step Functions bills a Standard workflow per state transition, and a Distributed Map state one more
# transition per child execution it starts (counted separately as ``batches``).
# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html
PARENT_STATES: Final = (
    ("PrepareRun", "Pass", 1),
    ("CheckRunDate", "Choice", 1),
    ("ExportDay", "Task athena:startQueryExecution.sync", 1),
    ("ListExported", "Task aws-sdk:s3:listObjectsV2", 1),
    ("HasRows", "Choice", 1),
    ("DetectAnomalies", "Map (DISTRIBUTED, EXPRESS children)", 1),
    ("WaitForDelivery", "Wait", 1),
    ("ReadMapRunCounts", "Task aws-sdk:sfn:describeMapRun", 1),
    ("CountDelivered", "Task athena:startQueryExecution.sync", 1),  # per reconciliation attempt
    ("ReadDeliveredCount", "Task athena:getQueryResults", 1),  # per reconciliation attempt
    ("CheckDelivered", "Choice", 1),  # per reconciliation attempt
    ("ListOldKpis", "Task aws-sdk:s3:listObjectsV2", 1),
    ("HasOldKpis", "Choice", 1),
    ("WriteKpis", "Task athena:startQueryExecution.sync", 1),
    ("Done", "Succeed", 1),
)
_PER_RECONCILE_ATTEMPT: Final = ("CountDelivered", "ReadDeliveredCount", "CheckDelivered")
# A further reconciliation attempt also passes WaitBeforeRecount.
_EXTRA_ATTEMPT_TRANSITIONS: Final = 1

# The reference sample: an Athena UNLOAD task, then a Distributed Map whose STANDARD children each run two
# task states (Lambda invoke, then firehose:putRecord of one record).
REFERENCE_PARENT_STATES: Final = (
    ("Unload", "Task athena:startQueryExecution.sync", 1),
    ("ProcessRows", "Map (DISTRIBUTED, STANDARD children)", 1),
)
REFERENCE_CHILD_TRANSITIONS: Final = 2

Severity = Literal["danger", "wasted", "target"]

# Demand above this multiple of a Firehose quota is dangerous, not just wasted: throttling that heavy
# outlasts the detector's bounded delivery retries (deliveryMaxAttempts with backoff).
FIREHOSE_DANGER_RATIO: Final = 2.0


# ------------------------------------------------------------------------------------------------------
# 1. Packing


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how this project measures items, batches and records."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def batch_envelope_bytes(batch_input_bytes: int) -> int:
    """Bytes of a batch with no items: ``{"Items":[]}``, plus ``,"BatchInput":<...>`` when there is one."""
    return _ITEMS_ENVELOPE_BYTES + (_BATCH_INPUT_KEY_BYTES + batch_input_bytes if batch_input_bytes else 0)


class BatchingError(ValueError):
    """An item cannot be placed in any batch, or the batching limits are impossible."""


def batch_sizes(
    item_bytes: Iterable[int], *, max_items: int, max_bytes: int, batch_input_bytes: int = 0
) -> list[int]:
    """Rows per batch, in order, as the ItemBatcher fills them.

    Greedy, like Step Functions: items join the current batch until it holds ``max_items`` or the next
    item would take the batch (envelope, items and the commas between them) above ``max_bytes``; then a
    new batch starts. An item too big for a batch on its own is an error (Step Functions fails the run).
    """
    if max_items < 1 or max_bytes < 1:
        raise BatchingError(f"max_items={max_items}, max_bytes={max_bytes}: both must be at least 1")
    envelope = batch_envelope_bytes(batch_input_bytes)
    sizes: list[int] = []
    count, size = 0, envelope
    for index, item in enumerate(item_bytes):
        if envelope + item > max_bytes:
            raise BatchingError(
                f"item {index} is {item:,} bytes; with the {envelope:,}-byte batch envelope it exceeds "
                f"MaxInputBytesPerBatch={max_bytes:,}"
            )
        if count and (count == max_items or size + 1 + item > max_bytes):
            sizes.append(count)
            count, size = 0, envelope
        size += item + (1 if count else 0)
        count += 1
    if count:
        sizes.append(count)
    return sizes


def items_per_batch(item_bytes: float, *, max_items: int, max_bytes: int, batch_input_bytes: int = 0) -> int:
    """Rows in a full batch when every item is ``item_bytes`` (rounded up): ``batch_sizes``' first entry."""
    item = math.ceil(item_bytes)
    room = max_bytes - batch_envelope_bytes(batch_input_bytes)
    fit = (room + 1) // (item + 1)  # k items take k*item + (k-1) commas
    if fit < 1:
        raise BatchingError(
            f"a {item:,}-byte item does not fit MaxInputBytesPerBatch={max_bytes:,} "
            f"with a {batch_envelope_bytes(batch_input_bytes):,}-byte envelope"
        )
    return min(max_items, fit)


@dataclass(frozen=True)
class BatchDelivery:
    """What one batch sends to Firehose."""

    rows: int
    firehose_records: int
    put_record_batch_calls: int
    firehose_bytes: int
    firehose_billed_bytes: int


def deliver(line_bytes: Sequence[int]) -> BatchDelivery:
    """One batch's analysis lines (sizes, newline included) packed by the detector's own code.

    The detector packs a batch's lines into records (``delivery.pack``), groups the records into
    PutRecordBatch calls (``delivery.plan_calls``) and Firehose bills each record rounded up to 5 KB
    (``delivery.billed_bytes``). The planner runs exactly those functions, with the detector's limits, on
    ASCII lines of the given sizes: packing looks only at each line's length, so the counts are the
    detector's for any lines of those sizes. Memory is one batch's lines, whatever the run's size.
    """
    if any(size < 1 for size in line_bytes):
        raise BatchingError(f"a {min(line_bytes)}-byte analysis line: every line holds at least its newline")
    try:
        records = delivery.pack("x" * (size - 1) for size in line_bytes)
    except ValueError as error:  # a line over the record limit: the detector refuses it the same way
        raise BatchingError(str(error)) from None
    calls = delivery.plan_calls(records)
    sizes = [len(record.data) for record in records]
    return BatchDelivery(
        rows=len(line_bytes),
        firehose_records=len(records),
        put_record_batch_calls=len(calls),
        firehose_bytes=sum(sizes),
        firehose_billed_bytes=delivery.billed_bytes(sizes),
    )


@functools.lru_cache(maxsize=64)
def deliver_uniform(rows: int, line_bytes: int) -> BatchDelivery:
    """``deliver`` for a batch of ``rows`` lines of ``line_bytes`` each (the estimate's batches), cached."""
    return deliver((line_bytes,) * rows)


@dataclass(frozen=True)
class RunCounts:
    """Exact counts of one run from per-item sizes: what the local run must count too."""

    batch_sizes: tuple[int, ...]
    child_executions: int
    lambda_invocations: int
    firehose_records: int
    put_record_batch_calls: int
    firehose_bytes: int

    @property
    def batches(self) -> int:
        return len(self.batch_sizes)


def count_run(
    item_bytes: Sequence[int],
    *,
    max_items: int,
    max_bytes: int,
    batch_input_bytes: int,
    record_bytes: Sequence[int],
) -> RunCounts:
    """Batches, children, invocations and Firehose traffic of a run, from each item's and record's size.

    ``record_bytes[i]`` is row i's analysis line (newline included). One child per batch, one Lambda
    invocation per child (no retries).
    """
    if len(record_bytes) != len(item_bytes):
        raise ValueError(f"{len(item_bytes)} item sizes but {len(record_bytes)} record sizes; one per row")
    sizes = batch_sizes(
        item_bytes, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input_bytes
    )
    records = calls = sent = 0
    start = 0
    for size in sizes:
        batch = deliver(record_bytes[start : start + size])
        records += batch.firehose_records
        calls += batch.put_record_batch_calls
        sent += batch.firehose_bytes
        start += size
    return RunCounts(
        batch_sizes=tuple(sizes),
        child_executions=len(sizes),
        lambda_invocations=len(sizes),
        firehose_records=records,
        put_record_batch_calls=calls,
        firehose_bytes=sent,
    )


# ------------------------------------------------------------------------------------------------------
# 2. Inputs and limits


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The settings the planner reads: a stage's, or a what-if variation of them.

    Unlike ``Settings`` this accepts values the stack validation refuses (MaxConcurrency 0, above the
    reserved concurrency) so the planner can explain why they are refused.
    """

    stage: str
    max_concurrency: int  # 0 = unlimited (the Distributed Map's 10,000)
    max_items_per_batch: int
    max_input_bytes_per_batch: int
    lambda_reserved_concurrency: int | None  # None = draws on the account's unreserved pool
    account_lambda_concurrency: int
    lambda_memory_mb: int
    lambda_architecture: str
    lambda_timeout_seconds: int
    firehose_buffer_interval_seconds: int
    firehose_buffer_size_mb: int
    firehose_compression: str
    target_window_minutes: int
    unload_format: str
    delivery_wait_seconds: int = 0  # the WaitForDelivery state after the map
    reconcile_attempts: int = 1  # a run that reconciles at the first check

    @classmethod
    def from_settings(cls, settings: Any) -> Capacity:
        """The planner's view of a stage's ``Settings``; the delivery wait as the workflow derives it."""
        from components.workflow import DELIVERY_MARGIN_SECONDS

        derived = {"delivery_wait_seconds", "reconcile_attempts"}
        names = {f for f in cls.__dataclass_fields__ if f not in derived}
        return cls(
            **{name: getattr(settings, name) for name in names},
            delivery_wait_seconds=settings.firehose_buffer_interval_seconds + DELIVERY_MARGIN_SECONDS,
        )


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A day's data: row count and the sizes that drive batching and delivery.

    ``item_sizes``/``record_sizes`` (one per row) switch the planner to exact counts; otherwise every
    item is ``item_bytes`` and every analysis line ``record_bytes`` (averages: an estimate).
    """

    rows: int
    item_bytes: float
    record_bytes: float
    batch_input_bytes: int
    item_sizes: tuple[int, ...] | None = None
    record_sizes: tuple[int, ...] | None = None
    sizes_source: str = "estimate"

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"rows={self.rows}: a run needs at least one row")
        if self.item_bytes <= 0 or self.record_bytes <= 0:
            raise ValueError(
                f"item_bytes={self.item_bytes}, record_bytes={self.record_bytes}: must be positive"
            )
        for name in ("item_sizes", "record_sizes"):
            sizes = getattr(self, name)
            if sizes is not None and len(sizes) != self.rows:
                raise ValueError(f"{name} has {len(sizes)} entries; rows={self.rows}")

    @property
    def exact(self) -> bool:
        return self.item_sizes is not None


@dataclass(frozen=True, kw_only=True)
class HandlerSpeed:
    """How long the detector takes for a batch: fixed + per-row CPU (scaled by memory) + Firehose waits.

    ``ms_per_batch`` (given explicitly) replaces the formula for every batch.
    """

    fixed_ms: float
    ms_per_row: float
    firehose_call_ms: float
    ms_per_batch: float | None = None
    source: str = "prices.yaml assumptions"

    def handler_ms(self, rows: int, calls: int, *, memory_mb: int, mb_per_vcpu: float) -> float:
        if self.ms_per_batch is not None:
            return self.ms_per_batch
        # One thread: CPU time stretches below one vCPU (1,769 MB) and does not shrink above it.
        # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html
        cpu_scale = max(1.0, mb_per_vcpu / memory_mb)
        return self.fixed_ms + rows * self.ms_per_row * cpu_scale + calls * self.firehose_call_ms


@dataclass(frozen=True)
class Parallelism:
    """Children that can run at once, and which limit decides it."""

    limits: tuple[tuple[str, int], ...]
    effective: int
    binding: tuple[str, ...]


MAX_CONCURRENCY: Final = "MaxConcurrency"
RESERVED: Final = "Lambda reserved concurrency"
ACCOUNT: Final = "account Lambda concurrency"
MAP_LIMIT: Final = "Distributed Map limit"


def effective_parallelism(
    *, max_concurrency: int, reserved: int | None, account: int, map_limit: int = 10_000
) -> Parallelism:
    """The smallest of MaxConcurrency, reserved, account and map limits.

    MaxConcurrency 0 means unlimited: it is no limit of its own, so the map's 10,000 stands in for it.
    """
    limits = [(MAX_CONCURRENCY, max_concurrency)] if max_concurrency else []
    if reserved is not None:
        limits.append((RESERVED, reserved))
    limits += [(ACCOUNT, account), (MAP_LIMIT, map_limit)]
    effective = min(value for _name, value in limits)
    binding = tuple(name for name, value in limits if value == effective)
    return Parallelism(limits=tuple(limits), effective=effective, binding=binding)


@dataclass(frozen=True)
class FirehoseLoad:
    """The stream's Direct PUT demand at the effective parallelism against its quotas (per second)."""

    demand: Mapping[str, float]
    quota: Mapping[str, float]
    binds: bool
    binding: str | None  # the quota with the highest demand/quota ratio, when above 1
    sustainable_parallelism: float  # children the stream keeps up with (fractional: a rate)
    seconds_at_quota: float  # the run's Firehose traffic at the quota: the map can't be faster

    @property
    def utilisation(self) -> dict[str, float]:
        return {key: self.demand[key] / self.quota[key] for key in self.quota}


def firehose_load(
    *,
    parallelism: int,
    child_seconds: float,
    per_child: Mapping[str, float],
    totals: Mapping[str, float],
    rates: Rates,
) -> FirehoseLoad:
    """Demand = children at once x per-child traffic / child duration, for requests, records and bytes."""
    quota = {
        "requests": rates["firehose_requests_per_second"],
        "records": rates["firehose_records_per_second"],
        "bytes": rates["firehose_bytes_per_second"],
    }
    demand = {key: parallelism * per_child[key] / child_seconds for key in quota}
    ratios = {key: demand[key] / quota[key] if quota[key] else math.inf for key in quota}
    worst = max(ratios, key=lambda key: ratios[key])
    sustainable = min(
        (quota[key] * child_seconds / per_child[key] for key in quota if per_child[key] > 0), default=math.inf
    )
    seconds = max((totals[key] / quota[key] if quota[key] else math.inf) for key in quota)
    return FirehoseLoad(
        demand=demand,
        quota=quota,
        binds=ratios[worst] > 1,
        binding=worst if ratios[worst] > 1 else None,
        sustainable_parallelism=sustainable,
        seconds_at_quota=seconds,
    )


# ------------------------------------------------------------------------------------------------------
# 3. The plan


@dataclass(frozen=True)
class WallTime:
    """Where a run's time goes, in seconds."""

    unload: float
    map_start: float
    map_compute: float  # waves of children at the effective parallelism
    map_firehose: float  # the run's Firehose traffic at the stream's quota
    after_map: float  # waiting for Firehose's buffer, reconciliation and KPI queries

    @property
    def map(self) -> float:
        return self.map_start + max(self.map_compute, self.map_firehose)

    @property
    def total(self) -> float:
        return self.unload + self.map + self.after_map


@dataclass(frozen=True)
class DesignResult:
    """Counts, limits, time and cost of one run of one design."""

    design: str
    rows: int
    batches: int
    child_executions: int
    child_type: str
    child_ms: float
    handler_ms: float
    state_transitions: int
    express_requests: int
    express_gb_seconds: float
    lambda_invocations: int
    lambda_gb_seconds: float
    firehose_records: int
    firehose_calls: int
    firehose_bytes: int
    firehose_billed_bytes: int
    athena_queries: int
    athena_bytes_scanned: int
    athena_bytes_billed: int
    unload_files: int
    s3_puts: int
    s3_gets: int
    parallelism: Parallelism
    firehose: FirehoseLoad
    wall: WallTime
    costs: Mapping[str, float]

    @property
    def cost_per_run(self) -> float:
        return sum(self.costs.values())

    @property
    def cost_per_million_rows(self) -> float:
        return self.cost_per_run / self.rows * 1_000_000


@dataclass(frozen=True)
class Finding:
    """A warning about a setting: dangerous, wasted, or missing the stage's target window."""

    severity: Severity
    setting: str
    message: str


@dataclass(frozen=True)
class Recommendation:
    """A value to set, and why."""

    setting: str
    value: int | None
    reason: str


@dataclass(frozen=True)
class Floor:
    """What Firehose ingestion costs at the least: the readings' own bytes, each sent once, unrounded.

    A reading's bytes are the map item the detector receives for it (the row as the UNLOAD wrote it, its
    source file and index): whatever an analysis record adds to that (verdict, ids, timestamps) and
    whatever Firehose's 5 KB rounding adds is above the floor. No design ingests less unless it drops
    part of the reading, so the distance between this and the modelled Firehose cost is what slimmer
    records could still win.
    """

    reading_bytes: float
    bytes_per_million: float
    cost_per_million: float

    @classmethod
    def of(cls, workload: Workload, rates: Rates) -> Floor:
        per_million = workload.item_bytes * 1_000_000
        return cls(
            reading_bytes=workload.item_bytes,
            bytes_per_million=per_million,
            cost_per_million=per_million / GIB * rates["firehose_per_gb"],
        )


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one stage and one day of rows."""

    capacity: Capacity
    workload: Workload
    speed: HandlerSpeed
    rates: Rates
    ours: DesignResult
    reference: DesignResult
    recommendations: tuple[Recommendation, ...]
    findings: tuple[Finding, ...]
    floor: Floor
    overlapping_runs: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready data (``--json``)."""

        def design(result: DesignResult) -> dict[str, Any]:
            data = asdict(result)
            data["firehose"]["utilisation"] = result.firehose.utilisation
            data["wall"]["map"] = result.wall.map
            data["wall"]["total"] = result.wall.total
            data["parallelism"]["limits"] = dict(result.parallelism.limits)
            data["costs"] = dict(result.costs)
            data["cost_per_run"] = result.cost_per_run
            data["cost_per_million_rows"] = result.cost_per_million_rows
            return data

        workload = asdict(self.workload)
        workload.pop("item_sizes")
        workload.pop("record_sizes")
        workload["exact"] = self.workload.exact
        return {
            "stage": self.capacity.stage,
            "capacity": asdict(self.capacity),
            "workload": workload,
            "handler_speed": asdict(self.speed),
            "overlapping_runs": self.overlapping_runs,
            "ours": design(self.ours),
            "reference": design(self.reference),
            "floor": asdict(self.floor),
            "ratios": ratios(self.ours, self.reference),
            "recommendations": [asdict(r) for r in self.recommendations],
            "warnings": [asdict(f) for f in self.findings],
            "notes": list(self.notes),
            "rates": {
                name: {"value": rate.value, "unit": rate.unit, "source": rate.source, "read": rate.read}
                for name, rate in self.rates.entries.items()
            },
        }


RATIO_FIELDS: Final = (
    "child_executions",
    "state_transitions",
    "lambda_invocations",
    "lambda_gb_seconds",
    "firehose_records",
    "firehose_calls",
    "firehose_billed_bytes",
    "cost_per_run",
)


def ratios(ours: DesignResult, reference: DesignResult) -> dict[str, float | None]:
    """Reference / ours for the headline figures (how many times more the reference needs)."""
    out: dict[str, float | None] = {}
    for name in (*RATIO_FIELDS, "wall_seconds"):
        mine = ours.wall.total if name == "wall_seconds" else getattr(ours, name)
        theirs = reference.wall.total if name == "wall_seconds" else getattr(reference, name)
        out[name] = theirs / mine if mine else None
    return out


def parent_transitions(reconcile_attempts: int = 1) -> int:
    """State transitions of the parent workflow itself (children started are counted on top)."""
    fixed = sum(n for name, _type, n in PARENT_STATES if name not in _PER_RECONCILE_ATTEMPT)
    per_attempt = sum(n for name, _type, n in PARENT_STATES if name in _PER_RECONCILE_ATTEMPT)
    extra = (reconcile_attempts - 1) * (per_attempt + _EXTRA_ATTEMPT_TRANSITIONS)
    return fixed + per_attempt + extra


def _athena_billed(scanned: float, rates: Rates) -> int:
    """Athena bills whole megabytes, at least 10 MB per query (https://aws.amazon.com/athena/pricing/)."""
    return int(max(rates["athena_min_bytes_per_query"], math.ceil(scanned / MIB) * MIB))


def _unload_files(rows: int, capacity: Capacity, rates: Rates) -> int:
    per_row = rates["unload_row_bytes"] if capacity.unload_format == "PARQUET" else rates["raw_row_bytes"]
    return max(1, math.ceil(rows * per_row / (rates["unload_file_mb"] * MIB)))


def _firehose_objects(ingested: int, map_seconds: float, capacity: Capacity) -> int:
    """S3 objects Firehose writes: one per full buffer, or per buffer interval while data flows."""
    by_size = math.ceil(ingested / (capacity.firehose_buffer_size_mb * MIB))
    interval = capacity.firehose_buffer_interval_seconds
    by_time = math.ceil(map_seconds / interval) if interval else 0
    return max(1, by_size, by_time)


@dataclass(frozen=True)
class BatchGroup:
    """``count`` batches that each deliver what ``batch`` says (same rows, records, calls and bytes)."""

    batch: BatchDelivery
    count: int


@functools.lru_cache(maxsize=8)  # the concurrency search plans one workload many times
def _batch_groups(workload: Workload, capacity: Capacity) -> tuple[BatchGroup, ...]:
    """The run's batches, equal ones grouped: at most two groups for an estimate, whatever its rows.

    An estimate has only full batches and one remainder, so the plan is arithmetic on (size, count) pairs
    and takes the same memory and time for a thousand rows as for a hundred billion. Exact per-row sizes
    are packed batch by batch (memory: the sizes given, plus one batch).
    """
    if workload.exact:
        assert workload.item_sizes is not None
        record_sizes = workload.record_sizes or (math.ceil(workload.record_bytes),) * workload.rows
        sizes = batch_sizes(
            workload.item_sizes,
            max_items=capacity.max_items_per_batch,
            max_bytes=capacity.max_input_bytes_per_batch,
            batch_input_bytes=workload.batch_input_bytes,
        )
        counts: dict[BatchDelivery, int] = {}
        start = 0
        for size in sizes:
            batch = deliver(record_sizes[start : start + size])
            counts[batch] = counts.get(batch, 0) + 1
            start += size
        return tuple(BatchGroup(batch, count) for batch, count in counts.items())
    full = items_per_batch(
        workload.item_bytes,
        max_items=capacity.max_items_per_batch,
        max_bytes=capacity.max_input_bytes_per_batch,
        batch_input_bytes=workload.batch_input_bytes,
    )
    line = math.ceil(workload.record_bytes)
    groups = []
    if workload.rows >= full:
        groups.append(BatchGroup(deliver_uniform(full, line), workload.rows // full))
    if workload.rows % full:
        groups.append(BatchGroup(deliver_uniform(workload.rows % full, line), 1))
    return tuple(groups)


def clear_caches() -> None:
    """Forget packed batches (for measuring a plan as a fresh process makes it)."""
    deliver_uniform.cache_clear()
    _batch_groups.cache_clear()


def _our_design(
    capacity: Capacity, workload: Workload, speed: HandlerSpeed, rates: Rates, parallel: int | None = None
) -> DesignResult:
    groups = _batch_groups(workload, capacity)
    batches = sum(g.count for g in groups)
    mb_per_vcpu = rates["lambda_mb_per_vcpu"]
    handler = [
        speed.handler_ms(
            g.batch.rows,
            g.batch.put_record_batch_calls,
            memory_mb=capacity.lambda_memory_mb,
            mb_per_vcpu=mb_per_vcpu,
        )
        for g in groups
    ]
    child = [ms + rates["child_overhead_ms"] for ms in handler]
    lambda_gb_s = (
        sum(g.count * math.ceil(ms) / 1000 for g, ms in zip(groups, handler, strict=True))
        * capacity.lambda_memory_mb
        / 1024
    )
    express_gb_s = (
        sum(g.count * math.ceil(ms / 100) / 10 for g, ms in zip(groups, child, strict=True))
        * rates["express_billing_memory_mb"]
        / 1024
    )
    records = sum(g.count * g.batch.firehose_records for g in groups)
    calls = sum(g.count * g.batch.put_record_batch_calls for g in groups)
    sent = sum(g.count * g.batch.firehose_bytes for g in groups)
    billed = sum(g.count * g.batch.firehose_billed_bytes for g in groups)

    # The typical child: the most common batch size (ties: the larger), for waves and per-second demand.
    rows_count: dict[int, int] = {}
    for g in groups:
        rows_count[g.batch.rows] = rows_count.get(g.batch.rows, 0) + g.count
    typical_rows = max(rows_count, key=lambda rows: (rows_count[rows], rows))
    typical = next(i for i, g in enumerate(groups) if g.batch.rows == typical_rows)
    typical_delivery = groups[typical].batch
    child_s = child[typical] / 1000

    parallelism = effective_parallelism(
        max_concurrency=capacity.max_concurrency if parallel is None else parallel,
        reserved=capacity.lambda_reserved_concurrency if parallel is None else None,
        account=capacity.account_lambda_concurrency if parallel is None else 10**9,
        map_limit=int(rates["map_concurrency_limit"]),
    )
    load = firehose_load(
        parallelism=parallelism.effective,
        child_seconds=child_s,
        per_child={
            "requests": typical_delivery.put_record_batch_calls,
            "records": typical_delivery.firehose_records,
            "bytes": typical_delivery.firehose_bytes,
        },
        totals={"requests": calls, "records": records, "bytes": sent},
        rates=rates,
    )

    ratio = rates["delivered_compression_ratio"] if capacity.firehose_compression == "GZIP" else 1.0
    raw = workload.rows * rates["raw_row_bytes"]
    delivered = sent * ratio
    after_queries = capacity.reconcile_attempts + 1  # reconciliation attempts, then the KPI query
    scans = [raw] + [delivered] * after_queries
    query_s = rates["athena_query_seconds"]
    scan_rate = rates["athena_scan_bytes_per_second"]
    wall = WallTime(
        unload=query_s + raw / scan_rate,
        map_start=rates["map_start_seconds"],
        map_compute=math.ceil(batches / parallelism.effective) * child_s,
        map_firehose=load.seconds_at_quota,
        after_map=capacity.delivery_wait_seconds + after_queries * (query_s + delivered / scan_rate),
    )

    files = _unload_files(workload.rows, capacity, rates)
    # UNLOAD files and manifest, Athena results, ResultWriter files, the KPI folder listing (LIST is
    # billed as a PUT), Firehose's objects.
    puts = files + 1 + len(scans) * int(rates["athena_result_puts_per_query"])
    puts += int(rates["result_writer_puts"]) + 1 + _firehose_objects(sent, wall.map, capacity)
    gets = files + 1  # ItemReader: every data file plus the manifest

    transitions = parent_transitions(capacity.reconcile_attempts) + batches
    athena_billed = sum(_athena_billed(scan, rates) for scan in scans)
    lambda_price = rates[f"lambda_{capacity.lambda_architecture}_per_gb_second"]
    costs = {
        "Step Functions Standard (parent transitions)": transitions * rates["sfn_standard_per_transition"],
        "Step Functions Express requests": batches * rates["sfn_express_per_request"],
        "Step Functions Express duration": express_gb_s * rates["sfn_express_per_gb_second"],
        "Lambda requests": batches * rates["lambda_per_request"],
        "Lambda duration": lambda_gb_s * lambda_price,
        "Firehose ingestion": billed / GIB * rates["firehose_per_gb"],
        "Athena scans": athena_billed / TIB * rates["athena_per_tb"],
        "S3 requests": puts / 1000 * rates["s3_put_per_1000"] + gets / 1000 * rates["s3_get_per_1000"],
    }
    return DesignResult(
        design="sensorflow",
        rows=workload.rows,
        batches=batches,
        child_executions=batches,
        child_type="EXPRESS",
        child_ms=child[typical],
        handler_ms=handler[typical],
        state_transitions=transitions,
        express_requests=batches,
        express_gb_seconds=express_gb_s,
        lambda_invocations=batches,
        lambda_gb_seconds=lambda_gb_s,
        firehose_records=records,
        firehose_calls=calls,
        firehose_bytes=sent,
        firehose_billed_bytes=billed,
        athena_queries=len(scans),
        athena_bytes_scanned=int(sum(scans)),
        athena_bytes_billed=athena_billed,
        unload_files=files,
        s3_puts=puts,
        s3_gets=gets,
        parallelism=parallelism,
        firehose=load,
        wall=wall,
        costs=costs,
    )


def _reference_design(capacity: Capacity, workload: Workload, rates: Rates) -> DesignResult:
    """The reference sample on the same rows: one Standard child, one Lambda call, one record per row."""
    rows = workload.rows
    record = int(rates["reference_record_bytes"])
    billed = rows * delivery.billed_bytes([record])  # one record per reading
    handler_ms = rates["reference_lambda_ms"]
    child_s = rates["reference_child_ms"] / 1000
    lambda_gb_s = rows * math.ceil(handler_ms) / 1000 * rates["reference_lambda_memory_mb"] / 1024
    parallelism = effective_parallelism(
        max_concurrency=int(rates["reference_max_concurrency"]),
        reserved=None,
        account=capacity.account_lambda_concurrency,
        map_limit=int(rates["map_concurrency_limit"]),
    )
    load = firehose_load(
        parallelism=parallelism.effective,
        child_seconds=child_s,
        per_child={"requests": 1, "records": 1, "bytes": record},
        totals={"requests": rows, "records": rows, "bytes": rows * record},
        rates=rates,
    )
    raw = rows * rates["raw_row_bytes"]
    wall = WallTime(
        unload=rates["athena_query_seconds"] + raw / rates["athena_scan_bytes_per_second"],
        map_start=rates["map_start_seconds"],
        map_compute=math.ceil(rows / parallelism.effective) * child_s,
        map_firehose=load.seconds_at_quota,
        after_map=0.0,
    )
    files = _unload_files(rows, capacity, rates)
    puts = (
        files
        + 1
        + int(rates["athena_result_puts_per_query"])
        + _firehose_objects(rows * record, wall.map, capacity)
    )
    gets = files + 1
    transitions = sum(n for _name, _type, n in REFERENCE_PARENT_STATES) + rows * (
        1 + REFERENCE_CHILD_TRANSITIONS
    )
    athena_billed = _athena_billed(raw, rates)
    costs = {
        "Step Functions Standard (parent transitions)": transitions * rates["sfn_standard_per_transition"],
        "Step Functions Express requests": 0.0,
        "Step Functions Express duration": 0.0,
        "Lambda requests": rows * rates["lambda_per_request"],
        "Lambda duration": lambda_gb_s * rates["lambda_x86_64_per_gb_second"],
        "Firehose ingestion": billed / GIB * rates["firehose_per_gb"],
        "Athena scans": athena_billed / TIB * rates["athena_per_tb"],
        "S3 requests": puts / 1000 * rates["s3_put_per_1000"] + gets / 1000 * rates["s3_get_per_1000"],
    }
    return DesignResult(
        design="reference sample",
        rows=rows,
        batches=rows,
        child_executions=rows,
        child_type="STANDARD",
        child_ms=child_s * 1000,
        handler_ms=handler_ms,
        state_transitions=transitions,
        express_requests=0,
        express_gb_seconds=0.0,
        lambda_invocations=rows,
        lambda_gb_seconds=lambda_gb_s,
        firehose_records=rows,
        firehose_calls=rows,
        firehose_bytes=rows * record,
        firehose_billed_bytes=billed,
        athena_queries=1,
        athena_bytes_scanned=int(raw),
        athena_bytes_billed=athena_billed,
        unload_files=files,
        s3_puts=puts,
        s3_gets=gets,
        parallelism=parallelism,
        firehose=load,
        wall=wall,
        costs=costs,
    )


def smallest_concurrency_within(
    target_seconds: float, capacity: Capacity, workload: Workload, speed: HandlerSpeed, rates: Rates
) -> tuple[int | None, DesignResult]:
    """The smallest MaxConcurrency whose run fits ``target_seconds`` if Lambda concurrency were raised to it.

    Returns ``(None, run at the map limit)`` when no MaxConcurrency is enough (the Firehose quota, fixed
    query time or a single batch's duration is already too long). Wall time never rises with
    concurrency, so a binary search over 1..10,000 finds it.
    """
    limit = int(rates["map_concurrency_limit"])
    best = _our_design(capacity, workload, speed, rates, parallel=limit)
    if best.wall.total > target_seconds:
        return None, best
    low, high = 1, limit
    while low < high:
        middle = (low + high) // 2
        if _our_design(capacity, workload, speed, rates, parallel=middle).wall.total <= target_seconds:
            high = middle
        else:
            low = middle + 1
    return low, _our_design(capacity, workload, speed, rates, parallel=low)


def recommended_batching(capacity: Capacity, workload: Workload, rates: Rates) -> Capacity:
    """``capacity`` with the batch limits the planner recommends: as many items as fit the 256 KiB input.

    The concurrency recommendation is made for these limits, so the recommended values are one coherent
    setting (``--apply`` writes them together) and planning the applied file recommends it again.
    """
    map_input = int(rates["map_max_input_bytes"])
    fit = items_per_batch(
        workload.item_bytes,
        max_items=100_000,
        max_bytes=map_input,
        batch_input_bytes=workload.batch_input_bytes,
    )
    return replace(capacity, max_items_per_batch=fit, max_input_bytes_per_batch=map_input)


def _recommend(
    capacity: Capacity, workload: Workload, speed: HandlerSpeed, rates: Rates, ours: DesignResult
) -> tuple[list[Recommendation], list[str]]:
    recs: list[Recommendation] = []
    notes: list[str] = []
    tuned = recommended_batching(capacity, workload, rates)
    fit = tuned.max_items_per_batch
    at = "" if fit == capacity.max_items_per_batch else f" at maxItemsPerBatch={fit:,}"
    target = capacity.target_window_minutes * 60
    needed, run = smallest_concurrency_within(target, tuned, workload, speed, rates)
    if needed is not None:
        reason = (
            f"the smallest MaxConcurrency that finishes {workload.rows:,} rows within the "
            f"{capacity.target_window_minutes}-minute target ({_duration(run.wall.total)}{at})"
        )
        if needed > capacity.account_lambda_concurrency:
            reason += f"; needs an account Lambda concurrency quota >= {needed}"
        recs.append(Recommendation("maxConcurrency", needed, reason))
    else:
        fixed = run.wall.unload + run.wall.map_start + run.wall.after_map
        room = target - fixed
        if room > 0 and run.wall.map_firehose > room:
            factor = run.wall.map_firehose / room
            reason = (
                f"no MaxConcurrency finishes within {capacity.target_window_minutes} minutes: the Firehose "
                f"stream's Direct PUT quota alone needs {_duration(run.wall.map_firehose)}. Raise the stream's "
                f"quota about {factor:.1f}x (to ~{rates['firehose_bytes_per_second'] * factor / MIB:.0f} MiB/s; "
                "the three quotas scale together) or lengthen targetWindowMinutes"
            )
        else:
            reason = (
                f"no MaxConcurrency finishes within {capacity.target_window_minutes} minutes: fixed query time "
                f"and one batch already take {_duration(run.wall.total)}"
            )
        # The fastest run possible is reached at some concurrency already; more only adds throttling.
        enough, fastest = smallest_concurrency_within(run.wall.total, tuned, workload, speed, rates)
        recs.append(
            Recommendation(
                "maxConcurrency",
                enough,
                reason + f"; until then {enough} children already reach the fastest possible run "
                f"({_duration(fastest.wall.total)}{at}) and more only wait on throttling",
            )
        )
    concurrency = recs[-1].value
    reserved = capacity.lambda_reserved_concurrency
    if concurrency is not None and reserved is not None and concurrency > reserved:
        recs.append(
            Recommendation(
                "lambdaReservedConcurrency",
                concurrency,
                f"maxConcurrency={concurrency} needs as many concurrent detector invocations (today {reserved})",
            )
        )
    recs.append(
        Recommendation(
            "maxItemsPerBatch",
            fit,
            f"the most {math.ceil(workload.item_bytes):,}-byte items ({workload.sizes_source}) that fit the "
            f"256 KiB child input with the {batch_envelope_bytes(workload.batch_input_bytes):,}-byte envelope",
        )
    )
    recs.append(
        Recommendation(
            "maxInputBytesPerBatch",
            tuned.max_input_bytes_per_batch,
            "the whole 256 KiB child input, so rows larger than measured shrink a batch instead of failing it",
        )
    )
    if fit != capacity.max_items_per_batch:
        notes.append(
            f"At maxItemsPerBatch={fit:,} the detector would take ~"
            f"{speed.handler_ms(fit, 1, memory_mb=capacity.lambda_memory_mb, mb_per_vcpu=rates['lambda_mb_per_vcpu']):.0f} ms "
            f"per batch (timeout {capacity.lambda_timeout_seconds} s)."
        )
    return recs, notes


def _findings(
    capacity: Capacity, workload: Workload, rates: Rates, ours: DesignResult, overlapping_runs: int
) -> list[Finding]:
    found: list[Finding] = []
    mc, reserved = capacity.max_concurrency, capacity.lambda_reserved_concurrency
    map_limit = int(rates["map_concurrency_limit"])
    if mc == 0:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"0 means unlimited: up to {map_limit:,} children at once, far above what the detector's "
                "reserved concurrency and the Firehose stream take; throttled invocations and deliveries retry "
                "and then fail batches",
            )
        )
    elif reserved is not None and mc > reserved:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"{mc} is above lambdaReservedConcurrency={reserved}: {mc - reserved} children at a time are "
                "throttled (Lambda.TooManyRequestsException), retried, and fail their batch when retries run out",
            )
        )
    if reserved is not None and reserved > capacity.account_lambda_concurrency:
        found.append(
            Finding(
                "danger",
                "lambdaReservedConcurrency",
                f"{reserved} is above the account's Lambda concurrency ({capacity.account_lambda_concurrency}); "
                "the reservation cannot be made",
            )
        )
    load = ours.firehose
    if load.binds:
        over = load.utilisation[load.binding or "bytes"]
        # Mildly over: children only wait on retries. Far over: the detector's bounded retries run out
        # and batches fail, which fails the run unless toleratedFailurePercentage absorbs it.
        found.append(
            Finding(
                "danger" if over > FIREHOSE_DANGER_RATIO else "wasted",
                "maxConcurrency",
                f"the Firehose stream keeps up with only ~{load.sustainable_parallelism:.1f} children "
                f"({load.binding} quota, {over:.1f}x over at {ours.parallelism.effective}); the rest wait on "
                "throttled PutRecordBatch calls (retries, and failed batches once deliveryMaxAttempts run out). "
                "Raise the stream quota or lower MaxConcurrency",
            )
        )
    bytes_fit = items_per_batch(
        workload.item_bytes,
        max_items=10**9,
        max_bytes=capacity.max_input_bytes_per_batch,
        batch_input_bytes=workload.batch_input_bytes,
    )
    if bytes_fit < capacity.max_items_per_batch:
        found.append(
            Finding(
                "wasted",
                "maxItemsPerBatch",
                f"{capacity.max_items_per_batch} is never reached: maxInputBytesPerBatch="
                f"{capacity.max_input_bytes_per_batch:,} fills at {bytes_fit} items of "
                f"{math.ceil(workload.item_bytes)} bytes",
            )
        )
    if ours.handler_ms > capacity.lambda_timeout_seconds * 1000 / 2:
        found.append(
            Finding(
                "danger",
                "lambdaTimeoutSeconds",
                f"a batch takes ~{ours.handler_ms / 1000:.1f} s, more than half the {capacity.lambda_timeout_seconds} s "
                "timeout; Firehose throttling retries could exceed it",
            )
        )
    if ours.child_ms / 1000 > rates["express_max_seconds"]:
        found.append(
            Finding(
                "danger",
                "maxItemsPerBatch",
                f"a child takes ~{ours.child_ms / 1000:.0f} s; Express children stop at {rates['express_max_seconds']:.0f} s",
            )
        )
    period = rates["schedule_period_seconds"]
    runs_open = max(overlapping_runs, math.ceil(ours.wall.total / period))
    if ours.wall.total > period:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"a run takes {_duration(ours.wall.total)}, longer than the {_duration(period)} between "
                f"scheduled runs: {runs_open} runs would be open at once and share the Lambda and Firehose limits",
            )
        )
    open_limit = rates["open_map_run_limit"]
    if runs_open >= 0.9 * open_limit:
        found.append(
            Finding(
                "danger",
                "overlapping runs",
                f"{runs_open} runs open at once is near the hard limit of {open_limit:,.0f} open Map Runs per "
                "account and Region; further runs fail to start their map",
            )
        )
    if runs_open > 1 and reserved is not None and runs_open * ours.parallelism.effective > reserved:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"{runs_open} overlapping runs x {ours.parallelism.effective} children exceed "
                f"lambdaReservedConcurrency={reserved}: the runs throttle each other",
            )
        )
    target = capacity.target_window_minutes * 60
    if ours.wall.total > target:
        found.append(
            Finding(
                "target",
                "targetWindowMinutes",
                f"a run of {workload.rows:,} rows takes {_duration(ours.wall.total)}, beyond the "
                f"{capacity.target_window_minutes}-minute target",
            )
        )
    return found


def plan(
    capacity: Capacity,
    workload: Workload,
    *,
    speed: HandlerSpeed,
    rates: Rates,
    overlapping_runs: int = 1,
) -> Plan:
    """Counts, limits, wall time and cost of one run, ours and the reference's, with advice."""
    if overlapping_runs < 1:
        raise ValueError(f"overlapping_runs={overlapping_runs}: at least 1")
    ours = _our_design(capacity, workload, speed, rates)
    reference = _reference_design(capacity, workload, rates)
    recommendations, notes = _recommend(capacity, workload, speed, rates, ours)
    findings = _findings(capacity, workload, rates, ours, overlapping_runs)
    return Plan(
        capacity=capacity,
        workload=workload,
        speed=speed,
        rates=rates,
        ours=ours,
        reference=reference,
        recommendations=tuple(recommendations),
        findings=tuple(findings),
        floor=Floor.of(workload, rates),
        overlapping_runs=overlapping_runs,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------------------------
# Handler speed from the benchmark


BENCHMARK_PATH: Final = Path(__file__).resolve().parents[2] / "build" / "benchmarks" / "detector.json"


# The stage of ``benchmarks/bench_detector.py`` whose timing the planner uses: the whole handler (config,
# analysis, packing, delivery loop, log line and metrics) with a Firehose stub that answers at once, so
# the network wait is the planner's own ``firehose_call_ms`` per call on top.
BENCHMARK_STAGE: Final = "lambda_handler + stub Firehose"


class BenchmarkError(ValueError):
    """The benchmark file does not hold the handler timing the planner reads."""


def handler_speed(
    rates: Rates,
    *,
    ms_per_batch: float | None = None,
    benchmark: Path | None = BENCHMARK_PATH,
    input_format: str = "PARQUET",
) -> HandlerSpeed:
    """The detector's timing: ``ms_per_batch`` if given, else the benchmark's, else ``prices.yaml``'s.

    A benchmark file that exists but lacks the timing (an older layout, a run without ``input_format``)
    falls back to ``prices.yaml`` and says why in ``source``, so a plan never silently uses a guess.
    """
    base = HandlerSpeed(
        fixed_ms=rates["detector_fixed_ms"],
        ms_per_row=rates["detector_ms_per_row"],
        firehose_call_ms=rates["firehose_call_ms"],
    )
    if ms_per_batch is not None:
        if ms_per_batch <= 0:
            raise ValueError(f"ms_per_batch={ms_per_batch}: must be positive")
        return replace(base, ms_per_batch=ms_per_batch, source="given (--ms-per-batch)")
    if benchmark is None or not benchmark.exists():
        return base
    try:
        fixed, per_row = speed_from_benchmark(json.loads(benchmark.read_text()), input_format=input_format)
    except (BenchmarkError, json.JSONDecodeError) as error:
        return replace(base, source=f"prices.yaml assumptions ({benchmark.name} not used: {error})")
    return replace(
        base,
        fixed_ms=fixed,
        ms_per_row=per_row,
        source=f"benchmark {benchmark.name} ({BENCHMARK_STAGE}, {input_format})",
    )


def speed_from_benchmark(data: Mapping[str, Any], *, input_format: str = "PARQUET") -> tuple[float, float]:
    """(fixed ms, ms per row at one vCPU) from what ``benchmarks/bench_detector.py`` writes.

    The file has ``throughput``: one entry per stage and input format, each with ``best_rows_per_s`` (the
    sum of every batch's fastest run, on one core) measured at ``batch_size`` rows per batch. One batch
    size cannot separate a fixed part from the per-row part, so the whole per-batch time is per row (exact
    at the benchmark's batch size; smaller batches come out slightly fast). The benchmark's core counts as
    one vCPU. ``BenchmarkError`` names what is missing.
    """
    entries = data.get("throughput")
    if not isinstance(entries, list):
        raise BenchmarkError("no 'throughput' list")
    for entry in entries:
        if (
            isinstance(entry, Mapping)
            and entry.get("stage") == BENCHMARK_STAGE
            and entry.get("format") == input_format
        ):
            rate = entry.get("best_rows_per_s")
            if not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
                raise BenchmarkError(f"{BENCHMARK_STAGE!r} ({input_format}) has best_rows_per_s={rate!r}")
            return 0.0, 1000.0 / rate
    found = sorted({f"{e.get('stage')} ({e.get('format')})" for e in entries if isinstance(e, Mapping)})
    raise BenchmarkError(
        f"no {BENCHMARK_STAGE!r} timing for {input_format}; it has: {', '.join(found) or 'nothing'}"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


format_duration = _duration
