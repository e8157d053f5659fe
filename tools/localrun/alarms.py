"""Every alarm of the stage, evaluated over the metrics a local run recorded: the state each would be in
just after the run, and what ops would hear.

The alarm table is the deployed one: ``spec.alarms.alarm_specs`` for the run's stage, with the
stack's own state machine ARN, function name and stream name as the dimension values. Each alarm reads
exactly the series CloudWatch would give it: same namespace, same metric, the same full set of
dimensions (``MetricRecorder.series``); an alarm naming another dimension gets no data, as on AWS.

The evaluator is ``tools.alarmsim`` (CloudWatch's documented semantics). Time:

- The alarms are taken to exist before the run: evaluation starts at the UTC midnight at least one
  evaluation range (the alarm's period x evaluation periods, for the longest alarm) before the first
  datapoint, so every alarm has settled (notBreaching alarms in OK, the heartbeat in INSUFFICIENT_DATA
  as after a deploy with no earlier run). Only transitions from the first datapoint on are reported.
- Each alarm is evaluated at its first evaluation after the run: the end of its period that holds the
  run's last datapoint (CloudWatch aggregates whole periods; alarmsim evaluates at period ends). A
  5-minute alarm is therefore read a few minutes after the run, an hourly one up to an hour after.

Notifications: every alarm sends ALARM and OK transitions to the stage's topic (docs/operations.md,
"Routing"), and the heartbeat alarm its INSUFFICIENT_DATA too. A transition into trouble (``Result.pages``)
is a *page*; any other notified transition (an OK, e.g. the heartbeat's first success) is a *notice*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spec.alarms import AlarmSettings, AlarmSpec, alarm_specs
from spec.naming import Account, Names
from spec.settings import Settings
from tools import alarmsim
from tools.localrun.metrics import MetricRecorder
from tools.localrun.run import LocalPipeline
from tools.localrun.stack import LocalStack

DAY = 86_400


@dataclass(frozen=True)
class Notification:
    at: float  # epoch seconds
    state: str  # the state the alarm went to
    page: bool  # trouble (ALARM, or INSUFFICIENT_DATA for the heartbeat), else a notice (OK)

    def describe(self, topic: str) -> str:
        kind = "page" if self.page else "notice"
        when = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M")
        return f"{kind} to {topic} ({self.state} at {when} UTC)"


@dataclass(frozen=True)
class AlarmOutcome:
    spec: AlarmSpec
    state: str  # at ``evaluated_at``
    evaluated_at: float  # epoch seconds
    datapoints: int  # of the series the alarm reads
    notifications: list[Notification] = field(default_factory=list)

    @property
    def pages(self) -> list[Notification]:
        return [n for n in self.notifications if n.page]

    def notification_text(self, topic: str) -> str:
        if not self.notifications:
            return "none"
        return "; ".join(n.describe(topic) for n in self.notifications)


@dataclass(frozen=True)
class AlarmReport:
    outcomes: list[AlarmOutcome]
    topic: str
    start: float | None  # first datapoint of the run(s), epoch seconds; None when nothing was recorded

    @property
    def notifying(self) -> list[AlarmOutcome]:
        return [o for o in self.outcomes if o.notifications]

    def summary_line(self) -> str:
        """``alarms: none would notify`` or ``alarms: 2 would notify: detector-errors (ALARM), ...``."""
        notifying = self.notifying
        if not notifying:
            return "alarms: none would notify"
        parts = [f"{o.spec.key} ({', '.join(n.state for n in o.notifications)})" for o in notifying]
        return f"alarms: {len(notifying)} would notify: " + ", ".join(parts)


def specs_for(stack: LocalStack) -> list[AlarmSpec]:
    """The stage's alarm table with this stack's identities as dimension values."""
    settings = Settings(**stack.settings)
    partition = stack.state_machine_arn.split(":")[1] if ":" in stack.state_machine_arn else "aws"
    names = Names(stage=settings.stage, account=Account(partition, stack.region, stack.account_id))
    return alarm_specs(
        AlarmSettings.of(settings),
        names,
        state_machine_arn=stack.state_machine_arn,
        function_name=stack.function_name,
        delivery_stream_name=stack.firehose.stream_name,
    )


def topic_name(stack: LocalStack) -> str:
    """The stage's alarm topic (components/notifications.py names it ``sensorflow-<stage>-alarms``)."""
    settings = Settings(**stack.settings)
    return Names(stage=settings.stage, account=Account("aws", stack.region, stack.account_id)).resource(
        "alarms"
    )


def evaluate(specs: Sequence[AlarmSpec], recorder: MetricRecorder, *, topic: str) -> AlarmReport:
    """Every alarm's state just after the recorded run(s), and the notifications since they began."""
    first, last = recorder.first_timestamp(), recorder.last_timestamp()
    if first is None or last is None:
        return AlarmReport([_idle(spec) for spec in specs], topic, None)
    longest = max((s.evaluation_range_seconds for s in specs), default=DAY)
    origin = int((first - longest) // DAY - 1) * DAY  # a UTC midnight: every period boundary aligns
    outcomes = []
    for spec in specs:
        points = recorder.series(spec.namespace, spec.metric, spec.dimensions)
        relative = [(int(ts - origin), value) for ts, value in points]
        evaluated_at = (int(last - origin) // spec.period + 1) * spec.period  # end of the last period
        result = alarmsim.evaluate(spec, {spec.metric: relative}, duration=evaluated_at)
        since = first - origin
        trouble = {id(t) for t in result.pages}
        wanted = set(result.notified)
        notifications = [
            Notification(origin + t.at, t.new, id(t) in trouble)
            for t in result.transitions
            if t.at > since and t.new in wanted
        ]
        outcomes.append(
            AlarmOutcome(
                spec=spec,
                state=result.state,
                evaluated_at=origin + evaluated_at,
                datapoints=len(points),
                notifications=notifications,
            )
        )
    return AlarmReport(outcomes, topic, first)


def _idle(spec: AlarmSpec) -> AlarmOutcome:
    return AlarmOutcome(spec=spec, state=alarmsim.INSUFFICIENT, evaluated_at=0.0, datapoints=0)


def for_pipeline(pipeline: LocalPipeline) -> AlarmReport:
    """The alarms of a pipeline's stage over everything it recorded."""
    return evaluate(specs_for(pipeline.stack), pipeline.metrics, topic=topic_name(pipeline.stack))
