"""Daily KPIs checked against values computed by hand on a small raw CSV, and unchanged by a rerun.

The CSV below is written for the arithmetic to be done on paper: six devices, fourteen readings out of
timestamp order, with an invalid reading whose values would be the day's extremes if invalid readings
counted (and which is anomalous too: its finite values are still judged), a temperature spike, humidity
anomalies (one reading with two anomalies), a low battery, a device with only an invalid reading and no
anomaly (``no_data``), one whose only reading is invalid and anomalous (``critical``, not ``no_data``)
and one with an invalid reading but no anomaly (``watch``). Every column of every device row and of the
fleet row (``'*'``) is compared with the expected table, which follows
``spec.queries.kpis_for_day``'s definitions:

* counts over every reading: invalid = has invalid reasons, anomalous = has an anomaly, independently
  (a reading can be both); temperature, humidity and battery figures over valid readings only;
* battery drain: the first minus the last valid battery level by timestamp; the fleet's is the mean of
  the devices' drains (a device without valid readings has none and does not count);
* the fleet's averages are weighted by readings (sum over all valid readings / their number);
* anomaly rate: anomalous readings / readings;
* health: ``no_data`` without valid readings and anomalies, ``critical`` at an anomaly rate >= 0.2,
  ``watch`` at >= 0.05 or with any invalid reading, else ``ok``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spec.naming import KPI_PREFIX
from tools.localrun import stack as stack_mod
from tools.localrun import summary
from tools.localrun.run import LocalPipeline

DAY = "2025-06-01"

# deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude — in arrival order, not time order.
RAW = """\
deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude
dev-a,2025-06-01T10:00:00Z,20.0,50.0,90.0,40.0,-3.0
dev-b,2025-06-01T11:00:00Z,25.0,97.0,50.0,41.0,-2.0
dev-a,2025-06-01T08:00:00Z,22.0,55.0,95.0,40.0,-3.0
dev-c,2025-06-01T18:00:00Z,19.5,72.0,79.5,42.0,-1.0
dev-a,2025-06-01T12:00:00Z,40.0,60.0,85.0,40.0,-3.0
dev-b,2025-06-01T07:30:00Z,24.0,45.0,60.0,41.0,-2.0
dev-a,2025-06-01T05:00:00Z,50.0,abc,10.0,40.0,-3.0
dev-d,not-a-time,20.0,50.0,50.0,43.0,0.0
dev-b,2025-06-01T15:00:00Z,26.0,40.0,15.0,41.0,-2.0
dev-e,2025-06-01T23:00:00Z,-5.0,50.0,150.0,44.0,1.0
dev-b,2025-06-01T13:00:00Z,-12.0,3.0,30.0,41.0,-2.0
dev-c,2025-06-01T06:00:00Z,18.5,70.0,80.0,42.0,-1.0
dev-d,2025-06-01T12:30:00Z,30.0,50.0,50.0,43.0,0.0
dev-f,2025-06-01T09:00:00Z,20.0,150.0,50.0,45.0,2.0
"""
# By hand, per device (valid readings only for the metrics):
# dev-a: 4 readings; 05:00 invalid (humidity 'abc'; its 50 °C / 10 % / 05:00 must not count in the
#        metrics) and anomalous: 50 °C is a spike and battery 10 low, beside humidity:missing.
#        valid 08:00 (22, 55, 95), 10:00 (20, 50, 90), 12:00 (40 spike, 60, 85).
#        2 anomalous (12:00, 05:00): 2 spikes, 1 low battery; rate 2/4.
#        temp 20..40 avg 82/3; humidity 50..60 avg 55; battery min 85, drain 95 - 85 = 10.
# dev-b: 4 valid; 07:30 (24, 45, 60), 11:00 (25, 97 humidity, 50), 13:00 (-12 spike, 3 humidity, 30),
#        15:00 (26, 40, 15 low battery). 3 anomalous readings, 4 anomalies; temp -12..26 avg 63/4;
#        humidity 3..97 avg 185/4; battery min 15, drain 60 - 15 = 45; rate 3/4.
# dev-c: 06:00 (18.5, 70, 80), 18:00 (19.5, 72, 79.5): avg 19, 71; drain 0.5; rate 0 -> ok.
# dev-d: 'not-a-time' invalid; 12:30 (30, 50, 50) valid: drain 0, rate 0, one invalid -> watch.
# dev-e: battery 150 is out of range and breaks no rule: no valid reading, no anomaly -> every metric
#        null, rate 0/1, no_data.
# dev-f: humidity 150 is out of range and a humidity anomaly: no valid reading, yet 1 anomalous of 1 ->
#        rate 1, critical (not no_data); every metric null.
# first/last reading are the detector's normalised UTC instants (readingtime), whatever notation arrived.
# fleet: 14 readings, 10 valid, 4 invalid, 6 anomalous (3 spikes, 3 humidity, 2 low battery), rate 6/14;
#        temp -12..40, avg (82 + 63 + 38 + 30) / 10 = 21.3; humidity 3..97, avg (165 + 185 + 142 + 50) / 10
#        = 54.2; battery min 15; drain mean(10, 45, 0.5, 0) = 13.875; first 06:00 (dev-c), last 18:00.
COLUMNS = (
    "deviceid", "readings", "validreadings", "invalidreadings", "anomalousreadings", "temperaturespikes",
    "humidityanomalies", "lowbatteryreadings", "anomalyrate", "mintemperature", "maxtemperature",
    "avgtemperature", "minhumidity", "maxhumidity", "avghumidity", "minbattery", "batterydrain",
    "firstreading", "lastreading", "health",
)  # fmt: skip
T = "2025-06-01T"
EXPECTED = [
    ("*", 14, 10, 4, 6, 3, 3, 2, 6 / 14, -12.0, 40.0, 21.3, 3.0, 97.0, 54.2, 15.0, 13.875,
     f"{T}06:00:00.000000Z", f"{T}18:00:00.000000Z", "critical"),
    ("dev-a", 4, 3, 1, 2, 2, 0, 1, 0.5, 20.0, 40.0, 82 / 3, 50.0, 60.0, 55.0, 85.0, 10.0,
     f"{T}08:00:00.000000Z", f"{T}12:00:00.000000Z", "critical"),
    ("dev-b", 4, 4, 0, 3, 1, 2, 1, 0.75, -12.0, 26.0, 15.75, 3.0, 97.0, 46.25, 15.0, 45.0,
     f"{T}07:30:00.000000Z", f"{T}15:00:00.000000Z", "critical"),
    ("dev-c", 2, 2, 0, 0, 0, 0, 0, 0.0, 18.5, 19.5, 19.0, 70.0, 72.0, 71.0, 79.5, 0.5,
     f"{T}06:00:00.000000Z", f"{T}18:00:00.000000Z", "ok"),
    ("dev-d", 2, 1, 1, 0, 0, 0, 0, 0.0, 30.0, 30.0, 30.0, 50.0, 50.0, 50.0, 50.0, 0.0,
     f"{T}12:30:00.000000Z", f"{T}12:30:00.000000Z", "watch"),
    ("dev-e", 1, 0, 1, 0, 0, 0, 0, 0.0, None, None, None, None, None, None, None, None,
     None, None, "no_data"),
    ("dev-f", 1, 0, 1, 1, 0, 1, 0, 1.0, None, None, None, None, None, None, None, None,
     None, None, "critical"),
]  # fmt: skip


def _pipeline(root: Path, raw: str) -> LocalPipeline:
    csv_file = root / "readings.csv"
    root.mkdir(parents=True, exist_ok=True)
    csv_file.write_text(raw)
    pipeline = LocalPipeline(stack_mod.rendered("dev"), root / "run", processes=0, verify=True)
    pipeline.put_raw_file(csv_file, DAY)
    return pipeline


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[LocalPipeline]:
    made = _pipeline(tmp_path, RAW)
    yield made
    made.close()


def _kpis(pipeline: LocalPipeline) -> list[dict[str, Any]]:
    table = pipeline.stack.tables[pipeline.stack.exports["kpiTable"]]
    columns, rows = pipeline.athena.query(
        f'SELECT * FROM "{table.database}"."{table.name}" WHERE dt = ? ORDER BY deviceid', [DAY]
    )
    assert rows, "no KPI rows for the day"
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _kpi_files(pipeline: LocalPipeline) -> list[str]:
    bucket = pipeline.stack.exports["analyticsBucket"]
    return [key for key, _size in pipeline.store.list(bucket, f"{KPI_PREFIX}dt={DAY}/")]


def _assert_expected(rows: list[dict[str, Any]]) -> None:
    assert [r["deviceid"] for r in rows] == [e[0] for e in EXPECTED]
    for row, expected in zip(rows, EXPECTED, strict=True):
        assert set(COLUMNS) <= row.keys(), sorted(set(COLUMNS) - row.keys())
        for column, value in zip(COLUMNS, expected, strict=True):
            want = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
            assert row[column] == want, (row["deviceid"], column, row[column], value)
            if isinstance(value, int) and not isinstance(value, bool):
                assert isinstance(row[column], int), (row["deviceid"], column, type(row[column]))


def test_kpis_equal_the_hand_computed_values(pipeline: LocalPipeline) -> None:
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["rowsProcessed"] == run.output["rowsDelivered"] == 14
    _assert_expected(_kpis(pipeline))


def test_a_wrong_expectation_fails(pipeline: LocalPipeline) -> None:
    """Negative control: the comparison notices a single changed value."""
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    rows = _kpis(pipeline)
    rows[2] = dict(rows[2], batterydrain=rows[2]["batterydrain"] + 0.001)  # dev-b
    with pytest.raises(AssertionError, match="batterydrain"):
        _assert_expected(rows)


def test_rerunning_the_day_replaces_its_kpis(pipeline: LocalPipeline) -> None:
    first = pipeline.execute(DAY, name="first")
    assert first.status == "SUCCEEDED", (first.error, first.cause)
    files_after_first = _kpi_files(pipeline)
    assert files_after_first, "the first run wrote no KPI file"
    bucket = pipeline.stack.exports["analyticsBucket"]
    assert all(pipeline.store.get(bucket, key)[:4] == b"PAR1" for key in files_after_first)
    first_rows = _kpis(pipeline)

    second = pipeline.execute(DAY, name="second")
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    states = [h[1] for h in second.history]
    assert "DeleteOldKpis" in states
    assert states.index("DeleteOldKpis") < states.index("WriteKpis")
    files_after_second = _kpi_files(pipeline)
    # Replaced, not added to: as many files as one run writes, none of the first run's left, one row each.
    assert len(files_after_second) == len(files_after_first)
    assert not set(files_after_second) & set(files_after_first)
    rows = _kpis(pipeline)
    assert len(rows) == len(first_rows) == len(EXPECTED)
    _assert_expected(rows)
    assert rows == first_rows  # identical on a rerun (same records, same order of summation)


# A device whose timestamps are valid ISO 8601 in three spellings: with an offset, with 'Z', and with a
# space and no zone (taken as UTC). By instant: 07:00Z (battery 90), 07:30Z (85), 08:00Z (80).
MIXED = """\
deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude
dev-x,2025-06-01T09:00:00+02:00,20.0,50.0,90.0,40.0,-3.0
dev-x,2025-06-01T08:00:00Z,20.0,50.0,80.0,40.0,-3.0
dev-x,2025-06-01 07:30:00,20.0,50.0,85.0,40.0,-3.0
"""


def _instant(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def test_first_last_and_drain_follow_the_instant_not_the_spelling(tmp_path: Path) -> None:
    """Every spelling the detector accepts as a valid timestamp must order by the instant it names."""
    pipeline = _pipeline(tmp_path, MIXED)
    try:
        run = pipeline.execute(DAY)
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        device = next(r for r in _kpis(pipeline) if r["deviceid"] == "dev-x")
    finally:
        pipeline.close()
    assert device["validreadings"] == 3
    observed = {
        "first": _instant(device["firstreading"]),
        "last": _instant(device["lastreading"]),
        "drain": device["batterydrain"],
    }
    assert observed == {
        "first": datetime(2025, 6, 1, 7, 0, tzinfo=UTC),
        "last": datetime(2025, 6, 1, 8, 0, tzinfo=UTC),
        "drain": pytest.approx(90.0 - 80.0),
    }, (device["firstreading"], device["lastreading"])


def test_named_queries_count_invalid_and_anomalous_independently(pipeline: LocalPipeline) -> None:
    """The operators' queries, run by the Athena stand-in on the same CSV: the hand-computed rows."""
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    anomalous = summary._named(pipeline, "anomalies-of-a-day", [DAY, DAY])
    assert [(r["deviceid"], r["readingtime"][11:16]) for r in anomalous] == [
        ("dev-a", "05:00"), ("dev-a", "12:00"),
        ("dev-b", "11:00"), ("dev-b", "13:00"), ("dev-b", "15:00"),
        ("dev-f", "09:00"),
    ]  # fmt: skip
    invalid = summary._named(pipeline, "invalid-readings", [DAY, DAY])
    assert sorted((r["deviceid"], tuple(r["invalidreasons"])) for r in invalid) == [
        ("dev-a", ("humidity:missing",)),
        ("dev-d", ("timestamp:malformed",)),
        ("dev-e", ("batterylevel:out_of_range",)),
        ("dev-f", ("humidity:out_of_range",)),
    ]
    health = summary._named(pipeline, "device-health", [DAY, DAY])
    assert {r["deviceid"]: (r["readings"], r["anomalous"], r["invalid"]) for r in health} == {
        "dev-a": (4, 2, 1), "dev-b": (4, 3, 0), "dev-c": (2, 0, 0),
        "dev-d": (2, 0, 1), "dev-e": (1, 0, 1), "dev-f": (1, 1, 1),
    }  # fmt: skip
    assert [r["deviceid"] for r in health][:3] == ["dev-b", "dev-a", "dev-f"]  # anomalous, then invalid
