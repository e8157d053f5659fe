"""The Observability component under the recording mocks, for both stacks and the settings that shape it.

Each alarm resource is checked against an expected table typed in here (not computed from the code under
test) and against the documented-metrics table; actions, key and topic policies, the schedule and the
account-level alarms are checked on what the engine would receive.
"""

from __future__ import annotations

import json
from functools import cache

import pytest

from spec.naming import Names
from tests.spec.documented_metrics import metric_problems
from tests.spec.support import (
    ALARM,
    ALIAS,
    DASHBOARD,
    KEY,
    MOCK_ACCOUNT,
    ROLE,
    ROLE_POLICY,
    SCHEDULE,
    SUBSCRIPTION,
    TOPIC,
    TOPIC_POLICY,
    inputs_for,
    load_settings,
    observability_args,
    policy,
    run_observability,
    statement,
)
from tools import harness

STACKS = ("dev", "prod")
GTE, GT, LT = "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold"

# key -> (namespace, metric, statistic, dimension names, comparison, missing data). Typed from the alarm
# requirements and the AWS documentation, independently of spec/alarms.py.
EXPECTED = {
    "open-map-runs": ("AWS/States", "ApproximateOpenMapRunCount", "Maximum", (), GTE, "notBreaching"),
    "map-run-backlog": ("AWS/States", "ApproximateMapRunBacklogSize", "Maximum", (), GTE, "notBreaching"),
    "executions-failed": ("AWS/States", "ExecutionsFailed", "Sum", ("StateMachineArn",), GTE, "notBreaching"),
    "executions-timed-out": ("AWS/States", "ExecutionsTimedOut", "Sum", ("StateMachineArn",), GTE, "notBreaching"),
    "executions-aborted": ("AWS/States", "ExecutionsAborted", "Sum", ("StateMachineArn",), GTE, "notBreaching"),
    "executions-throttled": ("AWS/States", "ExecutionThrottled", "Sum", ("StateMachineArn",), GTE, "notBreaching"),
    "no-recent-success": ("AWS/States", "ExecutionsSucceeded", "Sum", ("StateMachineArn",), LT, "missing"),
    "detector-errors": ("AWS/Lambda", "Errors", "Sum", ("FunctionName",), GTE, "notBreaching"),
    "detector-throttles": ("AWS/Lambda", "Throttles", "Sum", ("FunctionName",), GTE, "notBreaching"),
    "detector-duration": ("AWS/Lambda", "Duration", "Maximum", ("FunctionName",), GTE, "notBreaching"),
    "delivery-freshness": (
        "AWS/Firehose", "DeliveryToS3.DataFreshness", "Maximum", ("DeliveryStreamName",), GT, "notBreaching",
    ),
    "delivery-success": (
        "AWS/Firehose", "DeliveryToS3.Success", "Average", ("DeliveryStreamName",), LT, "notBreaching",
    ),
    "detector-delivery-failures": (
        "Sensorflow/Detector", "DeliveryFailures", "Sum", ("service",), GTE, "notBreaching",
    ),
    "detector-invalid-rows": ("Sensorflow/Detector", "InvalidRows", "Sum", ("service",), GTE, "notBreaching"),
}  # fmt: skip
ACCOUNT_KEYS = {"open-map-runs", "map-run-backlog"}


@cache
def run_of(stack: str, **overrides: object) -> harness.Run:
    """One harness run per (stack, overrides); the runs are read-only, so tests may share them."""
    return run_observability(stack, overrides or None)


def alarms_by_key(run: harness.Run) -> dict[str, harness.Resource]:
    alarms = run.of_type(ALARM)
    assert alarms, "no alarms registered"
    return {a.name.removeprefix("observability-"): a for a in alarms}


def expected_threshold(key: str, settings) -> float:
    return {
        "open-map-runs": settings.open_map_run_threshold,
        "detector-duration": settings.lambda_timeout_seconds * 1000 * 0.8,
        "delivery-freshness": settings.delivery_freshness_alarm_seconds,
    }.get(key, 1)


def assert_alarms_documented(run: harness.Run) -> None:
    alarms = run.of_type(ALARM)
    assert alarms, "no alarms registered"
    problems = [
        p
        for a in alarms
        for p in metric_problems(
            a.inputs["namespace"], a.inputs["metricName"], a.inputs.get("dimensions") or {}
        )
    ]
    assert problems == [], problems


