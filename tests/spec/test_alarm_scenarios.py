"""Every alarm of the table replayed through the CloudWatch evaluator: one scenario where it must fire,
one where it must stay quiet, and the first 48 hours after a deploy with no data at all."""

from __future__ import annotations

import dataclasses

import pytest

from spec.alarms import AlarmSpec
from tests.spec.test_alarm_table import STACKS, specs_for
from tools import alarmsim

HOUR = 3_600
DAY = 24 * HOUR
RUN_AT = 2 * HOUR + 30 * 60  # the default schedule, 02:30 UTC


def all_specs() -> list[AlarmSpec]:
    return [s for st in STACKS for s in specs_for(st, scheduleEnabled=True, ownsAccountAlarms=True)]


def one_run(**metrics: float) -> dict[str, list[tuple[int, float]]]:
    """A normal day: each metric emits its value once, during the 02:30 run."""
    return {m: [(RUN_AT, v)] for m, v in metrics.items()}


HEALTHY = one_run(
    ExecutionsSucceeded=1,
    Errors=0,
    Throttles=0,
    Duration=20_000,
    **{"DeliveryToS3.DataFreshness": 120.0, "DeliveryToS3.Success": 1.0},
    ApproximateOpenMapRunCount=1,
    InvalidRows=0,
    DeliveryFailures=0,
)

# What each alarm exists to catch, as the series its service would emit.
FIRES = {
    "open-map-runs": {
        "ApproximateOpenMapRunCount": [(RUN_AT + 60 * i, 100.0 * i) for i in range(1, 10)]
        + [(RUN_AT + 600, 950.0)]
    },
    "map-run-backlog": {"ApproximateMapRunBacklogSize": [(RUN_AT, 3.0)]},
    "executions-failed": one_run(ExecutionsFailed=1),
    "executions-timed-out": one_run(ExecutionsTimedOut=1),
    "executions-aborted": one_run(ExecutionsAborted=1),
    "executions-throttled": one_run(ExecutionThrottled=4),
    # The run failed: no success for the whole window after the last one on day 1.
    "no-recent-success": {"ExecutionsSucceeded": [(RUN_AT, 1.0)], "ExecutionsFailed": [(DAY + RUN_AT, 1.0)]},
    "detector-errors": one_run(Errors=2),
    "detector-throttles": one_run(Throttles=5),
    "detector-duration": one_run(Duration=290_000),
    "delivery-freshness": {
        "DeliveryToS3.DataFreshness": [(RUN_AT + 300 * i, 300.0 * i) for i in range(1, 8)]
    },
    "delivery-success": {"DeliveryToS3.Success": [(RUN_AT + 300 * i, 0.5) for i in range(4)]},
    "detector-delivery-failures": one_run(DeliveryFailures=1),
    "detector-invalid-rows": one_run(InvalidRows=3),
}


def spec_id(spec: AlarmSpec) -> str:
    return spec.name


def test_the_table_is_not_empty_and_every_alarm_has_a_firing_scenario():
    specs = all_specs()
    assert specs
    assert sorted({s.key for s in specs} - FIRES.keys()) == []


@pytest.mark.parametrize("spec", all_specs(), ids=spec_id)
def test_fires_on_what_it_is_for(spec):
    result = alarmsim.evaluate(spec, FIRES[spec.key], duration=3 * DAY)
    # Only a page after the trouble began counts, not one left over from the deploy.
    assert [t for t in result.pages if t.at > RUN_AT] != []


@pytest.mark.parametrize("spec", all_specs(), ids=spec_id)
def test_quiet_on_a_normal_day_with_one_successful_run(spec):
    daily = {m: [(d * DAY + t, v) for d in range(3) for t, v in pts] for m, pts in HEALTHY.items()}
    result = alarmsim.evaluate(spec, daily, duration=3 * DAY)
    # Steady state from the second day on; the deploy itself is the fresh-deploy test's concern.
    assert [t for t in result.pages if t.at > DAY] == []


@pytest.mark.parametrize("spec", all_specs(), ids=spec_id)
def test_quiet_for_48_hours_after_a_fresh_deploy_with_no_data(spec):
    result = alarmsim.evaluate(spec, {}, duration=2 * DAY)
    assert not result.ever_alarm
    assert result.pages == []
    assert [state for state in result.notified if state != alarmsim.OK] == []


def test_no_recent_success_pages_when_the_scheduled_run_never_starts():
    spec = next(s for s in all_specs() if s.key == "no-recent-success")
    # One success on day 1, then the schedule stops firing: no series at all afterwards.
    result = alarmsim.evaluate(spec, {"ExecutionsSucceeded": [(RUN_AT, 1.0)]}, duration=3 * DAY)
    pages = result.pages
    assert [t.new for t in pages] == [alarmsim.INSUFFICIENT]
    # The window is every hour of successWindowHours: the page comes that long after the last success.
    assert pages[0].at == (RUN_AT // HOUR + 1 + spec.evaluation_periods) * HOUR
    assert alarmsim.INSUFFICIENT in result.notified


def test_no_recent_success_under_breaching_would_page_a_fresh_deploy():
    # The negative control for the design: the old `breaching` policy pages within the first window.
    spec = next(s for s in all_specs() if s.key == "no-recent-success")
    old = dataclasses.replace(
        spec, missing_data=alarmsim.MissingData.BREACHING, notify_insufficient_data=False
    )
    assert alarmsim.evaluate(old, {}, duration=2 * DAY).pages != []


def test_negative_control_a_wrong_expectation_is_flagged():
    spec = next(s for s in all_specs() if s.key == "executions-failed")
    assert not alarmsim.evaluate(spec, HEALTHY, duration=DAY).ever_alarm
    # The same alarm pointed at a series the healthy day does emit must fire: the check can fail.
    low = dataclasses.replace(spec, metric="ExecutionsSucceeded")
    assert alarmsim.evaluate(low, HEALTHY, duration=DAY).ever_alarm


def test_new_alarm_starts_insufficient_and_missing_policy_stays_there():
    spec = next(s for s in all_specs() if s.key == "executions-failed")
    missing = dataclasses.replace(spec, missing_data=alarmsim.MissingData.MISSING)
    result = alarmsim.evaluate(missing, {}, duration=DAY)
    assert result.transitions == []
    assert result.timeline[-1][1] == alarmsim.INSUFFICIENT
