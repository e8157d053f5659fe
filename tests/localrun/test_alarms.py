"""The local run publishes what AWS would, and the stage's alarms judge it as CloudWatch would.

A clean run (no malformed rows) notifies nobody; the default generator's malformed rows notify exactly
through detector-invalid-rows (on purpose, and the run says so); a Firehose outage that fails batches
notifies exactly through the failure alarms. Every recorded series is a documented one, with exactly the
dimensions AWS publishes it under, so an alarm naming another dimension finds no data.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spec.alarms import MissingData
from tests.spec.documented_metrics import DOCUMENTED, metric_problems
from tools import alarmsim
from tools.localrun import alarms, ground_truth, metrics, report
from tools.localrun import stack as stack_mod
from tools.localrun.run import LocalPipeline
from tools.localrun.worker import Faults
from tools.simulate import Fleet, simulate

DAY = "2025-06-01"
FAILURE_ALARMS = {"executions-failed", "detector-errors", "detector-delivery-failures"}


def _sim(folder: Path, malformed_share: float) -> Any:
    fleet = Fleet(
        devices=2, days=1, interval_seconds=300, seed=11, anomaly_share=0.02, malformed_share=malformed_share
    )
    return simulate(fleet, folder)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    out = {}
    for name, share in (("clean", 0.0), ("malformed", 0.02)):
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, _sim(folder, share))
    return out


def _run(tmp_path: Path, source: Path, *, fail_batches: int = 0) -> LocalPipeline:
    # deliveryMaxAttempts 2 keeps the detector's real back-off sleeps short under the outage.
    local = stack_mod.rendered("dev", {"deliveryMaxAttempts": 2})
    pipeline = LocalPipeline(
        local, tmp_path / "run", processes=0, faults=Faults(fail_batches=frozenset(range(fail_batches)))
    )
    pipeline.put_raw(source)
    pipeline.execute(DAY)
    return pipeline


@pytest.fixture
def clean(tmp_path: Path, days: dict[str, tuple[Path, Any]]) -> Any:
    pipeline = _run(tmp_path, days["clean"][0])
    yield pipeline
    pipeline.close()


def _notifying(pipeline: LocalPipeline) -> dict[str, list[str]]:
    result = alarms.for_pipeline(pipeline)
    assert len(result.outcomes) == len(alarms.specs_for(pipeline.stack)) > 0
    return {o.spec.key: [n.state for n in o.notifications] for o in result.notifying}


def test_a_clean_run_notifies_nobody_and_its_quiet_is_not_for_want_of_data(clean: LocalPipeline) -> None:
    assert clean.runs[-1].status == "SUCCEEDED"
    result = alarms.for_pipeline(clean)
    assert result.notifying == []
    assert result.summary_line() == "alarms: none would notify"
    read = {o.spec.key: o.datapoints for o in result.outcomes}
    # The alarms that must stay quiet had their series: the run published them.
    for key in ("executions-failed", "no-recent-success"):
        read.pop(key, None)  # a clean run emits no failure; dev has no schedule (no heartbeat)
    fed = {k for k, n in read.items() if n}
    assert {"open-map-runs", "detector-errors", "detector-duration", "delivery-freshness",
            "delivery-success", "detector-delivery-failures", "detector-invalid-rows"} <= fed  # fmt: skip
    assert all(o.state == alarmsim.OK for o in result.outcomes)


def test_malformed_rows_notify_exactly_through_detector_invalid_rows(
    tmp_path: Path, days: dict[str, tuple[Path, Any]]
) -> None:
    source, truth = days["malformed"]
    pipeline = _run(tmp_path, source)
    try:
        assert pipeline.runs[-1].status == "SUCCEEDED"
        assert _notifying(pipeline) == {"detector-invalid-rows": [alarmsim.ALARM]}
        check = ground_truth.check_ground_truth(pipeline, truth, [pipeline.runs[-1].execution_id])
        assert check.malformed > 0
        lines = report.alarm_lines(pipeline, check)
        assert lines[0] == "alarms: 1 would notify: detector-invalid-rows (ALARM)"
        assert f"the generator injected {check.malformed:,} malformed rows" in lines[1]
        assert "--malformed-share 0" in lines[1]
        invalid = sum(v for _t, v in pipeline.metrics.series(
            metrics.NS_DETECTOR, "InvalidRows", {"service": pipeline.stack.function_name}))  # fmt: skip
        assert invalid == check.malformed  # the EMF the handler printed, summed
    finally:
        pipeline.close()


def test_failed_batches_notify_exactly_the_failure_alarms_and_a_redrive_keeps_them(
    tmp_path: Path, days: dict[str, tuple[Path, Any]]
) -> None:
    pipeline = _run(tmp_path, days["clean"][0], fail_batches=1)
    try:
        assert pipeline.runs[-1].status == "FAILED"
        assert _notifying(pipeline) == {key: [alarmsim.ALARM] for key in FAILURE_ALARMS}
        pipeline.save_executions()
    finally:
        pipeline.close()
    again = LocalPipeline(
        stack_mod.rendered("dev", {"deliveryMaxAttempts": 2}), tmp_path / "run", processes=0
    )
    try:
        assert again.load_executions()
        assert again.redrive().status == "SUCCEEDED"
        sfn = {"StateMachineArn": again.stack.state_machine_arn}
        assert again.metrics.series(metrics.NS_STATES, "ExecutionsFailed", sfn) != []  # the first run's
        assert again.metrics.series(metrics.NS_STATES, "ExecutionsSucceeded", sfn) != []  # the redrive's
        # After the redrive every failure alarm has paged and cleared; nothing else spoke.
        assert _notifying(again) == {key: [alarmsim.ALARM, alarmsim.OK] for key in FAILURE_ALARMS}
    finally:
        again.close()


def test_every_recorded_series_is_documented_with_its_dimensions(clean: LocalPipeline) -> None:
    points = clean.metrics.points
    assert points
    problems = [
        p for d in points for p in metric_problems(d.namespace, d.metric, [k for k, _v in d.dimensions])
    ]
    assert problems == []
    for (namespace, metric), dims in metrics.EMITTED.items():
        assert frozenset(dims) in DOCUMENTED[namespace][metric], (namespace, metric)
    now = datetime.now(UTC)
    with pytest.raises(metrics.MetricError, match="AWS publishes it with"):
        clean.metrics.put(metrics.NS_LAMBDA, "Errors", {"Function": "x"}, now, value=1, unit="Count")
    with pytest.raises(metrics.MetricError, match="not a series"):
        clean.metrics.put(metrics.NS_STATES, "ExecutionsFailedCount", {}, now, value=1, unit="Count")


def test_an_alarm_on_a_wrong_dimension_finds_no_data_and_stays_quiet(tmp_path: Path, days: Any) -> None:
    pipeline = _run(tmp_path, days["malformed"][0])
    try:
        spec = next(s for s in alarms.specs_for(pipeline.stack) if s.key == "detector-invalid-rows")
        topic = alarms.topic_name(pipeline.stack)
        right = alarms.evaluate([spec], pipeline.metrics, topic=topic).outcomes[0]
        assert right.state == alarmsim.ALARM
        assert right.datapoints > 0
        for dims in ({"FunctionName": pipeline.stack.function_name}, {"service": "sensorflow-prod-detector"}):
            wrong = dataclasses.replace(spec, dimensions=dims)
            outcome = alarms.evaluate([wrong], pipeline.metrics, topic=topic).outcomes[0]
            assert (outcome.state, outcome.datapoints, outcome.notifications) == (alarmsim.OK, 0, [])
            missing = dataclasses.replace(wrong, missing_data=MissingData.MISSING)
            outcome = alarms.evaluate([missing], pipeline.metrics, topic=topic).outcomes[0]
            assert outcome.state == alarmsim.INSUFFICIENT
    finally:
        pipeline.close()


def test_negative_control_a_wrong_expectation_fails(clean: LocalPipeline) -> None:
    # The clean run's verdict compared with the failed run's expectation must not pass.
    with pytest.raises(AssertionError):
        assert _notifying(clean) == {key: [alarmsim.ALARM] for key in FAILURE_ALARMS}
    # And an alarm fed the run's own data with a threshold it crosses does fire: quiet is not vacuous.
    spec = next(s for s in alarms.specs_for(clean.stack) if s.key == "detector-errors")
    low = dataclasses.replace(spec, metric="Invocations")
    outcome = alarms.evaluate([low], clean.metrics, topic="t").outcomes[0]
    assert [n.state for n in outcome.notifications] == [alarmsim.ALARM]


def test_emf_parsing_follows_the_specification() -> None:
    doc = {
        "_aws": {
            "Timestamp": 0,
            "CloudWatchMetrics": [
                {
                    "Namespace": "N",
                    "Dimensions": [["service"], []],
                    "Metrics": [{"Name": "M", "Unit": "Count"}],
                }
            ],
        },
        "service": "s",
        "M": [1, 2],
    }
    got = metrics.parse_emf(json.dumps(doc))
    assert got == [
        ("N", "M", {"service": "s"}, 1.0, "Count"), ("N", "M", {"service": "s"}, 2.0, "Count"),
        ("N", "M", {}, 1.0, "Count"), ("N", "M", {}, 2.0, "Count"),
    ]  # fmt: skip
    for bad in ("{}", "not json", json.dumps({**doc, "M": None} | {"_aws": {"CloudWatchMetrics": [
            {"Namespace": "N", "Dimensions": [["absent"]], "Metrics": [{"Name": "M"}]}]}})):  # fmt: skip
        with pytest.raises(metrics.MetricError):
            metrics.parse_emf(bad)


def test_the_command_prints_the_alarms_line_and_writes_metrics_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.localrun.__main__ import main

    out = tmp_path / "out"
    common = ["--stack", "dev", "--out", str(out), "--no-progress", "--processes", "0", "--devices", "2"]
    main(common)  # the default 1% malformed rows
    printed = capsys.readouterr().out
    assert "alarms: 1 would notify: detector-invalid-rows (ALARM)" in printed
    assert "is expected: the generator injected" in printed
    body = json.loads((out / "latest" / "metrics.json").read_text())
    assert {d["metric"] for d in body["datapoints"]} >= {"ExecutionsSucceeded", "Errors", "InvalidRows"}
    assert "## Alarms" in (out / "latest" / "report.md").read_text()
    assert main([*common, "--malformed-share", "0"]) == 0
    assert "alarms: none would notify" in capsys.readouterr().out


def test_the_docs_table_names_every_recorded_series() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "local-run.md").read_text()
    section = docs.split("## Metrics and alarms", 1)[1].split("\n## ", 1)[0]
    assert metrics.EMITTED
    missing = [(ns, m) for ns, m in metrics.EMITTED if f"`{m}`" not in section or f"`{ns}`" not in section]
    assert missing == []
