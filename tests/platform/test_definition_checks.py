"""The definition check (``make check-definition``): validators with their known lags, and our rules,
each with a definition that passes and one that fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components import definition
from tools import check_definition as cd

from .test_definition import stage_definition


@pytest.fixture(scope="module")
def stages() -> dict[str, dict[str, Any]]:
    return {stage: stage_definition(stage) for stage in ("dev", "prod")}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_both_stages_pass_every_validator_and_rule(stages, stage):
    problems, used = cd.check(stages[stage])
    assert problems == [], [p.line() for p in problems]
    assert used, "no validator message matched a known lag: are the validators running?"


def test_every_known_lag_still_matches_a_validator_message(stages):
    assert cd.KNOWN_LAGS
    assert cd.stale_lags(list(stages.values())) == []
    for lag in cd.KNOWN_LAGS:
        assert lag.why, lag
        assert lag.doc.startswith("docs.aws.amazon.com/"), lag


def test_a_stale_lag_is_reported(stages):
    """A lag for a message no validator emits any more is reported, so the list cannot rot."""
    ghost = cd.Lag("statelint", r"a message statelint no longer emits", "why", "docs.aws.amazon.com/x")
    original = cd.KNOWN_LAGS
    try:
        cd.KNOWN_LAGS = (*original, ghost)
        assert cd.stale_lags(list(stages.values())) == [ghost]
    finally:
        cd.KNOWN_LAGS = original


def test_the_original_states_all_catcher_is_rejected_by_statelint_and_our_rule(stages):
    """Negative control: the catcher AWS rejected at create time."""
    broken = copy.deepcopy(stages["dev"])
    definition.map_state(broken)["Catch"] = [
        {"ErrorEquals": [*definition.MAP_ERRORS, "States.ALL"], "Next": "ExportFailed"}
    ]
    problems, _used = cd.check(broken)
    sources = {p.source for p in problems}
    assert {"statelint", "states-all"} <= sources, [p.line() for p in problems]


def test_states_all_must_be_last_in_retry_too():
    machine = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}],
                "End": True,
            }
        },
    }
    assert [p.source for p in cd.states_all(machine)] == ["states-all"]
    machine["States"]["A"]["Retry"].reverse()
    assert cd.states_all(machine) == []


def _chain(fail_cause: str, *, catch_assign: dict | None = None) -> dict[str, Any]:
    catcher: dict[str, Any] = {"ErrorEquals": ["States.ALL"], "Next": "Failed"}
    if catch_assign:
        catcher["Assign"] = catch_assign
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Count",
        "States": {
            "Count": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sfn:describeMapRun",
                "Assign": {"n": "{% $states.result.ItemCounts.Total %}"},
                "Catch": [catcher],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed", "Output": {"n": "{% $n %}"}},
            "Failed": {"Type": "Fail", "Error": "E", "Cause": fail_cause},
        },
    }


def test_a_variable_unassigned_on_a_catch_path_is_found():
    problems = cd.variables(_chain("{% 'found ' & $string($n) %}"))
    assert [(p.source, p.path) for p in problems] == [("unassigned-variable", "$.States.Failed")]
    assert cd.variables(_chain("{% $string($states.input) %}")) == []
    # The catcher's own Assign does reach the Fail state.
    assert cd.variables(_chain("{% $string($n) %}", catch_assign={"n": 0})) == []


def test_a_distributed_child_cannot_read_the_parents_variables(stages):
    broken = copy.deepcopy(stages["dev"])
    task = definition.map_state(broken)["ItemProcessor"]["States"][definition.DETECT_TASK]
    task["Arguments"]["Payload"] = "{% $merge([$states.input, {'day': $runDate}]) %}"
    problems = cd.variables(broken)
    assert [p.source for p in problems] == ["child-reads-parent-variable"], [p.line() for p in problems]
    assert cd.variables(stages["dev"]) == []


def test_error_output_only_inside_a_catch(stages):
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["WriteKpis"]["Output"] = "{% $states.errorOutput %}"
    assert [p.source for p in cd.error_output(broken)] == ["error-output-outside-catch"]
    assert cd.error_output(stages["dev"]) == []


def test_express_budget_fails_the_old_prod_retry_policy(stages):
    broken = copy.deepcopy(stages["prod"])
    task = definition.map_state(broken)["ItemProcessor"]["States"][definition.DETECT_TASK]
    task["TimeoutSeconds"] = 130
    task["Retry"] = [
        {
            "ErrorEquals": list(definition.LAMBDA_TRANSIENT_ERRORS),
            "IntervalSeconds": 2,
            "MaxAttempts": 6,
            "BackoffRate": 2,
        },
        {
            "ErrorEquals": [definition.DELIVERY_ERROR],
            "IntervalSeconds": 10,
            "MaxAttempts": 2,
            "BackoffRate": 3,
        },
    ]
    assert [p.source for p in cd.express_budget(broken)] == ["express-budget"]
    assert cd.express_budget(stages["prod"]) == []


def test_map_limits(stages):
    broken = copy.deepcopy(stages["dev"])
    state = definition.map_state(broken)
    state["ItemBatcher"]["MaxInputBytesPerBatch"] = 262_145
    state["ToleratedFailurePercentage"] = 101
    state["Label"] = "detect anomalies"
    paths = sorted(p.path.rsplit(".", 1)[-1] for p in cd.map_limits(broken))
    assert paths == ["Label", "MaxInputBytesPerBatch", "ToleratedFailurePercentage"]
    assert cd.map_limits(stages["dev"]) == []


def test_the_command_prints_ok_or_each_problem_with_its_rule_and_path(tmp_path: Path, stages, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(stages["dev"]))
    assert cd.main([str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["ReadMapRunCounts"]["Catch"][0]["Next"] = "ReconciliationFailed"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert cd.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "unassigned-variable: $.States.ReconciliationFailed: reads $expected" in out


def test_the_local_executor_refuses_a_definition_the_check_rejects(stages, tmp_path: Path):
    import dataclasses

    from tools.localrun import stack as stack_mod
    from tools.localrun.asl import DefinitionError
    from tools.localrun.run import LocalPipeline

    local = stack_mod.from_settings("dev")
    broken = copy.deepcopy(local.definition)
    broken["States"]["ReadMapRunCounts"]["Catch"][0]["Next"] = "ReconciliationFailed"
    with pytest.raises(DefinitionError, match="unassigned-variable"):
        LocalPipeline(dataclasses.replace(local, definition=broken), tmp_path / "run")
