"""The stage's alarm table: every CloudWatch alarm the platform raises, as data.

``alarm_specs()`` is a pure function of the settings it reads (``AlarmSettings``), the names and the
three identities the alarms watch (state machine ARN, detector function name, delivery stream name). It
returns one ``AlarmSpec`` per alarm with everything CloudWatch needs (namespace, metric, statistic,
dimensions, period, evaluation periods, threshold, comparison, missing-data policy) plus the runbook line
that ``docs/operations.md`` expands. The Observability component turns each spec into an ``aws.cloudwatch.MetricAlarm`` unchanged,
so the tests can check the table without the Pulumi runtime and check the resources against the table.

Metric names and dimensions come from the AWS documentation (the tests keep a table of them and fail on
a misspelt name, because CloudWatch accepts any name and an alarm on a metric nobody emits never fires):

- Step Functions: https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
  (execution metrics take ``StateMachineArn``; the map-run metrics have no dimension and are one series
  per account and Region).
- Lambda: https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html (``FunctionName``).
- Firehose: https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html
  (``DeliveryStreamName``).
- The detector's own embedded metrics: ``functions/detector/schema.py`` (dimension ``service`` = the
  function's name, so a stage's alarm sees only its own detector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from functions.detector import schema
from spec.naming import Names
from spec.settings import PROJECT, SettingsSubset

NS_STATES: Final = "AWS/States"
NS_LAMBDA: Final = "AWS/Lambda"
NS_FIREHOSE: Final = "AWS/Firehose"
NS_DETECTOR: Final = schema.METRICS_NAMESPACE

# Step Functions' hard quota on open map runs per account and Region (procedure-cw-metrics.html:
# "the default OpenMapRunLimit is 1,000 map runs"); the dashboard draws it next to the alarm threshold.
OPEN_MAP_RUN_LIMIT: Final = 1_000

# PutMetricAlarm: Period x EvaluationPeriods may not exceed 7 days (604,800 s), and 1 day (86,400 s) when
# the period is under one hour (CloudWatch API reference, PutMetricAlarm, Period).
MAX_EVALUATION_RANGE_SECONDS: Final = 604_800
MAX_EVALUATION_RANGE_SHORT_PERIOD_SECONDS: Final = 86_400
SHORT_PERIOD_SECONDS: Final = 3_600

# Alarm when the detector's slowest invocation uses this share of its timeout: a timeout is an error the
# map retries, so it is better to hear about the slope than about the cliff.
DURATION_TIMEOUT_SHARE: Final = 0.8

# Account-level alarms watch account-wide series; their names carry the owning stage (account_alarm_name).
ACCOUNT_ALARM_PREFIX: Final = f"{PROJECT}-account"


class Scope(StrEnum):
    """Whether an alarm watches this stage's resources or an account-wide series."""

    STAGE = "stage"
    ACCOUNT = "account"


class Comparison(StrEnum):
    """The CloudWatch comparison operators the table uses."""

    GTE = "GreaterThanOrEqualToThreshold"
    GT = "GreaterThanThreshold"
    LT = "LessThanThreshold"


class MissingData(StrEnum):
    """CloudWatch ``TreatMissingData``; every alarm chooses one on purpose (see ``missing_data_why``)."""

    BREACHING = "breaching"
    NOT_BREACHING = "notBreaching"
    IGNORE = "ignore"
    MISSING = "missing"


@dataclass(frozen=True, kw_only=True)
class AlarmSpec:
    """One CloudWatch metric alarm, as data.

    ``dimensions`` values may be plain strings (tests) or Pulumi Outputs (the component); nothing here
    inspects them.
    """

    key: str  # short id, unique in the table; also the logical-name suffix and the runbook anchor
    name: str  # physical alarm name
    scope: Scope
    namespace: str
    metric: str
    statistic: str
    dimensions: dict[str, Any] = field(default_factory=dict)
    period: int = 300
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    threshold: float
    comparison: Comparison
    missing_data: MissingData
    missing_data_why: str
    description: str
    runbook: str
    # Whether a transition into INSUFFICIENT_DATA notifies ops (insufficient-data actions). Only for an
    # alarm whose silence is the trouble (see no-recent-success); every other alarm is silent when idle.
    notify_insufficient_data: bool = False

    @property
    def evaluation_range_seconds(self) -> int:
        return self.period * self.evaluation_periods