# --- the alarms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_alarm_has_the_expected_metric_statistic_threshold_comparison_and_missing_data(stack):
    run = run_of(stack)
    settings = load_settings(stack)
    ids = inputs_for(stack)
    dimension_values = {
        "StateMachineArn": ids["state_machine_arn"],
        "FunctionName": ids["function_name"],
        "DeliveryStreamName": ids["delivery_stream_name"],
        "service": ids["function_name"],
    }
    alarms = alarms_by_key(run)
    expected_keys = set(EXPECTED)
    if not settings.owns_account_alarms:
        expected_keys -= ACCOUNT_KEYS
    if not settings.schedule_enabled:
        expected_keys -= {"no-recent-success"}
    assert set(alarms) == expected_keys
    for key, alarm in alarms.items():
        namespace, metric, statistic, dims, comparison, missing = EXPECTED[key]
        i = alarm.inputs
        assert (i["namespace"], i["metricName"], i["statistic"]) == (namespace, metric, statistic), key
        assert (i.get("dimensions") or {}) == {d: dimension_values[d] for d in dims}, key
        assert i["comparisonOperator"] == comparison, key
        assert i["treatMissingData"] == missing, key
        assert i["threshold"] == expected_threshold(key, settings), key
        assert i["evaluationPeriods"] >= i["datapointsToAlarm"] >= 1, key


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_metric_is_documented(stack):
    assert_alarms_documented(run_of(stack))


def test_negative_control_a_misspelt_metric_in_a_resource_fails_the_suite(monkeypatch):
    import dataclasses

    from components import observability

    real = observability.alarm_specs

    def misspelt(*args, **kwargs):
        specs = real(*args, **kwargs)
        return [
            dataclasses.replace(s, metric="ExecutionsFailedCount") if s.key == "executions-failed" else s
            for s in specs
        ]

    monkeypatch.setattr(observability, "alarm_specs", misspelt)
    run = run_observability("dev")
    with pytest.raises(AssertionError, match="ExecutionsFailedCount"):
        assert_alarms_documented(run)


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_notifies_its_own_stage_topic_on_alarm_and_ok(stack):
    run = run_of(stack)
    topic = run.one(TOPIC)
    assert topic.inputs["name"] == f"sensorflow-{stack}-alarms"
    other = "prod" if stack == "dev" else "dev"
    for alarm in run.of_type(ALARM):
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]], alarm.name
        assert alarm.inputs["okActions"] == [topic.outputs["arn"]], alarm.name
        assert alarm.inputs["actionsEnabled"] is True
        assert not any(f"sensorflow-{other}-" in a for a in alarm.inputs["alarmActions"])
        # Only the heartbeat alarm notifies on INSUFFICIENT_DATA (its silence is the trouble).
        heartbeat = alarm.inputs["name"].endswith("-no-recent-success")
        assert alarm.inputs.get("insufficientDataActions") == ([topic.outputs["arn"]] if heartbeat else None)


def test_the_heartbeat_alarm_notifies_on_insufficient_data_in_a_scheduled_stack():
    alarms = alarms_by_key(run_of("prod", scheduleEnabled=True))
    assert alarms["no-recent-success"].inputs["insufficientDataActions"]
    assert alarms["no-recent-success"].inputs["treatMissingData"] == "missing"


@pytest.mark.parametrize("stack", STACKS)
def test_stage_alarm_names_start_with_the_stage_prefix(stack):
    alarms = alarms_by_key(run_of(stack))
    for key, alarm in alarms.items():
        prefix = "sensorflow-account-" if key in ACCOUNT_KEYS else f"sensorflow-{stack}-"
        assert alarm.inputs["name"].startswith(prefix), alarm.inputs["name"]
        if key in ACCOUNT_KEYS:  # the owning stage is in the name: two owners never share an alarm
            assert alarm.inputs["name"].endswith(f"-{stack}"), alarm.inputs["name"]


def test_no_success_alarm_spans_the_configured_window_in_hourly_periods():
    alarm = alarms_by_key(run_of("prod"))["no-recent-success"]
    assert alarm.inputs["period"] == 3600
    assert alarm.inputs["evaluationPeriods"] == alarm.inputs["datapointsToAlarm"] == 26
    assert alarm.inputs["period"] * alarm.inputs["evaluationPeriods"] <= 604_800


# --- account-level alarms and the schedule, by setting ------------------------------------------------


def test_stack_files_give_each_account_its_map_run_alarms_once():
    """dev and prod deploy to different accounts (aws:allowedAccountIds), so each owns its account's alarms."""
    assert run_of("dev").account != run_of("prod").account
    for stack in STACKS:
        assert set(alarms_by_key(run_of(stack))) >= ACCOUNT_KEYS


