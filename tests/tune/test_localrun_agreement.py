"""The planner counts what the local run counts: batches, children, Lambda invocations, Firehose traffic.

A small simulated day runs through the local pipeline (the stage's definition, the real detector, the
stand-ins). From what the run left behind, measured independently of the local map's own code:

* each item's size: the UNLOAD's Parquet rows read with pyarrow in the manifest's order, shaped as the
  ItemSelector shapes them (``{"r": [values], "i": index}``, schema.ITEM_KEYS), measured as
  compact UTF-8 JSON (``json_size``);
* each record's size: the analysis lines Firehose delivered to S3, newline included, by item index;
* the BatchInput: ``{"executionName", "runDate"}`` of the execution.

Those go to the planner's exact mode (``count_run`` and ``plan_stack(..., item_sizes, record_sizes)``);
its batches, children, invocations, Firehose records, PutRecordBatch calls and bytes must equal the
run's own counters (``RunSummary``) and the children's summaries in the map's ResultWriter output.

Cases: dev as configured (250 items per batch, the item limit binds), dev with a 16 KiB
``maxInputBytesPerBatch`` (the byte limit binds) and prod as configured.
"""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from functions.detector import schema
from tools import tune
from tools.localrun import stack as stack_mod
from tools.localrun.run import LocalPipeline, RunSummary
from tools.simulate import Fleet, simulate

DAY = "2025-06-01"
CASES = {
    # case id: (stage, setting overrides, which batch limit must bind)
    "dev-items-bound": ("dev", {}, "items"),
    "dev-bytes-bound": ("dev", {"maxInputBytesPerBatch": 16_384}, "bytes"),
    "prod": ("prod", {}, None),
}


@dataclass
class Measured:
    run: RunSummary
    item_sizes: list[int]
    record_sizes: list[int]
    batch_input_bytes: int
    summaries: list[dict[str, Any]]  # the children's outputs (ResultWriter, COMPACT)
    max_items: int
    max_bytes: int


@pytest.fixture(scope="module")
def sim_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six devices every 2 minutes: 4,320 readings, some anomalous, some malformed; more than one
    batch at the committed stacks' settings (about 2,600 rows each)."""
    folder = tmp_path_factory.mktemp("agreement-sim")
    simulate(Fleet(devices=6, days=1, interval_seconds=120, seed=11, malformed_share=0.02), folder)
    return folder


def _item_sizes(pipeline: LocalPipeline) -> list[int]:
    """Every item's size, rebuilt from the UNLOAD's data manifest: its files in order, their rows."""
    bucket = pipeline.stack.exports["athenaResultsBucket"]
    unload = f"s3://{pipeline.stack.exports['unloadBucket']}/unload/"
    manifests = [
        lines
        for key, _ in pipeline.store.list(bucket, "")
        if key.endswith("-manifest.csv")
        for lines in [pipeline.store.get(bucket, key).decode().split()]
        if lines and all(line.startswith(unload) for line in lines)
    ]
    assert len(manifests) == 1, f"expected the day's one UNLOAD manifest, found {len(manifests)}"
    sizes: list[int] = []
    for source in manifests[0]:
        for row in pq.read_table(pipeline.store.path_of_uri(source)).to_pylist():
            item = {
                schema.ITEM_ROW: [row.get(name) for name in schema.ITEM_FIELDS],
                schema.ITEM_INDEX: len(sizes),
            }
            sizes.append(tune.json_size(item))
    return sizes


def _delivered_lines(pipeline: LocalPipeline) -> list[bytes]:
    bucket = pipeline.stack.firehose.bucket
    lines: list[bytes] = []
    assert pipeline.delivery.delivered_objects, "Firehose delivered nothing"
    for key in pipeline.delivery.delivered_objects:
        body = pipeline.store.get(bucket, key)
        if key.endswith(".gz"):
            body = gzip.decompress(body)
        assert body.endswith(b"\n"), key
        lines.extend(body[:-1].split(b"\n"))
    return lines


def _summaries(pipeline: LocalPipeline, run: RunSummary) -> list[dict[str, Any]]:
    bucket = pipeline.stack.exports["unloadBucket"]
    results = [key for key, _ in pipeline.store.list(bucket, "map-results/") if key.endswith(".jsonl")]
    assert results, "the map wrote no results"
    return [
        json.loads(line)
        for key in results
        for line in pipeline.store.get(bucket, key).decode().splitlines()
        if line.strip()
    ]


