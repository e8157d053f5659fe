"""An offline evaluator of CloudWatch's documented metric-alarm semantics, for single-metric alarms.

It replays metric time series against an ``AlarmSpec`` (spec/alarms.py) and returns the state at
every evaluation and the transitions, so tests can prove when an alarm fires and when it stays quiet
without an AWS account. Rules, from docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
AlarmThatSendsEmail.html ("Evaluating an alarm") and alarms-and-missing-data.html:

- A new alarm starts in INSUFFICIENT_DATA.
- Each datapoint is the statistic (Sum, Maximum, Minimum, Average, SampleCount) of the values in one
  period; a period with no value is missing.
- At each evaluation the alarm looks at the last ``evaluation_periods`` periods and goes to ALARM when at
  least ``datapoints_to_alarm`` of them breach the threshold under the comparison operator.
- Missing datapoints: ``notBreaching`` counts them as within the threshold, ``breaching`` as breaching;
  ``missing`` and ``ignore`` leave them out. When every datapoint of the range is missing, ``missing``
  goes to INSUFFICIENT_DATA and ``ignore`` keeps the current state.

Simplification (stated, not documented behaviour): with ``missing``/``ignore`` and some datapoints
present, the alarm goes to OK whenever fewer than M present datapoints breach (CloudWatch may also look
further back for datapoints; this evaluator does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

from spec.alarms import AlarmSpec, Comparison, MissingData

ALARM = "ALARM"
OK = "OK"
INSUFFICIENT = "INSUFFICIENT_DATA"

STATISTICS = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": fmean,
    "SampleCount": len,
}


@dataclass(frozen=True)
class Transition:
    at: int  # evaluation time, seconds since the deploy
    old: str
    new: str


@dataclass(frozen=True)
class Result:
    timeline: list[tuple[int, str]]
    transitions: list[Transition]
    notify_insufficient_data: bool = False  # the spec's insufficient-data action (observability.py)

    @property
    def notified(self) -> list[str]:
        """States whose actions fire, one per transition (actions run only on a state change): every
        alarm has ALARM and OK actions (an OK reached from INSUFFICIENT_DATA notifies too), and an alarm
        with an insufficient-data action also notifies on a transition into INSUFFICIENT_DATA."""
        wanted = (ALARM, OK, INSUFFICIENT) if self.notify_insufficient_data else (ALARM, OK)
        return [t.new for t in self.transitions if t.new in wanted]

    @property
    def pages(self) -> list[Transition]:
        """The transitions that tell ops something is wrong: into ALARM, and into INSUFFICIENT_DATA for
        an alarm whose insufficient-data action is the notification (a heartbeat alarm)."""
        trouble = (ALARM, INSUFFICIENT) if self.notify_insufficient_data else (ALARM,)
        return [t for t in self.transitions if t.new in trouble]

    @property
    def state(self) -> str:
        """The state after the last evaluation (a new alarm's INSUFFICIENT_DATA before any)."""
        return self.timeline[-1][1] if self.timeline else INSUFFICIENT

    @property
    def ever_alarm(self) -> bool:
        return any(state == ALARM for _, state in self.timeline)


def _breaches(value: float, spec: AlarmSpec) -> bool:
    if spec.comparison is Comparison.GTE:
        return value >= spec.threshold
    if spec.comparison is Comparison.GT:
        return value > spec.threshold
    if spec.comparison is Comparison.LT:
        return value < spec.threshold
    raise ValueError(f"comparison {spec.comparison!r} not supported (allowed: {list(Comparison)})")


def evaluate(
    spec: AlarmSpec,
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    duration: int,
) -> Result:
    """Evaluate ``spec`` every period from 0 to ``duration`` seconds over ``series[spec.metric]``."""
    if spec.statistic not in STATISTICS:
        raise ValueError(f"{spec.key}: statistic {spec.statistic!r} not in {sorted(STATISTICS)}")
    points: Iterable[tuple[int, float]] = series.get(spec.metric, ())
    buckets: dict[int, list[float]] = {}
    for ts, value in points:
        buckets.setdefault(ts // spec.period, []).append(value)
    state, timeline, transitions = INSUFFICIENT, [], []
    for end in range(spec.period, duration + 1, spec.period):
        last = end // spec.period  # periods [last - N, last)
        window = [buckets.get(p) for p in range(last - spec.evaluation_periods, last)]
        present = [STATISTICS[spec.statistic](vs) for vs in window if vs]
        missing = len(window) - len(present)
        breaching = sum(_breaches(v, spec) for v in present)
        if spec.missing_data is MissingData.BREACHING:
            breaching += missing
        new = state
        if not present and spec.missing_data is MissingData.MISSING:
            new = INSUFFICIENT
        elif not present and spec.missing_data is MissingData.IGNORE:
            new = state
        else:
            new = ALARM if breaching >= spec.datapoints_to_alarm else OK
        if new != state:
            transitions.append(Transition(end, state, new))
            state = new
        timeline.append((end, state))
    return Result(timeline, transitions, spec.notify_insufficient_data)
