"""Paths of the deployed definition that a normal day never takes, run locally as AWS would run them:
a reconciliation task that fails, an impossible run date, a day without readings, and the executor's
refusal of a variable that was never assigned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.localrun import asl
from tools.localrun import stack as stack_mod
from tools.localrun.expressions import EvaluationError, Expression, workflow_variables
from tools.localrun.machine import load
from tools.localrun.run import LocalPipeline

from .conftest import DAY

RAW_HEADER = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude\n"


def test_an_unassigned_variable_is_an_evaluation_error_as_in_step_functions() -> None:
    """jsonata-python alone reads an unassigned $found as undefined and concatenates ''."""
    expression = Expression("{% 'found ' & $string($found) %}", "state 'X', field 'Cause'")
    assert expression.evaluate({"found": 3}) == "found 3"
    with pytest.raises(EvaluationError, match=r"variable \$found has not been assigned"):
        expression.evaluate({"states": {}})


def test_variables_read_exclude_functions_locals_and_strings() -> None:
    source = "($y := $number($runDate); $map($xs, function($v) { $v + $y }) & '$notavar' & $states.input)"
    assert workflow_variables(source) == {"runDate", "xs"}


def test_executor_fails_a_state_reading_an_unassigned_variable() -> None:
    machine = load(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "Fail",
            "States": {"Fail": {"Type": "Fail", "Error": "E", "Cause": "{% $string($never) %}"}},
        }
    )
    executor = asl.Executor(
        machine,
        tasks={},
        clock=asl.Clock(asl.datetime(2026, 1, 1, tzinfo=asl.UTC)),
        state_machine_arn=("arn:aws:states:eu-west-1:222222222222:stateMachine:m"),
    )
    result = executor.run({}, name="x")
    assert (result.status, result.error) == ("FAILED", "States.QueryEvaluationError")
    assert "$never" in (result.cause or "")


def test_a_failing_map_run_lookup_ends_with_its_own_error(make_pipeline: Any) -> None:
    pipeline = make_pipeline("dev")

    def denied(state: Any, arguments: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
        raise asl.StatesError("Sfn.AccessDeniedException", "not authorized to perform states:DescribeMapRun")

    pipeline.map_runner.describe_map_run = denied  # type: ignore[method-assign]
    run = pipeline.execute(DAY)
    assert run.status == "FAILED"
    assert (run.error, run.failed_state) == ("ReconciliationError", "ReconciliationError")
    cause = json.loads(run.cause or "{}")
    assert cause["Error"] == "Sfn.AccessDeniedException"
    assert "states:DescribeMapRun" in cause["Cause"]
    assert "ReadMapRunCounts" in [state for _time, state, _event in run.history]


def test_an_impossible_run_date_ends_in_invalid_run_date(make_pipeline: Any) -> None:
    pipeline = make_pipeline("dev")
    for bad in ("2026-02-30", "2026-13-45"):
        run = pipeline.execute(bad)
        assert (run.status, run.error, run.failed_state) == ("FAILED", "InvalidRunDate", "InvalidRunDate")
        assert bad in (run.cause or "")
        assert "ExportDay" not in [state for _time, state, _event in run.history]


def test_an_empty_day_succeeds_with_zero_counts(tmp_path: Path) -> None:
    pipeline = LocalPipeline(stack_mod.rendered("dev"), tmp_path / "run", verify=True)
    try:
        empty = tmp_path / "empty.csv"
        empty.write_text(RAW_HEADER)
        pipeline.put_raw_file(empty, DAY)
        run = pipeline.execute(DAY)
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        assert run.output == {
            "runDate": DAY,
            "mapRunArn": None,
            "rowsProcessed": 0,
            "rowsDelivered": 0,
            "rowsFailed": 0,
        }
        visited = [state for _time, state, _event in run.history]
        assert "NoRows" in visited
        assert "DetectAnomalies" not in visited
        assert run.lambda_invocations == 0
        assert "WriteKpis" in visited
        columns, rows = pipeline.athena.query(
            'SELECT deviceid, readings, validreadings, anomalousreadings, health FROM "sensorflow_dev_db"."device_kpis" WHERE dt = ?',
            [DAY],
        )
        assert [dict(zip(columns, row, strict=True)) for row in rows] == [
            {"deviceid": "*", "readings": 0, "validreadings": 0, "anomalousreadings": 0, "health": "no_data"}
        ]
    finally:
        pipeline.close()
