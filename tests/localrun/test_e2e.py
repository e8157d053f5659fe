"""End to end: the stage's definition, the real detector and the stand-ins, on a simulated day."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spec import settings
from tools import stackfile
from tools.localrun import ground_truth, report
from tools.localrun.run import LocalPipeline
from tools.localrun.worker import Faults
from tools.simulate import ANOMALY_KINDS, MALFORMED_KINDS

from .conftest import DAY

# Several batches and workers for a simulated day, whatever the committed dev stack tunes for a million.
SMALL_BATCHES = {"maxConcurrency": 4, "maxItemsPerBatch": 250, "maxInputBytesPerBatch": 131_072}

IGNORED = ("processedatms",)  # differs run to run by design


def _records(pipeline: LocalPipeline, run_id: str) -> list[str]:
    rows = ground_truth.delivered_records(pipeline, [run_id])
    assert rows, "the run delivered nothing"
    return sorted(
        json.dumps({k: v for k, v in r.items() if k not in IGNORED}, sort_keys=True, default=str)
        for r in rows
    )


def _kpis(pipeline: LocalPipeline) -> list[dict[str, Any]]:
    columns, rows = pipeline.athena.query(
        'SELECT * FROM "sensorflow_dev_db"."device_kpis" WHERE dt = ? ORDER BY deviceid', [DAY]
    )
    assert rows, "no KPIs written"
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _assert_same_kpis(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Equal KPIs; averages up to floating-point summation order (Athena's are not bit-stable either)."""
    assert [r["deviceid"] for r in a] == [r["deviceid"] for r in b]
    for left, right in zip(a, b, strict=True):
        for key, value in left.items():
            expected = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert right[key] == expected, (left["deviceid"], key)


def test_simulated_day_covers_every_kind(sim_day: tuple[Path, Any]) -> None:
    truth = sim_day[1]
    injected = set(truth.column("injected").to_pylist())
    malformed = set(truth.column("malformed").to_pylist())
    anomalies = {a for row in truth.column("anomalies").to_pylist() for a in row}
    assert injected >= set(ANOMALY_KINDS)
    assert malformed >= set(MALFORMED_KINDS)
    assert anomalies == {"temperature_spike", "humidity_anomaly", "low_battery"}


def test_dev_day_end_to_end(make_pipeline: Any, sim_day: tuple[Path, Any], tmp_path: Path) -> None:
    pipeline = make_pipeline("dev")
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    truth = sim_day[1]
    assert run.output["rowsProcessed"] == run.output["rowsDelivered"] == truth.num_rows
    check = ground_truth.check_ground_truth(pipeline, truth, [run.execution_id])
    assert check.ok, check.describe()
    assert check.injected > 0
    assert check.malformed > 0
    # The committed dev batch holds the whole small day: one child (fan-out: the SMALL_BATCHES runs).
    batches = -(-truth.num_rows // stackfile.load("dev").settings.max_items_per_batch)
    assert run.child_executions == run.batches == run.lambda_invocations == batches
    assert [h[1] for h in run.history][-1] == "Done"
    assert run.firehose.calls > 0
    assert run.firehose.billed_bytes >= run.firehose.bytes
    paths = report.write_report(pipeline, [run], tmp_path / "report", truth_check=check)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert "delivered exactly once" in paths["markdown"].read_text()


def test_results_do_not_depend_on_concurrency_or_batch_size(make_pipeline: Any) -> None:
    wide = make_pipeline("dev", SMALL_BATCHES, folder="wide")
    narrow = make_pipeline(
        "dev",
        {
            "maxConcurrency": 1,
            "maxItemsPerBatch": 37,
            "maxInputBytesPerBatch": settings.MIN_INPUT_BYTES_PER_BATCH,
        },
        folder="narrow",
    )
    a = wide.execute(DAY, name="same-name")
    b = narrow.execute(DAY, name="same-name")
    assert a.status == b.status == "SUCCEEDED"
    assert b.batches > a.batches
    assert (a.workers, b.workers) == (2, 1)
    assert _records(wide, a.execution_id) == _records(narrow, b.execution_id)
    _assert_same_kpis(_kpis(wide), _kpis(narrow))


def test_lost_records_fail_reconciliation_clearly(make_pipeline: Any, sim_day: tuple[Path, Any]) -> None:
    pipeline = make_pipeline("dev", SMALL_BATCHES, faults=Faults(lose_batches=frozenset({1})), processes=0)
    run = pipeline.execute(DAY)
    assert run.status == "FAILED"
    assert run.error == "ReconciliationFailed"
    assert run.execution_id in run.cause
    assert f"expected {run.rows} rows" in run.cause
    found = run.rows - 250  # 250 rows a batch; batch 1 was lost
    assert f"found {found} after 3 checks" in run.cause  # dev: reconcileMaxAttempts 3
    assert [h[1] for h in run.history].count("WaitBeforeRecount") == 2
    # The ground-truth check sees the same loss (a negative control for the check itself).
    check = ground_truth.check_ground_truth(pipeline, sim_day[1], [run.execution_id])
    assert not check.ok
    assert len(check.missing) == 250


def test_a_duplicated_batch_is_counted_once(make_pipeline: Any, sim_day: tuple[Path, Any]) -> None:
    pipeline = make_pipeline(
        "dev", SMALL_BATCHES, faults=Faults(duplicate_batches=frozenset({0})), processes=0
    )
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", run.cause
    assert run.child_executions == run.batches + 1
    assert run.output["rowsDelivered"] == run.rows == sim_day[1].num_rows
    check = ground_truth.check_ground_truth(pipeline, sim_day[1], [run.execution_id])
    assert check.ok, check.describe()
    assert check.delivered_records == check.distinct_rows + 250


def test_rerunning_a_day_gives_identical_kpis(make_pipeline: Any) -> None:
    pipeline = make_pipeline("dev", processes=0)
    first = pipeline.execute(DAY, name="first")
    kpis = _kpis(pipeline)
    second = pipeline.execute(DAY, name="second")
    assert first.status == second.status == "SUCCEEDED"
    assert "DeleteOldKpis" in [h[1] for h in second.history]
    _assert_same_kpis(_kpis(pipeline), kpis)


@pytest.mark.parametrize("unload_format", ["CSV", "JSONL"])
def test_other_unload_formats(make_pipeline: Any, sim_day: tuple[Path, Any], unload_format: str) -> None:
    pipeline = make_pipeline("prod", {"unloadFormat": unload_format}, processes=0)
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", run.cause
    check = ground_truth.check_ground_truth(pipeline, sim_day[1], [run.execution_id])
    assert check.ok, check.describe()


def test_a_broken_definition_stops_before_running(make_pipeline: Any) -> None:
    from tools.localrun import stack
    from tools.localrun.machine import DefinitionError

    local = stack.rendered("dev")
    broken = json.loads(json.dumps(local.definition))
    broken["States"]["CountDelivered"]["Arguments"]["QueryString"] = "{% 'SELECT ' & & %}"
    with pytest.raises(DefinitionError, match=r"state 'CountDelivered', field 'Arguments'\.QueryString"):
        LocalPipeline(local.with_definition(broken), Path("unused"))
