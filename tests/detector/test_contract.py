"""The record and the summary match the schema the catalog and the state machine are built from."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.detector import schema
from functions.detector.config import DetectorConfig
from functions.detector.delivery import DeliveryError
from functions.detector.handler import analyse_event, process_batch
from tools.localrun.athena.dialect import parse_hive_type

from .helpers import FakeFirehose, assert_schema_keys, event, item, row


def conforms(value: Any, glue: Any, where: str) -> None:
    """Assert that a JSON value can be read by Athena's JSON SerDe as this Glue type (null allowed)."""
    if value is None:
        return
    if glue == "string":
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
    elif glue in ("int", "bigint"):
        assert isinstance(value, int), f"{where}: {value!r} is not an integer"
        assert not isinstance(value, bool), f"{where}: a boolean is not an integer"
    elif glue == "double":
        assert isinstance(value, float), f"{where}: {value!r} is not a double"
    elif glue[0] == "array":
        assert isinstance(value, list), f"{where}: {value!r} is not an array"
        for i, element in enumerate(value):
            conforms(element, glue[1], f"{where}[{i}]")
    elif glue[0] == "struct":
        assert isinstance(value, dict), f"{where}: {value!r} is not a struct"
        assert list(value) == [name for name, _ in glue[1]], f"{where}: fields {list(value)}"
        for name, inner in glue[1]:
            conforms(value[name], inner, f"{where}.{name}")
    else:  # pragma: no cover
        raise AssertionError(glue)


SAMPLES = [
    item(row()),
    item(row(temperature=40.0, humidity=2.5, batterylevel=10.0)),
    item(row(humidity=150.0, timestamp="nope")),
    item(row(deviceid=None, temperature="x")),
    item(None),
    row(),
    {"r": ["d", "2024-06-01 13:00:00", 21.5, 45.0, 87.0, 47.0, 8.0]},  # an item without file and index
]


@pytest.mark.parametrize(
    "sample", SAMPLES, ids=["healthy", "anomalies", "invalid", "bad-types", "null-row", "bare", "no-source"]
)
def test_a_record_has_exactly_the_schema_keys_in_order_and_glue_types(sample) -> None:
    result = analyse_event(event([sample]), config=DetectorConfig(), now=datetime(2024, 6, 2, tzinfo=UTC))
    (line,) = result.lines
    record = json.loads(line)
    assert_schema_keys(record)
    for name, glue, _comment in schema.ANALYSIS_COLUMNS:
        conforms(record.get(name), parse_hive_type(glue), name)
    # Never-null columns: the id, the verdict, the counts, the date the table is partitioned by.
    for name in ("recordid", "analysisdate", "healthstatus", "processedatms", "metrics", "anomalies"):
        assert record[name] is not None, name
    assert record["healthstatus"] in schema.HEALTH_STATUSES
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["analysisdate"])
    assert record["processedatms"] == 1_717_286_400_000  # UTC milliseconds since the epoch
    # At most one of readingtime (usable) and readingtimestamp (unusable text) holds the timestamp.
    assert record["readingtime"] is None or "readingtimestamp" not in record


def test_the_type_checker_can_fail() -> None:
    with pytest.raises(AssertionError):
        conforms({"temperature": "hot"}, parse_hive_type(schema.METRICS_TYPE), "metrics")
    with pytest.raises(AssertionError):
        conforms(3, parse_hive_type("double"), "x")


def test_the_summary_has_exactly_the_schema_keys_and_stays_small() -> None:
    batch = event([item(row(), index=i) for i in range(2_000)])
    summary = process_batch(
        batch, config=DetectorConfig(stream_name="s"), firehose=FakeFirehose(), sleep=lambda _s: None
    )
    assert tuple(summary) == schema.SUMMARY_KEYS
    assert set(summary["anomalies"]) == set(schema.ANOMALY_TYPES)
    assert all(isinstance(summary[k], int) for k in schema.SUMMARY_KEYS if k != "anomalies")
    assert len(json.dumps(summary)) < 1_024  # far below the 256 KiB a map child may return


def test_the_delivery_error_is_the_name_the_state_machine_retries() -> None:
    assert DeliveryError.__name__ == schema.DELIVERY_ERROR
