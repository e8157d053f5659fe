"""The same raw day gives the same analysis records whichever format the UNLOAD writes.

One small day (well-formed rows, numbers the raw table parses leniently, malformed numbers, missing
values, non-finite values, a missing device id and timestamp) runs three times, with ``unloadFormat``
PARQUET, JSONL and CSV, each execution named alike. Fields that legitimately differ are ignored:

* ``processedatms``: the invocation's clock;
* ``runid``, ``sourceindex``: name the execution and the row, which belong to a run, not to the
  reading (row order is Athena's choice);
* ``dt``: the Firehose arrival partition, not a field of the record.

Everything else must match: ``recordid`` (the reading's id, documented as the same in every format),
``metrics``, ``anomalies``, ``healthstatus``, ``invalidreasons``, device, timestamp and dates.

The raw table parses numbers itself (LazySimpleSerDe): an unparseable number is NULL before the UNLOAD,
so the detector sees a null (PARQUET, JSONL) or whatever the CSV UNLOAD writes for NULL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.detector.values import parse_timestamp
from tools.localrun import ground_truth
from tools.localrun import stack as stack_mod
from tools.localrun.run import LocalPipeline

DAY = "2025-06-01"
FORMATS = ("PARQUET", "JSONL", "CSV")
IGNORED = frozenset({"processedatms", "runid", "sourceindex", "dt"})
HEADER = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude"

# (kind, raw CSV line). Timestamps are unique, so a record is found again by its timestamp (or, for the
# row without one, by its device id).
ROWS = (
    ("valid", "dev-a,2025-06-01T00:00:00Z,20.5,50.0,90.0,40.0,-3.0"),
    ("valid", "dev-a,2025-06-01T01:00:00Z,36.0,96.5,19.5,40.0,-3.0"),  # three anomalies
    ("valid", "dev-b,2025-06-01T02:00:00Z,1e1, 45 ,+80,-90,180"),  # exponent, blanks, sign, bounds
    ("valid", "dev-b,2025-06-01 03:00:00+02:00,-0.0,0,100,0.123456789012,-0.5"),
    ("valid", "dev-c,2025-06-01T04:00:00.123Z,-10.5,4.9,20,12,13"),
    ("null", "dev-c,2025-06-01T05:00:00Z,21.0,abc,90,40,-3"),  # not a number -> NULL in the raw table
    ("null", "dev-c,2025-06-01T06:00:00Z,12..5,1_000,90,40,-3"),
    ("null", "dev-d,2025-06-01T07:00:00Z,21.0,,90,40,-3"),  # empty
    ("null", "dev-d,2025-06-01T08:00:00Z,21.0,50,90"),  # missing trailing fields
    ("null", "\\N,2025-06-01T09:00:00Z,21.0,50,90,40,-3"),  # no device id
    ("null", "dev-no-time,,21.0,50,90,40,-3"),  # no timestamp
    ("out_of_range", "dev-e,2025-06-01T10:00:00Z,21.0,150,90,40,-3"),
    ("out_of_range", "dev-e,2025-06-01T11:00:00Z,-300,50,-1,91,-181"),
    ("malformed_time", "dev-e,not-a-time,21.0,50,90,40,-3"),
    ("non_finite", "dev-f,2025-06-01T12:00:00Z,NaN,50,90,40,-3"),
    ("non_finite", "dev-f,2025-06-01T13:00:00Z,21.0,Infinity,-Infinity,40,-3"),
)


def _key_of_line(line: str) -> str:
    fields = line.split(",")
    parsed = parse_timestamp(fields[1]) if len(fields) > 1 else None
    # the device and the instant, as the record's readingtime (unusable timestamps: the device alone)
    device = fields[0] if fields[0] not in ("", "\\N") else "None"  # a missing device id is null
    return device + ("@" + parsed[1] if parsed is not None else "")


def _key_of_record(record: dict[str, Any]) -> str:
    # A usable timestamp is kept as readingtime only; an unusable one is keyed by the device.
    return str(record["deviceid"]) + ("@" + record["readingtime"] if record["readingtime"] else "")


KIND = {_key_of_line(line): kind for kind, line in ROWS}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """format -> key -> the record (ignored fields removed), from one run per format."""
    root = tmp_path_factory.mktemp("formats")
    csv_file = root / "readings.csv"
    csv_file.write_text("\n".join([HEADER, *(line for _, line in ROWS)]) + "\n")
    assert len(KIND) == len(ROWS), "row keys must be unique"
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for fmt in FORMATS:
        local = stack_mod.rendered("dev", {"unloadFormat": fmt})
        pipeline = LocalPipeline(local, root / fmt, processes=0, verify=True)
        try:
            pipeline.put_raw_file(csv_file, DAY)
            run = pipeline.execute(DAY, name="same-name")
            assert run.status == "SUCCEEDED", (fmt, run.error, run.cause)
            delivered = ground_truth.delivered_records(pipeline, [run.execution_id])
        finally:
            pipeline.close()
        assert len(delivered) == len(ROWS), (fmt, len(delivered))
        by_key = {_key_of_record(r): {k: v for k, v in r.items() if k not in IGNORED} for r in delivered}
        assert by_key.keys() == KIND.keys(), (fmt, sorted(by_key.keys() ^ KIND.keys()))
        out[fmt] = by_key
    return out


def _differences(
    records: dict[str, dict[str, dict[str, Any]]], fmt: str, kinds: set[str]
) -> dict[str, dict[str, Any]]:
    """Per row of the given kinds: the fields where ``fmt`` differs from PARQUET (both values)."""
    keys = [k for k, kind in KIND.items() if kind in kinds]
    assert keys, f"no rows of kinds {kinds}"
    diffs = {}
    for key in keys:
        base, other = records["PARQUET"][key], records[fmt][key]
        assert base.keys() == other.keys()
        fields = {f: (base[f], other[f]) for f in base if _canon(base[f]) != _canon(other[f])}
        if fields:
            diffs[key] = fields
    return diffs


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def test_the_compared_fields_are_the_records(records: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The comparison covers the fields that matter (a guard against comparing nothing)."""
    fields = next(iter(records["PARQUET"].values())).keys()
    assert {"recordid", "metrics", "anomalies", "healthstatus", "invalidreasons", "deviceid"} <= fields
    statuses = {records["PARQUET"][k]["healthstatus"] for k in KIND}
    assert statuses == {"healthy", "anomalies_detected", "invalid"}, statuses


