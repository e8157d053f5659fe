"""The ground-truth check (computed in DuckDB) finds every kind of disagreement, not only agreement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tools.localrun import ground_truth

from .conftest import DAY


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, sim_day: tuple[Path, Any]) -> Any:
    from tools.localrun import stack as stack_mod
    from tools.localrun.run import LocalPipeline

    pipeline = LocalPipeline(stack_mod.rendered("dev"), tmp_path_factory.mktemp("gt") / "run", processes=0)
    pipeline.put_raw(sim_day[0])
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", run.cause
    yield pipeline, run.execution_id, sim_day[1]
    pipeline.close()


def _with(truth: pa.Table, row: int, column: str, value: Any) -> pa.Table:
    values = truth.column(column).to_pylist()
    values[row] = value
    return truth.set_column(
        truth.schema.get_field_index(column), column, pa.array(values, truth.schema.field(column).type)
    )


def test_agreement(ran: Any) -> None:
    pipeline, run_id, truth = ran
    check = ground_truth.check_ground_truth(pipeline, truth, [run_id])
    assert check.ok, check.describe()
    assert check.distinct_rows == check.expected_rows == truth.num_rows
    assert 0 < check.injected == check.injected_found
    assert 0 < check.malformed == check.malformed_invalid


def test_agreement_read_from_the_ground_truth_file(ran: Any, sim_day: tuple[Path, Any]) -> None:
    pipeline, run_id, truth = ran
    from_file = ground_truth.check_ground_truth(pipeline, sim_day[0] / "ground-truth.parquet", [run_id])
    assert from_file == ground_truth.check_ground_truth(pipeline, truth, [run_id])
    assert from_file.ok


def test_a_wrong_verdict_is_named(ran: Any) -> None:
    pipeline, run_id, truth = ran
    healthy = truth.column("status").to_pylist().index("healthy")
    check = ground_truth.check_ground_truth(pipeline, _with(truth, healthy, "status", "invalid"), [run_id])
    assert not check.ok
    assert len(check.wrong_verdicts) == 1
    reading, wanted, got = check.wrong_verdicts[0]
    assert reading[0] == truth.column("deviceid")[healthy].as_py()
    assert (wanted[0], got[0]) == ("invalid", "healthy")
    assert not check.missing
    assert not check.unexpected


def test_a_reading_not_delivered_and_one_not_expected(ran: Any) -> None:
    pipeline, run_id, truth = ran
    check = ground_truth.check_ground_truth(pipeline, _with(truth, 0, "deviceid", "sensor-nowhere"), [run_id])
    assert not check.ok
    assert [m[0] for m in check.missing] == ["sensor-nowhere"]
    assert [u[0] for u in check.unexpected] == [truth.column("deviceid")[0].as_py()]


def test_a_reading_expected_twice_but_delivered_once(ran: Any) -> None:
    pipeline, run_id, truth = ran
    doubled = pa.concat_tables([truth, truth.slice(5, 1)])
    check = ground_truth.check_ground_truth(pipeline, doubled, [run_id])
    assert not check.ok
    assert len(check.missing) == 1
    assert check.missing[0][0] == truth.column("deviceid")[5].as_py()


def test_an_injected_anomaly_not_found(ran: Any) -> None:
    pipeline, run_id, truth = ran
    row = next(i for i, kind in enumerate(truth.column("injected").to_pylist()) if kind)
    anomalies = truth.column("anomalies")[row].as_py()
    # the simulator claims one more kind than the reading has: the record cannot hold it
    extra = next(k for k in ("temperature_spike", "humidity_anomaly", "low_battery") if k not in anomalies)
    check = ground_truth.check_ground_truth(
        pipeline, _with(truth, row, "anomalies", [*anomalies, extra]), [run_id]
    )
    assert not check.ok
    assert check.injected_found == check.injected - 1
