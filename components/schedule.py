"""The optional daily schedule: EventBridge Scheduler starts the pipeline for the previous day.

The state machine defaults its run date to yesterday (UTC) when the execution input has no ``runDate``,
so the schedule sends ``{}``. Scheduler's templated Step Functions target calls ``StartExecution`` with
the schedule's execution role; that role may do nothing else, on nothing else
(docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role). Its trust
policy names ``scheduler.amazonaws.com`` with an ``aws:SourceAccount`` condition so that no other
account's schedule can make Scheduler assume it (confused-deputy guard).

Flexible time window off: the run starts at the configured minute, which the no-success alarm's window
assumes. The retry policy covers a throttled or failed ``StartExecution`` call; a run that starts and
then fails is the alarms' business, not the scheduler's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from components import roles
from spec import iam
from spec.naming import Names

SCHEDULER_PRINCIPAL: Final = "scheduler.amazonaws.com"
SCHEDULE_TIMEZONE: Final = "UTC"
SCHEDULE_INPUT: Final = "{}"  # no runDate: the state machine processes yesterday (UTC)
# Keep retrying a failed StartExecution for up to 6 hours, well inside the no-success alarm's window.
RETRY_MAX_ATTEMPTS: Final = 10
RETRY_MAX_EVENT_AGE_SECONDS: Final = 6 * 3_600


def scheduler_role_policy(state_machine_arn: Any) -> dict[str, Any]:
    """The role's only permission: start executions of this stage's state machine."""
    return iam.document(
        [
            iam.statement(
                "StartPipeline",
                ["states:StartExecution"],
                [state_machine_arn],
                source=iam.DOCS + "scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role",
            )
        ]
    )


@dataclass(frozen=True, kw_only=True)
class DailyScheduleArgs:
    """Inputs of ``DailySchedule``."""

    names: Names
    """Physical names and the account (for the trust policy)."""
    tags: Mapping[str, str]
    """Tags of the execution role."""
    expression: str
    """``scheduleExpression``: when the run starts (UTC)."""
    state_machine_arn: pulumi.Input[str]
    """The pipeline to start."""


class DailySchedule(pulumi.ComponentResource):
    """Execution role (trust + one-action inline policy) and the EventBridge Scheduler schedule.

    Outputs: ``role`` (the ``aws.iam.Role``), ``schedule`` (the ``aws.scheduler.Schedule``),
    ``schedule_arn``.
    """

    def __init__(self, name: str, args: DailyScheduleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:schedule:DailySchedule", name, None, opts)
        names = args.names
        self.role, policy = roles.service_role(
            name,
            parent=self,
            name=names.resource("scheduler"),
            service=SCHEDULER_PRINCIPAL,
            source_account=names.account.account_id,
            description="EventBridge Scheduler: starts the daily pipeline run, nothing else.",
            policy=scheduler_role_policy(args.state_machine_arn),
            tags=args.tags,
        )
        self.schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            name=names.resource("daily"),
            description=f"Starts {names.state_machine} daily for the previous day (UTC).",
            schedule_expression=args.expression,
            schedule_expression_timezone=SCHEDULE_TIMEZONE,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            state="ENABLED",
            target=aws.scheduler.ScheduleTargetArgs(
                arn=args.state_machine_arn,
                role_arn=self.role.arn,
                input=SCHEDULE_INPUT,
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_retry_attempts=RETRY_MAX_ATTEMPTS,
                    maximum_event_age_in_seconds=RETRY_MAX_EVENT_AGE_SECONDS,
                ),
            ),
            # The first run must not fail for want of the role's permission.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.schedule_arn: pulumi.Output[str] = self.schedule.arn
        self.register_outputs({"scheduleArn": self.schedule.arn, "roleArn": self.role.arn})
