"""ToleratedFailurePercentage: children that fail for good, below and above the tolerated share.

Two of ten batches can never be delivered: the Firehose stand-in answers every record that carries a row
of those batches with a per-entry ``ServiceUnavailableException`` (a call that succeeds while its entries
fail, as ``PutRecordBatch`` does under load). The detector re-sends only the failed entries until its
budget (``deliveryMaxAttempts``) is spent, raises ``DeliveryError``; the child's Retry on
``DeliveryError`` runs the batch again (2 more times), and then the child fails. 20 of the 100 items
fail.

* Tolerance 0: the map run fails with ``States.ExceedToleratedFailureThreshold`` and the execution fails
  in the map state itself, naming the failed batches; nothing after the map runs, and the execution can
  be redriven (a redrive while the outage lasts fails the same way, one redrive later).
* Tolerance 25 (above the 20 % that failed): the stage accepts giving up that share of rows. The map run
  succeeds, reconciliation expects the rows of the succeeded batches, and the run's output reports the
  20 failed rows (``rowsFailed``): given up, and said so, never silently.

The failing stand-in is installed by patching ``FirehoseStandIn.put_record_batch`` for this process, so
the map runs its children in-process (``processes=0``); see the module's ``failing_firehose``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spec import definition, detect_retry
from tools.localrun import ground_truth
from tools.localrun import stack as stack_mod
from tools.localrun.firehose import FirehoseStandIn
from tools.localrun.run import LocalPipeline, RunSummary

DAY = "2025-06-01"
ROWS = 100
BATCH = 10  # items-bound batches: item i is in batch i // 10
FAILING_BATCHES = frozenset({2, 7})
FAILED_ROWS = len(FAILING_BATCHES) * BATCH  # 20 of 100 items


def _raw_csv() -> str:
    lines = ["deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude"]
    for i in range(ROWS):
        device = f"dev-{i % 4}"
        minute = i // 4
        lines.append(f"{device},2025-06-01T{minute // 60:02d}:{minute % 60:02d}:00Z,21.5,50.0,80.0,40.0,-3.0")
    return "\n".join(lines) + "\n"


def _failing_batch(data: bytes) -> bool:
    """Does this Firehose record carry a row of a failing batch? (Its lines name their map item index.)"""
    return any(
        json.loads(line)["sourceindex"] // BATCH in FAILING_BATCHES for line in data.decode().splitlines()
    )


@pytest.fixture
def failing_firehose(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Every record holding a row of a failing batch is refused, entry by entry, every time."""
    refused = {"entries": 0}
    accept = FirehoseStandIn.put_record_batch

    def put_record_batch(self: FirehoseStandIn, DeliveryStreamName: str, Records: list, **extra: Any):
        if not any(_failing_batch(bytes(r["Data"])) for r in Records):
            return accept(self, DeliveryStreamName, Records, **extra)
        refused["entries"] += len(Records)
        self.stats.calls += 1
        return {
            "FailedPutCount": len(Records),
            "Encrypted": True,
            "RequestResponses": [
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."} for _ in Records
            ],
        }

    monkeypatch.setattr(FirehoseStandIn, "put_record_batch", put_record_batch)
    return refused


@pytest.fixture
def run_with_tolerance(tmp_path: Path, failing_firehose: dict[str, int]) -> Iterator[Any]:
    made: list[LocalPipeline] = []
    csv_file = tmp_path / "readings.csv"
    csv_file.write_text(_raw_csv())

    def run(tolerance: int) -> tuple[LocalPipeline, RunSummary]:
        local = stack_mod.rendered(
            "dev",
            {
                "toleratedFailurePercentage": tolerance,
                "maxItemsPerBatch": BATCH,
                "maxInputBytesPerBatch": 131072,
                "deliveryMaxAttempts": 2,  # keeps the detector's real back-off sleeps short
            },
        )
        pipeline = LocalPipeline(local, tmp_path / f"run-{tolerance}", processes=0, verify=True)
        made.append(pipeline)
        pipeline.put_raw_file(csv_file, DAY)
        return pipeline, pipeline.execute(DAY)

    yield run
    for pipeline in made:
        pipeline.close()


def _map_run(pipeline: LocalPipeline, summary: RunSummary) -> Any:
    assert summary.map_run_arn, "the map never ran"
    return pipeline.map_runner.runs[summary.map_run_arn]


def test_no_tolerance_fails_the_detection(run_with_tolerance: Any, failing_firehose: dict[str, int]) -> None:
    pipeline, run = run_with_tolerance(0)
    assert run.status == "FAILED"
    assert run.error == "States.ExceedToleratedFailureThreshold", (run.error, run.cause)
    assert run.failed_state == definition.MAP_STATE
    assert f"{FAILED_ROWS} of {ROWS} items failed" in run.cause
    assert f"in batches {sorted(FAILING_BATCHES)}" in run.cause
    assert "DeliveryError" in run.cause
    assert run.redrivable
    assert run.failed_batches == sorted(FAILING_BATCHES)
    states = [h[1] for h in run.history]
    assert "WaitForDelivery" not in states
    assert "WriteKpis" not in states
    record = _map_run(pipeline, run)
    assert (record.items_total, record.items_failed) == (ROWS, FAILED_ROWS)
    assert record.batches == ROWS // BATCH
    # Each failing batch: its first invocation and every retry on DeliveryError, each refused twice.
    retries = next(
        n for errors, _i, n, _b in detect_retry.DETECT_RETRY if errors == (detect_retry.DELIVERY_ERROR,)
    )
    assert run.lambda_invocations == ROWS // BATCH + retries * len(FAILING_BATCHES)
    assert failing_firehose["entries"] == len(FAILING_BATCHES) * (1 + retries) * 2
    # The outage goes on: a redrive re-runs only the failed batches, which fail again.
    again = pipeline.redrive()
    assert (again.status, again.error, again.redrive_count) == ("FAILED", run.error, 1)
    assert again.lambda_invocations == (1 + retries) * len(FAILING_BATCHES)
    assert _map_run(pipeline, again).redrive_count == 1


def test_tolerated_failures_are_given_up_and_reported(run_with_tolerance: Any) -> None:
    pipeline, run = run_with_tolerance(25)
    record = _map_run(pipeline, run)
    assert record.status == "SUCCEEDED"  # 20 % failed, 25 % tolerated: the map completes
    assert (record.items_total, record.items_succeeded, record.items_failed) == (
        ROWS,
        ROWS - FAILED_ROWS,
        FAILED_ROWS,
    )
    delivered = {r["sourceindex"] for r in ground_truth.delivered_records(pipeline, [run.execution_id])}
    missing = sorted(set(range(ROWS)) - delivered)
    assert missing == [i for i in range(ROWS) if i // BATCH in FAILING_BATCHES]  # really not delivered
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["rowsProcessed"] == run.output["rowsDelivered"] == ROWS - FAILED_ROWS
    assert run.output["rowsFailed"] == FAILED_ROWS  # given up, and said so
    assert "WriteKpis" in [h[1] for h in run.history]