def evaluation_range_problems(spec: AlarmSpec) -> list[str]:
    """What PutMetricAlarm would reject about a spec's period and evaluation periods (empty if none)."""
    problems = []
    if spec.period not in (10, 20, 30) and spec.period % 60:
        problems.append(f"{spec.key}: period {spec.period} must be 10, 20, 30 or a multiple of 60")
    if not 1 <= spec.datapoints_to_alarm <= spec.evaluation_periods:
        problems.append(f"{spec.key}: datapoints_to_alarm must be between 1 and evaluation_periods")
    limit = (
        MAX_EVALUATION_RANGE_SHORT_PERIOD_SECONDS
        if spec.period < SHORT_PERIOD_SECONDS
        else MAX_EVALUATION_RANGE_SECONDS
    )
    if spec.evaluation_range_seconds > limit:
        problems.append(
            f"{spec.key}: period x evaluation periods = {spec.evaluation_range_seconds} s exceeds {limit} s"
        )
    return problems


def account_alarm_name(role: str, stage: str) -> str:
    """``sensorflow-account-<role>-<owning stage>``. PutMetricAlarm creates or overwrites by name, so a name
    shared by every stage would let a second owner in the same account and Region silently take the alarm
    over (pointing it at its own topic) and delete it for both on destroy; with the owner in the name, a
    second owner makes a second, visible alarm (docs/operations.md, "Account-level alarms")."""
    return f"{ACCOUNT_ALARM_PREFIX}-{role}-{stage}"


@dataclass(frozen=True, kw_only=True)
class AlarmSettings(SettingsSubset):
    """The stage settings the alarm table and the dashboard read, each the stack setting of that name
    (``spec.settings.SPECS``)."""

    stage: str
    owns_account_alarms: bool
    open_map_run_threshold: int
    schedule_enabled: bool
    success_window_hours: int
    lambda_timeout_seconds: int
    delivery_freshness_alarm_seconds: int
    delivery_max_attempts: int


