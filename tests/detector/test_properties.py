"""Properties over arbitrary rows and batches: no crash, counts add up, every row delivered once."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.detector import schema
from functions.detector.analysis import Analyzer, batch_context
from functions.detector.config import DetectorConfig, InputFormat
from functions.detector.handler import process_batch

from .helpers import FakeFirehose, assert_schema_keys, counts_add_up, decode

NOW = datetime(2024, 6, 2, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def plausible_number(low: float, high: float) -> st.SearchStrategy:
    """Mostly values near the interesting range, as floats, ints or (for CSV) numeric strings."""
    number = st.floats(min_value=low, max_value=high) | st.integers(min_value=int(low), max_value=int(high))
    return number | number.map(repr) | json_values


timestamps = (
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat(sep=" ")
    )
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.text(max_size=30)
    | json_values
)
rows = st.fixed_dictionaries(
    {},
    optional={
        "deviceid": st.text(max_size=20) | json_values,
        "timestamp": timestamps,
        "temperature": plausible_number(-300, 100),
        "humidity": plausible_number(-10, 110),
        "batterylevel": plausible_number(-10, 110),
        "latitude": plausible_number(-100, 100),
        "longitude": plausible_number(-200, 200),
        "extra": json_values,
    },
)
# Items as the ItemSelector makes them (positional values, or a non-object row's text), odd ones too.
positional = rows.map(lambda r: [r.get(name) for name in schema.ITEM_FIELDS])
items = (
    st.fixed_dictionaries(
        {"r": positional | json_values.map(json.dumps) | json_values},
        optional={
            "s": json_values,  # a key the detector does not read (an older definition's file)
            "i": st.integers(min_value=0) | json_values,
        },
    )
    | rows
    | json_values
)
formats = st.sampled_from(list(InputFormat))


@SETTINGS
@given(item=items, fmt=formats)
def test_any_item_gives_one_record_of_the_schema(item, fmt) -> None:
    analyzer = Analyzer(
        DetectorConfig(input_format=fmt), batch_context({"runDate": "2024-06-01"}, now=NOW)[0]
    )
    record = json.loads(analyzer.line(item))
    assert_schema_keys(record)
    # The analyzer counts the reading as its record reads.
    assert analyzer.invalid_rows == bool(record["invalidreasons"])
    assert analyzer.anomalous_rows == bool(record["anomalies"])
    assert analyzer.anomaly_counts == {
        kind: sum(a["type"] == kind for a in record["anomalies"]) for kind in schema.ANOMALY_TYPES
    }


@SETTINGS
@given(batch=st.lists(items, max_size=25), fmt=formats)
def test_every_row_is_delivered_exactly_once_and_counts_add_up(batch, fmt) -> None:
    firehose = FakeFirehose()
    event = {"Items": batch, "BatchInput": {"runDate": "2024-06-01", "executionName": "run-1"}}
    summary = process_batch(
        event,
        config=DetectorConfig(input_format=fmt, stream_name="s"),
        firehose=firehose,
        sleep=lambda _s: None,
    )
    counts_add_up(summary)
    assert summary["rowsIn"] == len(batch)
    delivered = decode(firehose.accepted)
    assert len(delivered) == len(batch)  # one record per input row, none lost, none doubled
    # In order, row by row: each record is the analysis of the item at that position.
    analyzer = Analyzer(DetectorConfig(input_format=fmt), batch_context(event["BatchInput"], now=NOW)[0])
    for got, source_item in zip(delivered, batch, strict=True):
        expected = analyzer.analyse(source_item).record
        assert got["recordid"] == expected["recordid"]
        assert got["healthstatus"] == expected["healthstatus"]
        assert got["runid"] == "run-1"
    # Counted independently: a reading can be both invalid and anomalous.
    invalid = sum(bool(r["invalidreasons"]) for r in delivered)
    anomalous = sum(len(r["anomalies"]) > 0 for r in delivered)
    assert (summary["invalid"], summary["anomalousRows"]) == (invalid, anomalous)
    for r in delivered:  # the verdict's precedence: anomalies, then invalid reasons, then healthy
        if r["anomalies"]:
            assert r["healthstatus"] == schema.ANOMALIES_DETECTED
        else:
            assert r["healthstatus"] == (schema.INVALID if r["invalidreasons"] else schema.HEALTHY)
    for kind in schema.ANOMALY_TYPES:
        assert summary["anomalies"][kind] == sum(a["type"] == kind for r in delivered for a in r["anomalies"])
    assert summary["firehoseRecords"] == len(firehose.accepted)
    assert summary["firehoseBytes"] == sum(len(d) for d in firehose.accepted)