def _measure(root: Path, sim: Path, stage: str, overrides: dict[str, Any]) -> Measured:
    local = stack_mod.rendered(stage, overrides)
    pipeline = LocalPipeline(local, root, processes=0)
    try:
        pipeline.put_raw(sim)
        # An execution started without a name is named with a UUID, the shape the planner assumes.
        run = pipeline.execute(DAY, name=str(uuid.UUID(int=7)))
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        lines = _delivered_lines(pipeline)
        records = [json.loads(line) for line in lines]
        by_index = {r["sourceindex"]: len(line) + 1 for r, line in zip(records, lines, strict=True)}
        assert len(by_index) == len(lines) == run.rows, "every row delivered exactly once"
        item_sizes = _item_sizes(pipeline)
        settings = local.settings
        return Measured(
            run=run,
            item_sizes=item_sizes,
            record_sizes=[by_index[i] for i in range(len(item_sizes))],
            batch_input_bytes=tune.json_size({schema.BATCH_RUN: str(uuid.UUID(int=7)), "runDate": DAY}),
            summaries=_summaries(pipeline, run),
            max_items=int(settings["max_items_per_batch"]),
            max_bytes=int(settings["max_input_bytes_per_batch"]),
        )
    finally:
        pipeline.close()


@pytest.fixture(scope="module", params=list(CASES))
def measured(request: pytest.FixtureRequest, sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    stage, overrides, bound = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    return request.param, stage, overrides, bound, _measure(root, sim_day, stage, overrides)


def test_the_case_binds_the_limit_it_claims(measured: Any) -> None:
    _case, _stage, _overrides, bound, m = measured
    assert m.item_sizes
    assert len(m.item_sizes) == m.run.rows == 4_320
    counts = tune.count_run(
        m.item_sizes,
        max_items=m.max_items,
        max_bytes=m.max_bytes,
        batch_input_bytes=m.batch_input_bytes,
        record_bytes=m.record_sizes,
    )
    full = counts.batch_sizes[:-1]
    assert full, "a case needs more than one batch"
    envelope = tune.batch_envelope_bytes(m.batch_input_bytes)
    if bound == "items":
        assert all(n == m.max_items for n in full)
    elif bound == "bytes":
        assert all(n < m.max_items for n in full)
        start = 0
        for n in full:  # the next item would not have fitted
            used = envelope + sum(m.item_sizes[start : start + n]) + n - 1
            assert used <= m.max_bytes < used + 1 + m.item_sizes[start + n]
            start += n


def test_count_run_equals_the_local_run(measured: Any) -> None:
    _case, _stage, _overrides, _bound, m = measured
    counts = tune.count_run(
        m.item_sizes,
        max_items=m.max_items,
        max_bytes=m.max_bytes,
        batch_input_bytes=m.batch_input_bytes,
        record_bytes=m.record_sizes,
    )
    run = m.run
    assert run.retries == 0  # count_run assumes no retries
    assert counts.batches == run.batches
    assert counts.child_executions == run.child_executions
    assert counts.lambda_invocations == run.lambda_invocations
    assert counts.firehose_records == run.firehose.records
    assert counts.put_record_batch_calls == run.firehose.calls
    assert counts.firehose_bytes == run.firehose.bytes
    assert sum(counts.batch_sizes) == run.rows
    # The detector's own summaries say the same, batch by batch.
    assert sorted(s["rowsIn"] for s in m.summaries) == sorted(counts.batch_sizes)
    assert len(m.summaries) == counts.child_executions
    assert sum(s["firehoseRecords"] for s in m.summaries) == counts.firehose_records
    assert sum(s["putRecordBatchCalls"] for s in m.summaries) == counts.put_record_batch_calls
    assert sum(s["firehoseBytes"] for s in m.summaries) == counts.firehose_bytes


def test_plan_stack_exact_mode_equals_the_local_run(measured: Any) -> None:
    _case, stage, overrides, _bound, m = measured
    plan = tune.plan_stack(
        stage, len(m.item_sizes), item_sizes=m.item_sizes, record_sizes=m.record_sizes, what_if=overrides
    )
    assert plan.workload.exact
    assert plan.workload.batch_input_bytes == m.batch_input_bytes, "the planner's BatchInput differs"
    ours, run = plan.ours, m.run
    assert (ours.batches, ours.child_executions, ours.lambda_invocations) == (
        run.batches,
        run.child_executions,
        run.lambda_invocations,
    )
    assert (ours.firehose_records, ours.firehose_calls, ours.firehose_bytes, ours.firehose_billed_bytes) == (
        run.firehose.records,
        run.firehose.calls,
        run.firehose.bytes,
        run.firehose.billed_bytes,
    )


@pytest.mark.parametrize("measured", ["dev-bytes-bound"], indirect=True)
def test_a_miscount_is_noticed(measured: Any) -> None:
    """Negative control: larger items change the count when the byte limit binds."""
    _case, _stage, _overrides, bound, m = measured
    assert bound == "bytes"
    counts = tune.count_run(
        [s + 40 for s in m.item_sizes],
        max_items=m.max_items,
        max_bytes=m.max_bytes,
        batch_input_bytes=m.batch_input_bytes,
        record_bytes=m.record_sizes,
    )
    assert counts.batches != m.run.batches
