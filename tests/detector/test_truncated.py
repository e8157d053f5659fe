"""Texts the export cut to fit a map batch: the record keeps the cut value and says so in its reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from functions.detector import schema
from functions.detector.analysis import Analyzer, batch_context
from functions.detector.config import DetectorConfig, InputFormat

from .helpers import event, item, row

NOW = datetime(2024, 6, 2, 1, 2, 3, tzinfo=UTC)
CUT = schema.TRUNCATED_FIELD


def analyzer(fmt: InputFormat = InputFormat.PARQUET) -> Analyzer:
    return Analyzer(DetectorConfig(input_format=fmt), batch_context(event([])["BatchInput"], now=NOW)[0])


def analysed(reading: dict, fmt: InputFormat = InputFormat.PARQUET) -> dict:
    """The record, after checking the line the detector sends is that record, counted once each time."""
    a = analyzer(fmt)
    record = a.analyse(item(reading)).record
    assert json.loads(a.line(item(reading))) == record
    assert a.invalid_rows == 2 * bool(record["invalidreasons"])
    return record


@pytest.mark.parametrize(
    ("cut", "reasons"),
    [
        ("deviceid", ["deviceid:truncated"]),
        ("timestamp", ["timestamp:truncated"]),
        ("deviceid,timestamp", ["deviceid:truncated", "timestamp:truncated"]),
    ],
)
def test_each_cut_text_is_an_invalid_reason(cut: str, reasons: list[str]) -> None:
    reading = row(deviceid="d" * 128, **{CUT: cut})
    record = analysed(reading)
    assert record["invalidreasons"] == reasons
    assert record["deviceid"] == "d" * 128  # the cut id is still the reading's device id
    assert record["healthstatus"] == schema.INVALID
    assert record["metrics"]["temperature"] == reading["temperature"]  # the values are still judged


def test_a_cut_reading_keeps_its_anomalies() -> None:
    record = analysed(row(batterylevel=5.0, **{CUT: "deviceid"}))
    assert record["invalidreasons"] == ["deviceid:truncated"]
    assert [a["type"] for a in record["anomalies"]] == [schema.LOW_BATTERY]
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED


@pytest.mark.parametrize(
    ("fmt", "nothing_cut"),
    [(InputFormat.PARQUET, None), (InputFormat.CSV, "\\N")],
)
def test_nothing_cut_is_no_reason(fmt: InputFormat, nothing_cut: str | None) -> None:
    reading = row(**{CUT: nothing_cut})
    if fmt is InputFormat.CSV:
        reading = {k: v if isinstance(v, str) or v is None else repr(v) for k, v in reading.items()}
    assert analysed(reading, fmt)["invalidreasons"] == []
    assert analysed(row(), fmt)["invalidreasons"] == []  # a row without the field at all


def test_the_same_reading_cut_or_not_gets_the_same_id() -> None:
    # the id is the reading's content; the reason is a finding about it, like any other reason
    assert analysed(row(**{CUT: "deviceid"}))["recordid"] == analysed(row())["recordid"]
