"""A failed run completes by redrive, as AWS documents it (redrive-executions.html, redrive-map-run.html).

The first two batches meet a Firehose outage longer than every retry (``Faults.fail_batches``): the map
run fails, the execution fails in the map state and says which batches failed. A redrive continues from
that state with the same ARN, re-runs only the failed batches' children (the outage is over), and goes on
through reconciliation and KPIs: every reading delivered, each counted once by record id.
"""

from __future__ import annotations

from typing import Any

import pytest

from spec import definition
from tools.localrun import asl, ground_truth
from tools.localrun.worker import Faults

from .conftest import DAY

FAILED = frozenset({0, 1})


def test_failed_batches_then_redrive_delivers_every_reading_once(make_pipeline: Any, sim_day: Any) -> None:
    # deliveryMaxAttempts 2 keeps the detector's real back-off sleeps short; 500-row batches make the
    # day several batches, two of which fail.
    pipeline = make_pipeline(
        "dev",
        {"deliveryMaxAttempts": 2, "maxItemsPerBatch": 500},
        processes=0,
        faults=Faults(fail_batches=FAILED),
    )
    first = pipeline.execute(DAY)
    assert (first.status, first.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    assert first.failed_state == definition.MAP_STATE
    assert first.failed_batches == sorted(FAILED)
    assert first.redrivable
    visited = [state for _time, state, _event in first.history]
    assert "WaitForDelivery" not in visited

    invocations_before = pipeline.map_runner.child_counters.lambda_invocations
    second = pipeline.redrive()
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    assert second.execution_id == first.execution_id
    assert second.redrive_count == 1
    # Only the failed batches ran again, each once (no retry needed now).
    assert pipeline.map_runner.child_counters.lambda_invocations - invocations_before == len(FAILED)
    record = pipeline.map_runner.runs[second.map_run_arn]
    assert (record.status, record.redrive_count, record.items_failed) == ("SUCCEEDED", 1, 0)
    assert record.describe()["ItemCounts"]["Succeeded"] == record.items_total
    # The redrive continued from the map: nothing before it ran again.
    redriven = [state for _time, state, _event in second.history][len(visited) :]
    assert redriven[0] == definition.MAP_STATE
    assert "ExportDay" not in redriven
    assert "WriteKpis" in redriven

    truth = sim_day[1]
    assert second.output["rowsProcessed"] == second.output["rowsDelivered"] == truth.num_rows
    assert second.output["rowsFailed"] == 0
    pipeline.settle()
    records = ground_truth.delivered_records(pipeline, [second.execution_id])
    rows = {(r["runid"], r["sourceindex"]) for r in records}
    assert len(rows) == truth.num_rows  # every row of the day, however often delivered
    clean = make_pipeline("dev", folder="clean")
    assert clean.execute(DAY).status == "SUCCEEDED"
    clean.settle()
    expected_ids = {
        r["recordid"] for r in ground_truth.delivered_records(clean, [clean.runs[-1].execution_id])
    }
    assert {r["recordid"] for r in records} == expected_ids  # every reading, each once by record id


def test_a_succeeded_run_cannot_be_redriven(make_pipeline: Any) -> None:
    pipeline = make_pipeline("dev")
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    with pytest.raises(asl.RedriveError, match="SUCCEEDED and cannot be redriven"):
        pipeline.redrive()


def test_a_bad_run_date_is_not_rescued_by_redrive(make_pipeline: Any) -> None:
    """InvalidRunDate is a Fail state: the redrive re-runs it and fails again, with the same cause."""
    pipeline = make_pipeline("dev")
    run = pipeline.execute("2026-02-30")
    assert (run.error, run.failed_state) == ("InvalidRunDate", "InvalidRunDate")
    again = pipeline.redrive()
    assert (again.status, again.error, again.cause, again.redrive_count) == (
        "FAILED",
        run.error,
        run.cause,
        1,
    )


def test_the_command_fails_batches_then_redrives_the_last_failed_execution(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.localrun.__main__ import main

    out = tmp_path / "out"
    common = ["--stack", "dev", "--out", str(out), "--no-progress", "--processes", "0"]
    assert main([*common, "--devices", "2", "--fail-batches", "1"]) == 1
    first = capsys.readouterr().out
    assert "failed in DetectAnomalies" in first
    assert "batches [0] (0-based, in map order) failed; the run can be redriven" in first
    assert main([*common, "--redrive"]) == 0
    second = capsys.readouterr().out
    assert "redrive 1: SUCCEEDED, 576 rows" in second
    assert "576 of 576 rows delivered; on disk 576 distinct rows, 576 distinct record ids" in second
    assert main([*common, "--redrive"]) == 2
    assert "SUCCEEDED and cannot be redriven" in capsys.readouterr().err
