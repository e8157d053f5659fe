"""Observability of one stage: alarms, the topic they notify, the dashboard and the optional schedule.

``Observability`` builds, as its children:

- ``AlarmTopic`` (components/notifications.py): the stage's KMS-encrypted SNS topic and subscribers;
- one ``aws.cloudwatch.MetricAlarm`` per row of ``alarms.alarm_specs()``, each with alarm and OK actions
  on this stage's topic only (the topic is created here; there is no argument to pass another one);
- the dashboard (spec/dashboard.py);
- ``DailySchedule`` (components/schedule.py) when ``scheduleEnabled``.

The account-level map-run alarms exist only when ``ownsAccountAlarms`` is true: their metrics have no
dimension and are shared by every stage in the account and Region, so exactly one stack per account and
Region should own them (docs/operations.md, "Routing").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.notifications import AlarmTopic, AlarmTopicArgs
from components.schedule import DailySchedule, DailyScheduleArgs
from spec.alarms import AlarmSettings, AlarmSpec, alarm_specs, publishing_alarm_arns
from spec.dashboard import dashboard_body
from spec.naming import Names


@dataclass(frozen=True, kw_only=True)
class ObservabilityArgs:
    """Inputs of ``Observability``."""

    names: Names
    """Physical names and the account."""
    tags: Mapping[str, str]
    """Tags of the alarms, the topic, its key and the schedule's role."""
    alarms: AlarmSettings
    """What the alarm table and the dashboard are built from, including whether the schedule is on."""
    alarm_emails: Sequence[str]
    """``alarmEmails``: the topic's email subscribers."""
    alarm_https_endpoints: Sequence[str]
    """``alarmHttpsEndpoints``: the topic's HTTPS subscribers."""
    schedule_expression: str
    """``scheduleExpression``: when the daily run starts, if ``alarms.schedule_enabled``."""
    state_machine_arn: pulumi.Input[str]
    """The pipeline state machine's ARN (alarm dimension ``StateMachineArn``, schedule target)."""
    state_machine_name: str
    """The pipeline's explicit name; must equal ``names.state_machine``."""
    function_name: pulumi.Input[str]
    """The detector Lambda's name (``FunctionName``, and the detector metrics' ``service`` dimension)."""
    delivery_stream_name: pulumi.Input[str]
    """The Firehose stream's name (``DeliveryStreamName``)."""


class Observability(pulumi.ComponentResource):
    """Alarms, notifications, dashboard and schedule of one stage.

    Outputs:
        ``topic_arn``: the stage's alarm topic.
        ``alarm_specs``: the alarm table the alarms were built from (plain data).
        ``alarms``: alarm key -> ``aws.cloudwatch.MetricAlarm``.
        ``dashboard_name``: the CloudWatch dashboard's name.
        ``schedule_arn``: the daily schedule's ARN, or ``None`` when the schedule is off.
    """

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:observability:Observability", name, None, opts)
        names = args.names
        if args.state_machine_name != names.state_machine:
            raise ValueError(
                f"state_machine_name={args.state_machine_name!r} is not the stage's state machine "
                f"{names.state_machine!r}"
            )
        child = pulumi.ResourceOptions(parent=self)

        self.alarm_specs: list[AlarmSpec] = alarm_specs(
            args.alarms,
            names,
            state_machine_arn=args.state_machine_arn,
            function_name=args.function_name,
            delivery_stream_name=args.delivery_stream_name,
        )
        notifications = AlarmTopic(
            f"{name}-notifications",
            AlarmTopicArgs(
                names=names,
                tags=args.tags,
                alarm_arns=publishing_alarm_arns(self.alarm_specs, names),
                emails=args.alarm_emails,
                https_endpoints=args.alarm_https_endpoints,
            ),
            opts=child,
        )
        self.topic_arn: pulumi.Output[str] = notifications.topic_arn

        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {
            spec.key: aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                name=spec.name,
                alarm_description=f"{spec.description} Runbook: {spec.runbook}",
                namespace=spec.namespace,
                metric_name=spec.metric,
                statistic=spec.statistic,
                dimensions=spec.dimensions or None,
                period=spec.period,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                threshold=spec.threshold,
                comparison_operator=spec.comparison.value,
                treat_missing_data=spec.missing_data.value,
                actions_enabled=True,
                alarm_actions=[self.topic_arn],
                ok_actions=[self.topic_arn],
                insufficient_data_actions=[self.topic_arn] if spec.notify_insufficient_data else None,
                tags=args.tags,
                opts=child,
            )
            for spec in self.alarm_specs
        }

        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=names.resource("pipeline"),
            dashboard_body=pulumi.Output.json_dumps(
                dashboard_body(
                    args.alarms,
                    region=names.account.region,
                    state_machine_arn=args.state_machine_arn,
                    function_name=args.function_name,
                    delivery_stream_name=args.delivery_stream_name,
                    alarm_arns=[alarm.arn for alarm in self.alarms.values()],
                )
            ),
            opts=child,
        )
        self.dashboard_name: pulumi.Output[str] = dashboard.dashboard_name

        self.schedule_arn: pulumi.Output[str] | None = None
        if args.alarms.schedule_enabled:
            schedule = DailySchedule(
                f"{name}-schedule",
                DailyScheduleArgs(
                    names=names,
                    tags=args.tags,
                    expression=args.schedule_expression,
                    state_machine_arn=args.state_machine_arn,
                ),
                opts=child,
            )
            self.schedule_arn = schedule.schedule_arn

        self.register_outputs(
            {
                "topicArn": self.topic_arn,
                "alarmNames": [spec.name for spec in self.alarm_specs],
                "dashboardName": self.dashboard_name,
                "scheduleArn": self.schedule_arn,
            }
        )