def test_jsonl_gives_the_parquet_records(records: dict[str, dict[str, dict[str, Any]]]) -> None:
    assert _differences(records, "JSONL", set(KIND.values())) == {}


@pytest.mark.parametrize("fmt", FORMATS[1:])
def test_readable_rows_give_the_same_records(records: dict[str, Any], fmt: str) -> None:
    """Well-formed rows, out-of-range values and a malformed timestamp: identical in every format."""
    assert _differences(records, fmt, {"valid", "out_of_range", "malformed_time"}) == {}


def test_missing_values_give_the_same_records_in_csv(records: dict[str, Any]) -> None:
    assert _differences(records, "CSV", {"null"}) == {}


def test_non_finite_values_give_the_same_records_in_csv(records: dict[str, Any]) -> None:
    assert _differences(records, "CSV", {"non_finite"}) == {}


def test_a_difference_is_noticed(records: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Negative control: one changed reason in one format is reported with both values."""
    key = next(k for k, kind in KIND.items() if kind == "out_of_range")
    changed = {fmt: dict(rows) for fmt, rows in records.items()}
    changed["JSONL"][key] = dict(changed["JSONL"][key], invalidreasons=["humidity:missing"])
    diffs = _differences(changed, "JSONL", {"out_of_range"})
    assert set(diffs) == {key}
    assert set(diffs[key]) == {"invalidreasons"}
