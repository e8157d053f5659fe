"""Counts, wall time and cost of one run: this project's design, and the reference sample's on the same rows.

``our_design`` plans with equal batches grouped and counted once with their number (an estimate has at
most two sizes), so it takes the same memory and time for any number of rows (benchmarks/bench_tune.py).
``reference_design`` is the reference sample: one Standard child, one Lambda call, one record per row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from functions.detector import delivery
from tools.tune.limits import (
    Capacity,
    FirehoseLoad,
    Parallelism,
    Workload,
    effective_parallelism,
    firehose_load,
)
from tools.tune.packing import BatchDelivery, batch_sizes, deliver, deliver_uniform, items_per_batch
from tools.tune.prices import Rates
from tools.tune.speed import HandlerSpeed
from tools.tune.units import GIB, MIB, TIB

# The parent workflow's states on the path a successful first run of a day takes (no old KPIs to delete,
# delivery reconciled at the first check), as built by ``spec.definition.build_definition``; a test
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


def our_design(
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


def reference_design(capacity: Capacity, workload: Workload, rates: Rates) -> DesignResult:
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