@pytest.mark.parametrize("stack", STACKS)
def test_account_alarms_appear_once_when_owned(stack):
    alarms = run_of(stack, ownsAccountAlarms=True).of_type(ALARM)
    assert alarms
    for name in (f"sensorflow-account-open-map-runs-{stack}", f"sensorflow-account-map-run-backlog-{stack}"):
        assert [a.inputs["name"] for a in alarms].count(name) == 1
    series = [a for a in alarms if a.inputs["metricName"] == "ApproximateOpenMapRunCount"]
    assert len(series) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_account_alarms_absent_when_not_owned(stack):
    alarms = run_of(stack, ownsAccountAlarms=False).of_type(ALARM)
    assert alarms
    assert [a for a in alarms if "account" in a.inputs["name"]] == []
    metrics = {a.inputs["metricName"] for a in alarms}
    assert not metrics & {"ApproximateOpenMapRunCount", "ApproximateMapRunBacklogSize"}


def test_open_map_run_threshold_override_reaches_the_alarm():
    alarm = alarms_by_key(run_of("dev", ownsAccountAlarms=True, openMapRunThreshold=800))["open-map-runs"]
    assert alarm.inputs["threshold"] == 800


@pytest.mark.parametrize("stack", STACKS)
def test_schedule_on_starts_the_pipeline_daily_with_a_one_action_role(stack):
    run = run_of(stack, scheduleEnabled=True)
    sm_arn = inputs_for(stack)["state_machine_arn"]
    schedule = run.one(SCHEDULE)
    i = schedule.inputs
    assert i["name"] == f"sensorflow-{stack}-daily"
    assert i["scheduleExpression"] == "cron(30 2 * * ? *)"
    assert i["scheduleExpressionTimezone"] == "UTC"
    assert i["flexibleTimeWindow"] == {"mode": "OFF"}
    assert i["state"] == "ENABLED"
    target = i["target"]
    assert target["arn"] == sm_arn
    assert json.loads(target["input"]) == {}  # no runDate: the pipeline runs yesterday
    assert target["retryPolicy"]["maximumRetryAttempts"] >= 1
    assert target["retryPolicy"]["maximumEventAgeInSeconds"] >= 60

    role = run.one(ROLE, "schedule")
    assert target["roleArn"] == role.outputs["arn"]
    trust = policy(role, "assumeRolePolicy")["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": run.account}}
    statements = policy(run.one(ROLE_POLICY, "schedule"))["Statement"]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", ["states:StartExecution"], [sm_arn])
    ]
    assert "no-recent-success" in alarms_by_key(run)


@pytest.mark.parametrize("stack", STACKS)
def test_schedule_off_creates_no_schedule_role_or_no_success_alarm(stack):
    run = run_of(stack, scheduleEnabled=False)
    assert run.of_type(ALARM)
    assert run.of_type(SCHEDULE) == []
    assert run.of_type(ROLE) == []
    assert "no-recent-success" not in alarms_by_key(run)


def test_stack_files_schedule_prod_only():
    assert len(run_of("prod").of_type(SCHEDULE)) == 1
    assert run_of("dev").of_type(SCHEDULE) == []


