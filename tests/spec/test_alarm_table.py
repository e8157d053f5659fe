"""The alarm table as data: documented metrics, deliberate missing-data policies, valid evaluation ranges."""

from __future__ import annotations

import dataclasses

import pytest

from spec.alarms import (
    AlarmSettings,
    AlarmSpec,
    Comparison,
    MissingData,
    Scope,
    alarm_specs,
    evaluation_range_problems,
    publishing_alarm_arns,
)
from spec.naming import Names
from tests.spec.documented_metrics import metric_problems
from tests.spec.support import MOCK_ACCOUNT, inputs_for, load_settings

STACKS = ("dev", "prod")


def specs_for(stack: str, **overrides: object) -> list[AlarmSpec]:
    settings = load_settings(stack, overrides)
    return alarm_specs(
        AlarmSettings.of(settings), Names(settings.stage, MOCK_ACCOUNT), **inputs_for(settings.stage)
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_watches_a_documented_metric_with_documented_dimensions(stack):
    specs = specs_for(stack, scheduleEnabled=True, ownsAccountAlarms=True)
    assert len(specs) >= 14
    problems = [p for s in specs for p in metric_problems(s.namespace, s.metric, s.dimensions)]
    assert problems == []


@pytest.mark.parametrize(
    ("key", "field", "value"),
    [
        ("executions-failed", "metric", "ExecutionsFailedCount"),  # the classic misspelling
        ("executions-throttled", "metric", "ExecutionsThrottled"),  # plural: not the documented name
        ("delivery-freshness", "metric", "DeliveryToS3.Freshness"),
        ("executions-failed", "namespace", "AWS/StepFunctions"),
        ("executions-failed", "dimensions", {"StateMachine": "x"}),
        ("open-map-runs", "dimensions", {"StateMachineArn": "x"}),  # account series: no dimension
    ],
)
def test_negative_control_a_misspelt_metric_or_dimension_fails_the_check(key, field, value):
    spec = next(s for s in specs_for("prod") if s.key == key)
    assert metric_problems(spec.namespace, spec.metric, spec.dimensions) == []
    wrong = dataclasses.replace(spec, **{field: value})
    assert metric_problems(wrong.namespace, wrong.metric, wrong.dimensions) != []


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_states_why_it_treats_missing_data_as_it_does(stack):
    specs = specs_for(stack, scheduleEnabled=True)
    assert specs
    assert all(isinstance(s.missing_data, MissingData) and s.missing_data_why for s in specs)
    # No alarm reads missing data as breaching: a fresh deploy has none. Only "no success" reads
    # silence as trouble, through its insufficient-data notification.
    assert [s.key for s in specs if s.missing_data is MissingData.BREACHING] == []
    assert [s.key for s in specs if s.notify_insufficient_data] == ["no-recent-success"]
    assert [s.key for s in specs if s.missing_data is MissingData.MISSING] == ["no-recent-success"]


def test_account_alarms_follow_the_ownership_setting():
    owned = [s for s in specs_for("dev", ownsAccountAlarms=True) if s.scope is Scope.ACCOUNT]
    assert {s.key for s in owned} == {"open-map-runs", "map-run-backlog"}
    assert all(s.name.startswith("sensorflow-account-") for s in owned)
    # PutMetricAlarm overwrites by name: the owner's stage in the name keeps a second owner from taking
    # the alarm over. dev and prod owners in one account would make four distinct alarms, not two.
    prod_owned = [s for s in specs_for("prod", ownsAccountAlarms=True) if s.scope is Scope.ACCOUNT]
    assert prod_owned
    assert not {s.name for s in owned} & {s.name for s in prod_owned}
    assert all(s.dimensions == {} for s in owned)  # the series has no dimension at all
    assert [s for s in specs_for("dev", ownsAccountAlarms=False) if s.scope is Scope.ACCOUNT] == []


def test_open_map_run_threshold_comes_from_config():
    spec = next(s for s in specs_for("prod", openMapRunThreshold=750) if s.key == "open-map-runs")
    assert (spec.statistic, spec.threshold, spec.comparison) == ("Maximum", 750, Comparison.GTE)


@pytest.mark.parametrize("hours", [1, 24, 26, 168])
def test_no_success_window_is_a_valid_cloudwatch_evaluation_range(hours):
    spec = next(
        s
        for s in specs_for("prod", successWindowHours=hours, scheduleEnabled=True)
        if s.key == "no-recent-success"
    )
    assert spec.period == 3_600  # hourly periods may span up to 7 days; shorter ones only 1 day
    assert spec.evaluation_periods == spec.datapoints_to_alarm == hours
    assert spec.evaluation_range_seconds == hours * 3_600
    assert evaluation_range_problems(spec) == []
    assert (spec.comparison, spec.threshold, spec.missing_data) == (Comparison.LT, 1, MissingData.MISSING)


def test_evaluation_range_check_rejects_what_cloudwatch_rejects():
    spec = next(s for s in specs_for("prod") if s.key == "no-recent-success")
    assert evaluation_range_problems(
        dataclasses.replace(spec, evaluation_periods=169, datapoints_to_alarm=169)
    )
    # 26 h of 5-minute periods: more than the one day allowed for periods under an hour.
    assert evaluation_range_problems(dataclasses.replace(spec, period=300, evaluation_periods=312))
    assert evaluation_range_problems(dataclasses.replace(spec, period=90))
    assert evaluation_range_problems(dataclasses.replace(spec, datapoints_to_alarm=27))


def test_no_success_alarm_only_with_the_schedule_on():
    assert "no-recent-success" in {s.key for s in specs_for("dev", scheduleEnabled=True)}
    assert "no-recent-success" not in {s.key for s in specs_for("dev", scheduleEnabled=False)}


@pytest.mark.parametrize("stack", STACKS)
def test_stage_alarm_names_carry_the_stage_and_are_unique(stack):
    specs = specs_for(stack, scheduleEnabled=True, ownsAccountAlarms=True)
    stage = [s for s in specs if s.scope is Scope.STAGE]
    assert stage
    assert all(s.name.startswith(f"sensorflow-{stack}-") for s in stage)
    assert all(s.dimensions for s in stage), "a stage alarm without a dimension watches the whole account"
    assert len({s.name for s in specs}) == len(specs)


def test_duration_alarm_tracks_the_configured_timeout():
    spec = next(s for s in specs_for("prod", lambdaTimeoutSeconds=50) if s.key == "detector-duration")
    assert (spec.metric, spec.statistic, spec.threshold) == ("Duration", "Maximum", 40_000)


def test_publishing_arns_are_exact_alarm_arns_of_this_account():
    specs = specs_for("prod")
    arns = publishing_alarm_arns(specs, Names("prod", MOCK_ACCOUNT))
    assert arns
    assert all(a.startswith("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:sensorflow-") for a in arns)
    assert all("*" not in a for a in arns)
    assert [a.rsplit(":", 1)[1] for a in arns] == [s.name for s in specs]


def test_every_alarm_has_a_runbook_section_in_the_operations_guide():
    from tools.harness import ROOT

    headings = {
        line.removeprefix("### ").strip()
        for line in (ROOT / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("### ")
    }
    specs = specs_for("prod", scheduleEnabled=True, ownsAccountAlarms=True)
    assert specs
    missing = [s.key for s in specs if s.runbook != f"docs/operations.md#{s.key}" or s.key not in headings]
    assert missing == []
