"""The definition check (``make check-definition``): validators with their known lags, and our rules,
each with a definition that passes and one that fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from spec import definition, detect_retry
from tests.spec.test_definition import stage_definition
from tools import check_definition as cd
from tools.definition_checks import fields, flow, lags, limits, reserved, validators


@pytest.fixture(scope="module")
def stages() -> dict[str, dict[str, Any]]:
    return {stage: stage_definition(stage) for stage in ("dev", "prod")}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_both_stages_pass_every_validator_and_rule(stages, stage):
    problems, used = cd.check(stages[stage])
    assert problems == [], [p.line() for p in problems]
    assert used, "no validator message matched a known lag: are the validators running?"


def test_every_known_lag_still_matches_a_validator_message(stages):
    assert lags.KNOWN_LAGS
    assert cd.stale_lags(list(stages.values())) == []
    for lag in lags.KNOWN_LAGS:
        assert lag.why, lag
        assert lag.doc.startswith("docs.aws.amazon.com/"), lag


def test_a_stale_lag_is_reported(stages):
    """A lag for a message no validator emits any more is reported, so the list cannot rot."""
    ghost = lags.Lag("statelint", r"a message statelint no longer emits", "why", "docs.aws.amazon.com/x")
    original = lags.KNOWN_LAGS
    try:
        lags.KNOWN_LAGS = (*original, ghost)
        assert cd.stale_lags(list(stages.values())) == [ghost]
    finally:
        lags.KNOWN_LAGS = original


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
    assert [p.source for p in reserved.states_all(machine)] == ["states-all"]
    machine["States"]["A"]["Retry"].reverse()
    assert reserved.states_all(machine) == []


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
    problems = flow.variables(_chain("{% 'found ' & $string($n) %}"))
    assert [(p.source, p.path) for p in problems] == [("unassigned-variable", "$.States.Failed")]
    assert flow.variables(_chain("{% $string($states.input) %}")) == []
    # The catcher's own Assign does reach the Fail state.
    assert flow.variables(_chain("{% $string($n) %}", catch_assign={"n": 0})) == []


def test_a_distributed_child_cannot_read_the_parents_variables(stages):
    broken = copy.deepcopy(stages["dev"])
    task = definition.map_state(broken)["ItemProcessor"]["States"][definition.DETECT_TASK]
    task["Arguments"]["Payload"] = "{% $merge([$states.input, {'day': $runDate}]) %}"
    problems = flow.variables(broken)
    assert [p.source for p in problems] == ["child-reads-parent-variable"], [p.line() for p in problems]
    assert flow.variables(stages["dev"]) == []


def test_error_output_only_inside_a_catch(stages):
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["WriteKpis"]["Output"] = "{% $states.errorOutput %}"
    assert [p.source for p in reserved.error_output(broken)] == ["error-output-outside-catch"]
    assert reserved.error_output(stages["dev"]) == []


def test_express_budget_fails_the_old_prod_retry_policy(stages):
    broken = copy.deepcopy(stages["prod"])
    task = definition.map_state(broken)["ItemProcessor"]["States"][definition.DETECT_TASK]
    task["TimeoutSeconds"] = 130
    task["Retry"] = [
        {
            "ErrorEquals": list(detect_retry.LAMBDA_TRANSIENT_ERRORS),
            "IntervalSeconds": 2,
            "MaxAttempts": 6,
            "BackoffRate": 2,
        },
        {
            "ErrorEquals": [detect_retry.DELIVERY_ERROR],
            "IntervalSeconds": 10,
            "MaxAttempts": 2,
            "BackoffRate": 3,
        },
    ]
    assert [p.source for p in limits.express_budget(broken)] == ["express-budget"]
    assert limits.express_budget(stages["prod"]) == []


def test_map_limits(stages):
    broken = copy.deepcopy(stages["dev"])
    state = definition.map_state(broken)
    state["ItemBatcher"]["MaxInputBytesPerBatch"] = 262_145
    state["ToleratedFailurePercentage"] = 101
    state["Label"] = "detect anomalies"
    paths = sorted(p.path.rsplit(".", 1)[-1] for p in limits.map_limits(broken))
    assert paths == ["Label", "MaxInputBytesPerBatch", "ToleratedFailurePercentage"]
    assert limits.map_limits(stages["dev"]) == []


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
    from tools.localrun.machine import DefinitionError
    from tools.localrun.run import LocalPipeline

    local = stack_mod.rendered("dev")
    broken = copy.deepcopy(local.definition)
    broken["States"]["ReadMapRunCounts"]["Catch"][0]["Next"] = "ReconciliationFailed"
    with pytest.raises(DefinitionError, match="unassigned-variable"):
        LocalPipeline(dataclasses.replace(local, definition=broken), tmp_path / "run")


def _task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", **fields}


def test_states_result_only_in_the_output_and_assign_of_task_parallel_map(stages):
    assert reserved.states_result_scope(stages["dev"]) == []
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": _task(
                Arguments={"x": "{% $states.result.x %}"},
                Output="{% $states.result.Payload %}",
                Assign={"y": "{% $states.result.y %}", "literal": "{% '$states.result' %}"},
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "P", "Output": "{% $states.result %}"}],
                Next="P",
            ),
            "P": {"Type": "Pass", "Output": "{% $states.result %}", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.result.ok %}", "Next": "D"}],
                "Default": "D",
            },
            "D": {"Type": "Succeed"},
        },
    }
    paths = sorted(p.path for p in reserved.states_result_scope(machine))
    assert paths == [
        "$.States.C.Choices[0].Condition",
        "$.States.P.Output",
        "$.States.T.Arguments.x",
        "$.States.T.Catch[0].Output",
    ]
    assert {p.source for p in reserved.states_result_scope(machine)} == {"states-result-scope"}


def test_state_fields(stages):
    assert fields.state_fields(stages["dev"]) == []
    assert fields.state_fields(stages["prod"]) == []
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["ExportFailed"]["Output"] = "{% $states.input %}"  # Output is not allowed in Fail
    broken["States"]["PrepareRun"]["Arguments"] = {"a": 1}  # Arguments only on Task and Parallel
    broken["States"]["NoRows"]["Retry"] = [{"ErrorEquals": ["States.ALL"]}]  # Retry only on Task/Parallel/Map
    broken["States"]["WriteKpis"]["Parameters"] = {"a": 1}  # JSONPath field in a JSONata state
    broken["States"]["WriteKpis"]["Catch"][0]["ResultPath"] = "$.error"  # JSONPath catcher field
    broken["States"]["ReadMapRunCounts"]["Retry"][0]["Backoff"] = 2  # misspelt retrier field
    broken["States"]["HasRows"]["Choices"][0]["Variable"] = "$.x"  # JSONPath choice rule field
    problems = fields.state_fields(broken)
    assert {p.source for p in problems} == {"state-fields"}
    assert sorted(p.path for p in problems) == [
        "$.States.ExportFailed.Output",
        "$.States.HasRows.Choices[0].Variable",
        "$.States.NoRows.Retry",
        "$.States.PrepareRun.Arguments",
        "$.States.ReadMapRunCounts.Retry[0].Backoff",
        "$.States.WriteKpis.Catch[0].ResultPath",
        "$.States.WriteKpis.Parameters",
    ]


def test_state_fields_follow_the_query_language():
    jsonpath = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Parameters": {"a": 1}, "ResultPath": "$.a", "Next": "S"},
                   "S": {"Type": "Succeed", "Output": {"a": 1}}},
    }  # fmt: skip
    assert [p.path for p in fields.state_fields(jsonpath)] == ["$.States.S.Output"]
    mixed = {"QueryLanguage": "JSONata", "StartAt": "S",
             "States": {"S": {"Type": "Succeed", "QueryLanguage": "JSONPath"}}}  # fmt: skip
    assert [p.path for p in fields.state_fields(mixed)] == ["$.States.S.QueryLanguage"]
    unknown = {"StartAt": "S", "States": {"S": {"Type": "Sleep", "End": True}}}
    assert [p.path for p in fields.state_fields(unknown)] == ["$.States.S.Type"]


def test_reachability(stages):
    assert flow.reachability(stages["dev"]) == []
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["Orphan"] = {"Type": "Pass", "Next": "Loop"}
    broken["States"]["Loop"] = {"Type": "Pass", "Next": "Orphan"}  # a loop no path from StartAt enters
    broken["States"]["WaitForDelivery"]["Next"] = "Nowhere"
    problems = flow.reachability(broken)
    assert {p.source for p in problems} == {"reachability"}
    paths = {p.path for p in problems}
    assert {"$.States.Orphan", "$.States.Loop", "$.States.WaitForDelivery.Next"} <= paths
    # Everything after the broken transition is unreachable now.
    assert "$.States.ReadMapRunCounts" in paths


def test_reachability_inside_a_map_and_a_branch():
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "A", "States": {"A": _task(End=True), "B": _task(End=True)}},
                "Next": "P",
            },
            "P": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "M"}}}],
                "End": True,
            },
        },
    }
    assert sorted(p.path for p in flow.reachability(machine)) == [
        "$.States.M.ItemProcessor.States.B",
        "$.States.P.Branches[0].States.X.Next",  # a branch cannot leave its own States
    ]


def test_branches_and_inline_maps_read_outer_variables_distributed_children_do_not():
    def machine(mode: str | None) -> dict[str, Any]:
        processor: dict[str, Any] = {
            "StartAt": "Use",
            "States": {"Use": _task(Arguments={"d": "{% $day %}"}, End=True)},
        }
        if mode:
            processor["ProcessorConfig"] = {"Mode": mode, "ExecutionType": "EXPRESS"}
        return {
            "QueryLanguage": "JSONata",
            "StartAt": "Set",
            "States": {
                "Set": {"Type": "Pass", "Assign": {"day": "2026-01-01"}, "Next": "M"},
                "M": {"Type": "Map", "Items": [1], "ItemProcessor": processor, "Next": "B"},
                "B": {"Type": "Parallel", "Branches": [{k: v for k, v in processor.items() if k != "ProcessorConfig"}],
                      "End": True},
            },
        }  # fmt: skip

    assert flow.variables(machine("INLINE")) == []
    assert flow.variables(machine(None)) == []
    problems = flow.variables(machine("DISTRIBUTED"))
    assert [(p.source, p.path) for p in problems] == [
        ("child-reads-parent-variable", "$.States.M.ItemProcessor.States.Use")
    ]


def test_map_reader_and_writer_values(stages):
    broken = copy.deepcopy(stages["dev"])
    state = definition.map_state(broken)
    state["ItemReader"]["ReaderConfig"]["InputType"] = "JSON"  # not a format an Athena manifest lists
    state["ResultWriter"]["WriterConfig"]["OutputType"] = "CSV"
    messages = [p.line() for p in limits.map_limits(broken)]
    assert any("ReaderConfig.InputType: an ATHENA_DATA manifest" in m for m in messages), messages
    assert any("WriterConfig.OutputType: 'CSV' not one of" in m for m in messages), messages


def test_the_language_service_runs_and_its_parquet_lag_hides_only_parquet(stages):
    """The service reports what it finds (a negative control), and its one lag never hides a bad value."""
    raw = validators.asl_language_service(stages["dev"])
    assert [p.path for p in raw] == [f"$.States.{definition.MAP_STATE}.ItemReader.ReaderConfig.InputType"]
    broken = copy.deepcopy(stages["dev"])
    broken["States"]["Orphan"] = {"Type": "Succeed"}
    assert any(p.path == "$.States.Orphan" for p in validators.asl_language_service(broken))
    definition.map_state(broken)["ItemReader"]["ReaderConfig"]["InputType"] = "XML"
    problems, _used = cd.check(broken)
    assert any(
        p.source == "asl-language-service" and p.path.endswith("ReaderConfig.InputType") for p in problems
    ), [p.line() for p in problems]


def _break(rule: str, d: dict[str, Any]) -> None:
    """Break one rule in a copy of a stage definition."""
    states = d["States"]
    child = definition.map_state(d)["ItemProcessor"]["States"][definition.DETECT_TASK]
    if rule == "states-all":  # the original catcher AWS rejected at create time
        definition.map_state(d)["Catch"] = [{"ErrorEquals": [*definition.MAP_ERRORS, "States.ALL"], "Next": "ExportFailed"}]  # fmt: skip
    elif rule == "unassigned-variable":
        states["ReadMapRunCounts"]["Catch"][0]["Next"] = "ReconciliationFailed"
    elif rule == "child-reads-parent-variable":
        child["Arguments"]["Payload"] = "{% $merge([$states.input, {'day': $runDate}]) %}"
    elif rule == "error-output-outside-catch":
        states["WriteKpis"]["Output"] = "{% $states.errorOutput %}"
    elif rule == "states-result-scope":
        states["NoRows"]["Output"] = "{% $states.result %}"
    elif rule == "state-fields":
        states["ExportFailed"]["Output"] = "{% $states.input %}"
    elif rule == "reachability":
        states["Orphan"] = {"Type": "Succeed"}
    elif rule == "express-budget":
        child["TimeoutSeconds"] = 200
    elif rule == "map-limits":
        definition.map_state(d)["ItemBatcher"]["MaxInputBytesPerBatch"] = 300_000
    else:
        raise AssertionError(rule)


EXPECTED_PATHS = {
    "states-all": f"$.States.{definition.MAP_STATE}.Catch[0].ErrorEquals",
    "unassigned-variable": "$.States.ReconciliationFailed",
    "child-reads-parent-variable": f"$.States.{definition.MAP_STATE}.ItemProcessor.States.{definition.DETECT_TASK}",
    "error-output-outside-catch": "$.States.WriteKpis",
    "states-result-scope": "$.States.NoRows.Output",
    "state-fields": "$.States.ExportFailed.Output",
    "reachability": "$.States.Orphan",
    "express-budget": f"$.States.{definition.MAP_STATE}.ItemProcessor.States.{definition.DETECT_TASK}",
    "map-limits": f"$.States.{definition.MAP_STATE}.ItemBatcher.MaxInputBytesPerBatch",
}


def test_every_rule_has_a_broken_definition_here(stages):
    """Each of our rules (cd.RULES) finds at least one of the broken copies below: none goes untested."""
    broken = {}
    for rule_id in EXPECTED_PATHS:
        broken[rule_id] = copy.deepcopy(stages["dev"])
        _break(rule_id, broken[rule_id])
    assert cd.RULES
    for rule in cd.RULES:
        assert any(rule(d) for d in broken.values()), rule.__name__
        assert rule(stages["dev"]) == [], rule.__name__


@pytest.mark.parametrize("rule", sorted(EXPECTED_PATHS))
def test_the_command_names_each_broken_rule_and_its_path(rule, stages, tmp_path: Path, capsys):
    broken = copy.deepcopy(stages["dev"])
    _break(rule, broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert cd.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{rule}: {EXPECTED_PATHS[rule]}: " in out, out


def test_the_docs_name_every_validator_rule_and_lag():
    text = (Path(__file__).resolve().parents[2] / "docs" / "definition-checks.md").read_text()
    for source in ("asl-validator", "statelint", "asl-language-service", *EXPECTED_PATHS):
        assert f"`{source}`" in text, source
    for lag in lags.KNOWN_LAGS:
        page = lag.doc.split()[0].rsplit("/", 1)[-1]
        assert page in text, lag


def test_error_output_in_a_branch_catcher_is_inside_a_catch():
    branch = {
        "StartAt": "T",
        "States": {
            "T": _task(Catch=[{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "F"}],
                       End=True),
            "F": {"Type": "Fail"},
        },
    }  # fmt: skip
    machine = {"QueryLanguage": "JSONata", "StartAt": "P",
               "States": {"P": {"Type": "Parallel", "Branches": [branch], "End": True}}}  # fmt: skip
    assert reserved.error_output(machine) == []
    branch["States"]["T"]["Output"] = "{% $states.errorOutput %}"
    assert [p.path for p in reserved.error_output(machine)] == ["$.States.P.Branches[0].States.T"]


def test_map_limits_leave_room_for_the_batch_input_envelope():
    """A child's input is the items plus the BatchInput envelope, capped at 256 KiB: a batch limit that
    fills the whole quota with items leaves no room for it; the committed stacks' limits do."""
    from tools.definition_checks.limits import map_limits

    batch_input = {"executionName": "{% $states.context.Execution.Name %}", "runDate": "{% $runDate %}"}

    def definition(limit: int) -> dict:
        batcher = {"MaxInputBytesPerBatch": limit, "BatchInput": batch_input}
        return {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemBatcher": batcher, "End": True}}}

    assert [p.source for p in map_limits(definition(262_144))] == ["map-limits"]
    assert map_limits(definition(260_096)) == []