# --- notifications ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_topic_is_encrypted_with_a_rotating_key_cloudwatch_may_use(stack):
    run = run_of(stack)
    key, topic = run.one(KEY), run.one(TOPIC)
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    cw = statement(policy(key), "CloudWatchAlarmsEncryptToTopic")
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cw["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cw["Condition"]["StringEquals"]["aws:SourceAccount"] == run.account
    root = statement(policy(key), "AccountAdministersKey")
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{run.account}:root"}
    assert run.one(ALIAS).inputs["name"] == f"alias/sensorflow-{stack}-alarms"


@pytest.mark.parametrize("stack", STACKS)
def test_topic_policy_admits_exactly_this_stages_alarms(stack):
    run = run_of(stack, ownsAccountAlarms=True)
    topic = run.one(TOPIC)
    doc = policy(run.one(TOPIC_POLICY))
    assert run.one(TOPIC_POLICY).inputs["arn"] == topic.outputs["arn"]
    allow = statement(doc, "StageAlarmsPublish")
    assert allow["Resource"] == topic.outputs["arn"]
    alarm_arns = sorted(a.outputs["arn"] for a in run.of_type(ALARM))
    assert alarm_arns
    assert sorted(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == alarm_arns
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": run.account}
    assert statement(doc, "DenyInsecureTransport")["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_other_stages_alarms_cannot_publish_to_this_topic():
    dev_policy = policy(run_of("dev").one(TOPIC_POLICY))
    prod_alarm_arns = [a.outputs["arn"] for a in run_of("prod").of_type(ALARM)]
    assert prod_alarm_arns
    admitted = set(statement(dev_policy, "StageAlarmsPublish")["Condition"]["ArnLike"]["aws:SourceArn"])
    assert admitted.isdisjoint(prod_alarm_arns)


def test_subscriptions_follow_each_stacks_config():
    dev = run_of("dev").of_type(SUBSCRIPTION)
    assert [(s.inputs["protocol"], s.inputs["endpoint"]) for s in dev] == [
        ("email", "iot-platform-dev@example.com")
    ]
    prod = {(s.inputs["protocol"], s.inputs["endpoint"]) for s in run_of("prod").of_type(SUBSCRIPTION)}
    assert prod == {
        ("email", "iot-platform-oncall@example.com"),
        ("https", "https://events.pagerduty.example.com/integration/sensorflow-prod/enqueue"),
    }
    topic_arn = run_of("prod").one(TOPIC).outputs["arn"]
    assert all(s.inputs["topic"] == topic_arn for s in run_of("prod").of_type(SUBSCRIPTION))


def test_https_subscriptions_confirm_themselves_and_emails_stay_pending_until_clicked():
    subs = run_of("prod").of_type(SUBSCRIPTION)
    by_protocol = {s.inputs["protocol"]: s for s in subs}
    assert set(by_protocol) == {"email", "https"}
    https = by_protocol["https"].inputs
    # Without endpointAutoConfirms the provider cannot manage an HTTPS subscription (pulumi-aws docs).
    assert (https["endpointAutoConfirms"], https["confirmationTimeoutInMinutes"]) == (True, 5)
    # An email subscription is confirmed by its recipient, never by the provider.
    assert "endpointAutoConfirms" not in by_protocol["email"].inputs


# --- dashboard ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_graphs_documented_metrics_and_the_open_map_run_limit(stack):
    run = run_of(stack)
    dashboard = run.one(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"sensorflow-{stack}-pipeline"
    body = json.loads(dashboard.inputs["dashboardBody"])
    metric_widgets = [w for w in body["widgets"] if w["type"] == "metric"]
    rows = [row for w in metric_widgets for row in w["properties"]["metrics"]]
    assert rows
    problems = []
    for row in rows:
        plain = [c for c in row if not isinstance(c, dict)]
        namespace, metric, dims = plain[0], plain[1], plain[2::2]
        problems += metric_problems(namespace, metric, dims)
    assert problems == []
    graphed = {row[1] for row in rows}
    assert {"ApproximateOpenMapRunCount", "OpenMapRunLimit", "ExecutionsFailed", "Rows", "Errors"} <= graphed
    assert {"DeliveryToS3.DataFreshness", "DeliveryToS3.Success", "Duration"} <= graphed
    limits = [
        a["value"]
        for w in metric_widgets
        for a in w["properties"].get("annotations", {}).get("horizontal", [])
        if a["label"] == "hard limit"
    ]
    assert limits == [1000]
    assert all(w["properties"]["region"] == harness.DEFAULT_REGION for w in metric_widgets)
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        a.outputs["arn"] for a in run.of_type(ALARM)
    )


# --- shape --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_children_belong_to_the_component_and_carry_the_stage_tags(stack):
    # Parentage is read from the SDK's own child registry (what ``parent=self`` records), not from the
    # harness's recorded URNs, which concurrent registrations can mismatch (it pairs them by registration order).
    from components.observability import Observability

    built: list[Observability] = []
    overrides = {"scheduleEnabled": True}

    def program() -> None:
        settings = load_settings(stack, overrides)
        names = Names(settings.stage, MOCK_ACCOUNT)
        built.append(
            Observability(
                "observability",
                observability_args(
                    settings, names, state_machine_name=names.state_machine, **inputs_for(stack)
                ),
            )
        )

    run = harness.run(program, stack=stack, overrides=overrides)
    assert len(built) == 1

    def descendants(resource) -> set[str]:
        found = set()
        for child in resource._childResources:
            found |= {child._name} | descendants(child)
        return found

    registered = {r.name for r in run.resources} - {"observability"}
    assert registered
    assert descendants(built[0]) == registered
    direct = {child._name for child in built[0]._childResources}
    assert {a.name for a in run.of_type(ALARM)} <= direct
    assert all(r.name.startswith("observability-") for r in run.resources if r.name != "observability")
    custom = [r for r in run.resources if r.custom]
    taggable = [r for r in custom if r.type in (ALARM, TOPIC, KEY, ROLE)]
    assert taggable
    expected = {"project": "sensorflow", "stage": stack, "owner": "iot-platform"}
    assert [r.name for r in taggable if r.tags != expected] == []


def test_a_state_machine_name_other_than_the_stages_is_refused():
    from components.observability import Observability

    settings = load_settings("dev")

    def program() -> None:
        Observability(
            "observability",
            observability_args(
                settings,
                Names("dev", MOCK_ACCOUNT),
                state_machine_name="sensorflow-prod-pipeline",
                **inputs_for("dev"),
            ),
        )

    with pytest.raises(ValueError, match="sensorflow-prod-pipeline"):
        harness.run(program, stack="dev")