def alarm_specs(
    settings: AlarmSettings,
    names: Names,
    *,
    state_machine_arn: Any,
    function_name: Any,
    delivery_stream_name: Any,
) -> list[AlarmSpec]:
    """Every alarm of the stage, in a stable order; account-level ones only if the stage owns them."""
    runbook = "docs/operations.md#"
    specs: list[AlarmSpec] = []

    def stage_alarm(key: str, **fields: Any) -> AlarmSpec:
        """A stage alarm: named ``sensorflow-<stage>-<key>``, with its runbook section ``#<key>``."""
        return AlarmSpec(
            key=key, name=names.resource(key), scope=Scope.STAGE, runbook=runbook + key, **fields
        )

    def any_occurrence(key: str, **fields: Any) -> AlarmSpec:
        """A stage alarm that notifies at a count metric's first occurrence: its Sum over one period (as
        the Step Functions guide recommends for count metrics) at 1 or more, silent while nothing is
        emitted. Most of the pipeline's health alarms have this shape."""
        return stage_alarm(
            key,
            statistic="Sum",
            threshold=1,
            comparison=Comparison.GTE,
            missing_data=MissingData.NOT_BREACHING,
            **fields,
        )

    if settings.owns_account_alarms:
        specs += [
            AlarmSpec(
                key="open-map-runs",
                name=account_alarm_name("open-map-runs", settings.stage),
                scope=Scope.ACCOUNT,
                namespace=NS_STATES,
                metric="ApproximateOpenMapRunCount",
                statistic="Maximum",  # AWS recommends Maximum with a threshold of 900 or more
                threshold=settings.open_map_run_threshold,
                comparison=Comparison.GTE,
                missing_data=MissingData.NOT_BREACHING,
                missing_data_why="no series means no map run is open in the account",
                description=(
                    f"Open map runs in the account reached {settings.open_map_run_threshold} of the "
                    f"{OPEN_MAP_RUN_LIMIT:,} hard limit; new map runs will queue (all stages in this "
                    "account and Region)."
                ),
                runbook=runbook + "open-map-runs",
            ),
            AlarmSpec(
                key="map-run-backlog",
                name=account_alarm_name("map-run-backlog", settings.stage),
                scope=Scope.ACCOUNT,
                namespace=NS_STATES,
                metric="ApproximateMapRunBacklogSize",
                statistic="Maximum",
                threshold=1,
                comparison=Comparison.GTE,
                missing_data=MissingData.NOT_BREACHING,
                missing_data_why="the series exists only while map runs are backlogged",
                description=(
                    "Map runs are backlogged: the account hit the open map run limit and new runs wait "
                    "at MapRunStarted (all stages in this account and Region)."
                ),
                runbook=runbook + "map-run-backlog",
            ),
        ]

    sfn = {"StateMachineArn": state_machine_arn}
    for key, metric, what in (
        ("executions-failed", "ExecutionsFailed", "failed"),
        ("executions-timed-out", "ExecutionsTimedOut", "timed out"),
        ("executions-aborted", "ExecutionsAborted", "were aborted"),
    ):
        specs.append(
            any_occurrence(
                key,
                namespace=NS_STATES,
                metric=metric,
                dimensions=sfn,
                missing_data_why="no executions means none " + what,
                description=f"{settings.stage}: a pipeline execution {what}.",
            )
        )
    specs.append(
        any_occurrence(
            "executions-throttled",
            namespace=NS_STATES,
            metric="ExecutionThrottled",  # singular: the documented name
            dimensions=sfn,
            missing_data_why="Step Functions emits ExecutionThrottled only when it throttles",
            description=f"{settings.stage}: state transitions of the pipeline were throttled.",
        )
    )
    if settings.schedule_enabled:
        # A heartbeat alarm: "no datapoint" is the trouble, and also the state of a fresh deploy. So
        # missing data is `missing`, not `breaching`: when every datapoint of the evaluation range is
        # missing, the alarm goes to INSUFFICIENT_DATA (alarms-and-missing-data.html), which is also the
        # state a new alarm starts in, and actions run only on a state change ("It invokes one or more
        # actions only when the alarm state changes": autoscaling/application/userguide/
        # cloudwatch-alarm-notifications.html). A fresh deploy therefore stays silent until its first
        # success (INSUFFICIENT_DATA -> OK), and a window with no success after that is a transition
        # into INSUFFICIENT_DATA, which notifies through the insufficient-data action.
        # 26 h (default) is more than the one day allowed for periods under an hour, so the window is
        # hourly periods; 168 h x 3,600 s is exactly the 7-day cap.
        hours = settings.success_window_hours
        specs.append(
            stage_alarm(
                "no-recent-success",
                namespace=NS_STATES,
                metric="ExecutionsSucceeded",
                statistic="Sum",
                dimensions=sfn,
                period=SHORT_PERIOD_SECONDS,
                evaluation_periods=hours,
                datapoints_to_alarm=hours,
                threshold=1,
                comparison=Comparison.LT,
                missing_data=MissingData.MISSING,
                missing_data_why=(
                    "no datapoint means no execution succeeded: after a first success, a window without "
                    "one goes to INSUFFICIENT_DATA, which notifies; a fresh deploy starts there and is silent"
                ),
                notify_insufficient_data=True,
                description=(
                    f"{settings.stage}: no pipeline execution succeeded in the last {hours} h although "
                    "the daily schedule is on (this alarm reports it as INSUFFICIENT_DATA)."
                ),
            )
        )

    fn = {"FunctionName": function_name}
    timeout_ms = settings.lambda_timeout_seconds * 1_000
    specs += [
        any_occurrence(
            "detector-errors",
            namespace=NS_LAMBDA,
            metric="Errors",
            dimensions=fn,
            missing_data_why="Lambda emits no datapoint when the function is not invoked",
            description=f"{settings.stage}: the detector Lambda returned errors (or timed out).",
        ),
        any_occurrence(
            "detector-throttles",
            namespace=NS_LAMBDA,
            metric="Throttles",
            dimensions=fn,
            missing_data_why="Lambda emits no datapoint when the function is not invoked",
            description=f"{settings.stage}: detector invocations were throttled.",
        ),
        stage_alarm(
            "detector-duration",
            namespace=NS_LAMBDA,
            metric="Duration",
            statistic="Maximum",
            dimensions=fn,
            threshold=round(timeout_ms * DURATION_TIMEOUT_SHARE),
            comparison=Comparison.GTE,
            missing_data=MissingData.NOT_BREACHING,
            missing_data_why="Lambda emits no datapoint when the function is not invoked",
            description=(
                f"{settings.stage}: a detector invocation used {DURATION_TIMEOUT_SHARE:.0%} or more of its "
                f"{settings.lambda_timeout_seconds} s timeout."
            ),
        ),
    ]

    stream = {"DeliveryStreamName": delivery_stream_name}
    specs += [
        stage_alarm(
            "delivery-freshness",
            namespace=NS_FIREHOSE,
            metric="DeliveryToS3.DataFreshness",
            statistic="Maximum",
            dimensions=stream,
            threshold=settings.delivery_freshness_alarm_seconds,
            comparison=Comparison.GT,
            missing_data=MissingData.NOT_BREACHING,
            missing_data_why="no series means no record is waiting in the stream",
            description=(
                f"{settings.stage}: the oldest record not yet delivered to S3 is older than "
                f"{settings.delivery_freshness_alarm_seconds} s."
            ),
        ),
        stage_alarm(
            "delivery-success",
            namespace=NS_FIREHOSE,
            # Successful S3 puts over all S3 puts: 1 when every put succeeded.
            metric="DeliveryToS3.Success",
            statistic="Average",
            dimensions=stream,
            # Firehose retries failed puts; three failing 5-minute periods in a row is a real outage.
            evaluation_periods=3,
            datapoints_to_alarm=3,
            threshold=1,
            comparison=Comparison.LT,
            missing_data=MissingData.NOT_BREACHING,
            missing_data_why="no series means Firehose had nothing to put",
            description=f"{settings.stage}: Firehose puts to S3 are failing (success ratio below 1).",
        ),
    ]

    service = {schema.METRIC_DIMENSION: function_name}
    specs += [
        any_occurrence(
            "detector-delivery-failures",
            namespace=NS_DETECTOR,
            metric=schema.METRIC_DELIVERY_FAILURES,
            dimensions=service,
            missing_data_why="the detector emits metrics only when it runs",
            description=(
                f"{settings.stage}: the detector gave up delivering records to Firehose after "
                f"{settings.delivery_max_attempts} attempts."
            ),
        ),
        any_occurrence(
            "detector-invalid-rows",
            namespace=NS_DETECTOR,
            metric=schema.METRIC_INVALID_ROWS,
            dimensions=service,
            period=SHORT_PERIOD_SECONDS,  # a data-quality signal: one notice per hour is enough
            missing_data_why="the detector emits metrics only when it runs",
            description=f"{settings.stage}: the detector marked readings invalid (delivered, flagged).",
        ),
    ]

    problems = [p for spec in specs for p in evaluation_range_problems(spec)]
    keys = [spec.key for spec in specs]
    if len(set(keys)) != len(keys):
        problems.append(f"duplicate alarm keys: {sorted(k for k in keys if keys.count(k) > 1)}")
    if problems:
        raise ValueError("invalid alarm table:\n" + "\n".join(problems))
    return specs


def publishing_alarm_arns(specs: list[AlarmSpec], names: Names) -> list[str]:
    """The exact ARNs of the alarms allowed to publish to the stage's topic (its topic policy's SourceArn).

    Exact ARNs, not a ``sensorflow-<stage>-*`` pattern: a pattern for stage ``dev`` would also match a
    stage called ``dev-eu``.
    """
    return [names.account.arn("cloudwatch", f"alarm:{spec.name}") for spec in specs]
