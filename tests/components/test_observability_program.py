"""Observability wired into the real program, for both stacks.

``__main__.py`` is run as the engine would run it. If it does not construct ``Observability`` yet, the
test adds it with the constructor call proposed for ``__main__.py`` (the same inputs, taken from the
program's own components), so the wiring is proven against the real state machine, detector and stream
either way; ``test_main_constructs_observability`` says which case holds.
"""

from __future__ import annotations

import json
import runpy
from functools import cache

import pytest

from components.observability import Observability
from tests.spec.documented_metrics import metric_problems
from tests.spec.support import ALARM, COMPONENT, SCHEDULE, TOPIC, observability_args
from tools import harness

STACKS = ("dev", "prod")
MAIN = harness.ROOT / "__main__.py"


def main_constructs_observability() -> bool:
    return "Observability(" in MAIN.read_text()


def program() -> None:
    scope = runpy.run_path(str(MAIN), run_name="__main__")
    if any(isinstance(v, Observability) for v in scope.values()):
        return
    # The call proposed for __main__.py.
    Observability(
        "observability",
        observability_args(
            scope["stage"],
            scope["names"],
            state_machine_arn=scope["workflow"].state_machine.arn,
            state_machine_name=scope["workflow"].state_machine_name,
            function_name=scope["detector"].function.name,
            delivery_stream_name=scope["delivery"].stream.name,
        ),
    )


@cache
def run_of(stack: str) -> harness.Run:
    return harness.run(program, stack=stack)


def test_main_constructs_observability():
    if not main_constructs_observability():
        pytest.skip("__main__.py does not construct Observability yet; the other tests here add it")
    for stack in STACKS:
        assert len(harness.run(stack=stack).of_type(COMPONENT)) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_alarms_watch_the_programs_own_state_machine_function_and_stream(stack):
    run = run_of(stack)
    assert len(run.of_type(COMPONENT)) == 1
    identities = {
        "StateMachineArn": run.one("aws:sfn/stateMachine:StateMachine").outputs["arn"],
        "FunctionName": run.one("aws:lambda/function:Function").outputs["name"],
        "DeliveryStreamName": run.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream").outputs[
            "name"
        ],
    }
    identities["service"] = identities["FunctionName"]
    alarms = run.of_type(ALARM)
    assert alarms
    for alarm in alarms:
        dims = alarm.inputs.get("dimensions") or {}
        assert metric_problems(alarm.inputs["namespace"], alarm.inputs["metricName"], dims) == []
        assert dims == {k: identities[k] for k in dims}, alarm.name
    watched = {k for a in alarms for k in (a.inputs.get("dimensions") or {})}
    assert watched == set(identities)
    topic = run.one(TOPIC)
    assert all(a.inputs["alarmActions"] == [topic.outputs["arn"]] for a in alarms)


def test_prod_schedule_starts_the_programs_state_machine():
    run = run_of("prod")
    schedule = run.one(SCHEDULE)
    assert schedule.inputs["target"]["arn"] == run.one("aws:sfn/stateMachine:StateMachine").outputs["arn"]
    assert json.loads(schedule.inputs["target"]["input"]) == {}
    assert run_of("dev").of_type(SCHEDULE) == []


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_pack_accepts_the_stack_with_observability(stack):
    from tools import policy_gate

    report = policy_gate.check(run_of(stack), stage=stack, pack_config=policy_gate.default_config(stack))
    assert report.passed, "\n".join(policy_gate.render(report))
