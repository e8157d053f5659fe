"""Alarm rules: missing data handled on purpose, account-level map-run alarms owned once, stage-true routing.

Facts relied on (Step Functions developer guide, procedure-cw-metrics.html; see aws-facts.md):
``ApproximateOpenMapRunCount`` and ``ApproximateMapRunBacklogSize`` live in ``AWS/States`` with **no
dimensions**: one series per account and Region, shared by every stage deployed there. Exactly one stack
per account and Region owns their alarms (``sensorflow:ownsAccountAlarms``), and the pack is told which
through the ``ownsAccountAlarms`` property of ``observability-map-run-alarms`` in the stage's policy
config; without it, a stack that has any map-run alarm is taken to own them and must have both.

Which stage a stack deploys comes from the rule's ``stage`` property, else from its resources' ``stage``
tag (see ``Stack.stage``). A stage's alarms may notify only SNS topics of that stage: this stack's topics
tagged with the stage, plus any ARN listed in ``allowedTopicArns``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import Severity

from .base import STAGE_PROPERTY, Stack, resource_rule, stack_rule
from .values import as_list, get, is_unknown, tags_of

METRIC_ALARM: Final = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE_ALARM: Final = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
TOPIC: Final = "aws:sns/topic:Topic"
MAP_RUN_NAMESPACE: Final = "AWS/States"
MAP_RUN_METRICS: Final = ("ApproximateOpenMapRunCount", "ApproximateMapRunBacklogSize")
TREAT_MISSING_DATA: Final = frozenset({"missing", "ignore", "breaching", "notBreaching"})
ACTION_FIELDS: Final = ("alarmActions", "okActions", "insufficientDataActions")


def check_treat_missing_data(
    _type: str, props: Mapping[str, Any], _config: Mapping[str, Any]
) -> Iterator[str]:
    value = get(props, "treatMissingData")
    if value not in TREAT_MISSING_DATA and not is_unknown(value):
        yield (
            f"treatMissingData is {value!r}; choose one of {', '.join(sorted(TREAT_MISSING_DATA))} "
            "(a series that exists only while something is wrong needs notBreaching)."
        )


def _map_run_metric(alarm: Any) -> str | None:
    if get(alarm.props, "namespace") != MAP_RUN_NAMESPACE:
        return None
    metric = get(alarm.props, "metricName")
    return metric if metric in MAP_RUN_METRICS else None


def check_map_run_alarms(stack: Stack, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    alarms = [(a, m) for a in stack.of_type(METRIC_ALARM) if (m := _map_run_metric(a))]
    configured = config.get("ownsAccountAlarms")
    owns = configured if isinstance(configured, bool) else bool(alarms)
    if not owns:
        for alarm, metric in alarms:
            yield (
                f"{metric} alarm {alarm.name}: this stack does not own the account-level alarms "
                "(ownsAccountAlarms false); the owning stack already alarms on this account-wide series.",
                alarm.urn,
            )
        return
    for alarm, metric in alarms:
        if get(alarm.props, "dimensions"):
            yield (
                f"{metric} alarm {alarm.name} sets dimensions; the series has none, so it never fires.",
                alarm.urn,
            )
    for metric in MAP_RUN_METRICS:
        notified = [a for a, m in alarms if m == metric and as_list(get(a.props, "alarmActions"))]
        if not notified:
            yield (
                f"this stack owns the account-level alarms but has no {MAP_RUN_NAMESPACE} {metric} alarm "
                "with alarmActions.",
                None,
            )


def check_alarm_topics(stack: Stack, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    stage = stack.stage(config)
    if stage is None:
        return
    allowed_arns = {a for a in as_list(config.get("allowedTopicArns")) if isinstance(a, str)}
    allowed_names: set[str] = set()
    for topic in stack.of_type(TOPIC):
        if tags_of(topic.props).get("stage") != stage:
            continue
        arn, name = get(topic.props, "arn"), get(topic.props, "name")
        if isinstance(arn, str) and not is_unknown(arn):
            allowed_arns.add(arn)
        elif isinstance(name, str) and not is_unknown(name):
            allowed_names.add(name)  # ARN unknown at preview: match by name
    for alarm in stack.of_type(METRIC_ALARM, COMPOSITE_ALARM):
        for field in ACTION_FIELDS:
            for action in as_list(get(alarm.props, field)):
                if is_unknown(action) or action in allowed_arns:
                    continue
                parts = action.split(":") if isinstance(action, str) else []
                if len(parts) == 6 and parts[2] == "sns" and parts[5] in allowed_names:
                    continue
                yield (
                    f"alarm {alarm.name} {field} targets {action!r}, which is not an SNS topic of stage "
                    f"{stage}: a {stage} alarm must notify {stage}'s topics only.",
                    alarm.urn,
                )


POLICIES = [
    resource_rule(
        name="alarm-treat-missing-data",
        description="Every CloudWatch alarm sets treatMissingData explicitly.",
        types={METRIC_ALARM},
        check=check_treat_missing_data,
        severity=Severity.MEDIUM,
        remediation="Set treat_missing_data: notBreaching for series that exist only during trouble, "
        "breaching for heartbeats.",
    ),
    stack_rule(
        name="observability-map-run-alarms",
        description="The stack owning the account-level alarms has both map-run alarms "
        "(ApproximateOpenMapRunCount, ApproximateMapRunBacklogSize) with actions; other stacks have none.",
        check=check_map_run_alarms,
        severity=Severity.HIGH,
        remediation="Set sensorflow:ownsAccountAlarms true in exactly one stack per account and Region; "
        "keep the policy config's ownsAccountAlarms equal to it.",
        config={
            "ownsAccountAlarms": {
                "type": "boolean",
                "description": "This stack owns the account-level alarms (mirror of sensorflow:ownsAccountAlarms).",
            }
        },
    ),
    stack_rule(
        name="observability-alarm-topics-match-stage",
        description="A stage's alarms notify only SNS topics of the same stage (a prod alarm never pages "
        "through a dev topic, nor a dev alarm through prod's).",
        check=check_alarm_topics,
        severity=Severity.HIGH,
        remediation="Point alarm_actions/ok_actions at this stage's alarm topic ARN output.",
        config={
            **STAGE_PROPERTY,
            "allowedTopicArns": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Topics outside this stack that this stage's alarms may notify.",
            },
        },
    ),
]
