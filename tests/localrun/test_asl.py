"""The executor: definition checks name the state and field; Retry, Catch, Assign and JSONata semantics."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.localrun import asl, stack
from tools.localrun.expressions import Expression
from tools.localrun.machine import DefinitionError, load

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:sm"
TASK = "arn:aws:states:::athena:getQueryResults"


def _definition(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start, "States": states}


def _run(definition: dict[str, Any], task: Any = None, execution_input: Any = None) -> asl.ExecutionResult:
    machine = load(definition)
    executor = asl.Executor(
        machine,
        tasks={"athena:getQueryResults": task or (lambda s, a, c: {"echo": a})},
        clock=asl.Clock(datetime(2025, 6, 2, 2, 30, tzinfo=UTC)),
        state_machine_arn=ARN,
        verify=True,
    )
    return executor.run(execution_input or {}, name="t")


def test_the_stage_definitions_load() -> None:
    for stage in ("dev", "prod"):
        machine = load(stack.rendered(stage).definition)
        assert "DetectAnomalies" in machine.processors
        assert machine.states["DetectAnomalies"].type == "Map"


def test_unsupported_field_names_state_and_field() -> None:
    definition = copy.deepcopy(stack.rendered("dev").definition)
    definition["States"]["DetectAnomalies"]["ResultSelector"] = {"x": 1}
    with pytest.raises(
        DefinitionError, match=r"state 'DetectAnomalies'.*field 'ResultSelector' is not supported"
    ):
        load(definition)


def test_unsupported_nested_field_names_its_path() -> None:
    definition = copy.deepcopy(stack.rendered("dev").definition)
    definition["States"]["DetectAnomalies"]["ItemBatcher"]["MaxItemsPerBatchPath"] = "$.n"
    with pytest.raises(
        DefinitionError, match=r"state 'DetectAnomalies', field 'ItemBatcher'.*'MaxItemsPerBatchPath'"
    ):
        load(definition)


def test_broken_jsonata_names_state_and_field() -> None:
    definition = copy.deepcopy(stack.rendered("dev").definition)
    definition["States"]["PrepareRun"]["Assign"]["runName"] = "{% $replace($states.context.Execution.Name, %}"
    with pytest.raises(
        DefinitionError, match=r"state 'PrepareRun', field 'Assign'\.runName.*does not compile"
    ):
        load(definition)


def test_unknown_resource_and_jsonpath_are_refused() -> None:
    bad = _definition({"A": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": True}})
    with pytest.raises(DefinitionError, match=r"state 'A', field 'Resource'"):
        load(bad)
    with pytest.raises(DefinitionError, match="QueryLanguage"):
        load({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    with pytest.raises(DefinitionError, match=r"state 'A'.*field 'Next' names 'Nowhere'"):
        load(_definition({"A": {"Type": "Pass", "Next": "Nowhere"}}))


def test_assign_uses_values_from_before_the_state() -> None:
    result = _run(
        _definition(
            {
                "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
                "B": {
                    "Type": "Pass",
                    "Assign": {"x": "{% $x + 1 %}"},
                    "Output": {"seen": "{% $x %}"},
                    "Next": "C",
                },
                "C": {
                    "Type": "Succeed",
                    "Output": {"before": "{% $states.input.seen %}", "after": "{% $x %}"},
                },
            }
        )
    )
    assert result.status == "SUCCEEDED"
    assert result.output == {"before": 1, "after": 2}


def test_retry_then_catch_with_error_output() -> None:
    calls: list[int] = []

    def flaky(state: Any, args: dict, ctx: dict) -> Any:
        calls.append(1)
        raise asl.StatesError("Athena.TooManyRequestsException", "slow down")

    definition = _definition(
        {
            "A": {
                "Type": "Task",
                "Resource": TASK,
                "Retry": [
                    {
                        "ErrorEquals": ["Athena.TooManyRequestsException"],
                        "IntervalSeconds": 5,
                        "MaxAttempts": 2,
                        "BackoffRate": 2,
                    }
                ],
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "Next": "F", "Output": "{% $states.errorOutput %}"}
                ],
                "End": True,
            },
            "F": {
                "Type": "Fail",
                "Error": "Failed",
                "Cause": "{% $states.input.Error & ': ' & $states.input.Cause %}",
            },
        }
    )
    machine = load(definition)
    clock = asl.Clock(datetime(2025, 6, 2, tzinfo=UTC))
    result = asl.Executor(
        machine, tasks={"athena:getQueryResults": flaky}, clock=clock, state_machine_arn=ARN
    ).run({}, name="t")
    assert len(calls) == 3  # the first attempt and two retries
    assert result.counters.retries == 2
    assert (
        result.stop - result.start
    ).total_seconds() == 5 + 10  # IntervalSeconds * BackoffRate^n, simulated
    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("Failed", "Athena.TooManyRequestsException: slow down")


def test_runtime_jsonata_error_is_a_query_evaluation_error() -> None:
    result = _run(_definition({"A": {"Type": "Pass", "Output": "{% 'a' + 1 %}", "End": True}}))
    assert result.status == "FAILED"
    assert result.error == "States.QueryEvaluationError"
    assert "state 'A', field 'Output'" in str(result.cause)


def test_choice_requires_a_boolean_and_wait_advances_the_clock() -> None:
    result = _run(
        _definition(
            {
                "A": {"Type": "Wait", "Seconds": 360, "Next": "B"},
                "B": {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $states.input.n > 1 %}", "Next": "C"}],
                    "Default": "D",
                },
                "C": {"Type": "Succeed"},
                "D": {"Type": "Fail", "Error": "Low"},
            }
        ),
        execution_input={"n": 2},
    )
    assert result.status == "SUCCEEDED"
    assert (result.stop - result.start).total_seconds() == 360
    assert [h[1] for h in result.counters.history] == ["A", "B", "C"]


def test_fast_paths_agree_with_jsonata() -> None:
    bindings = {
        "states": {
            "input": {"Items": [1, 2], "BatchInput": {"a": None}},
            "context": {"Map": {"Item": {"Value": {"x": 1.5}}}},
        }
    }
    for source in (
        "{% $states.input %}",
        "{% $states.context.Map.Item.Value %}",
        "{% $states.input.Items %}",
        "{% $states.input.nope %}",
        "{% $states.input.BatchInput.a %}",
    ):
        expression = Expression(source, "test")
        assert expression.evaluate(bindings, fast=True, verify=True) == expression.evaluate(
            bindings, fast=False
        )
