"""Bad input of every kind becomes an invalid record with reasons, never an exception or a lost row."""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from datetime import UTC, datetime

import pytest
import xxhash

from functions.detector import schema
from functions.detector.analysis import Analyzer, batch_context
from functions.detector.config import DetectorConfig, InputFormat
from functions.detector.handler import analyse_event
from functions.detector.values import parse_timestamp

from .helpers import EXECUTION_NAME, RUN_DATE, assert_schema_keys, event, item, row

NOW = datetime(2024, 6, 2, 1, 2, 3, 456000, tzinfo=UTC)
PARQUET = DetectorConfig()
CSV = DetectorConfig(input_format=InputFormat.CSV)


def records(items: list, config: DetectorConfig = PARQUET, **kw) -> list[dict]:
    result = analyse_event(event(items, **kw), config=config, now=NOW)
    assert result.rows_in == len(items) == result.valid + result.invalid
    return [json.loads(line) for line in result.lines]


def one(reading, config: DetectorConfig = PARQUET) -> dict:
    (record,) = records([item(reading)], config)
    return record


@pytest.mark.parametrize(
    ("overrides", "reason", "anomaly"),
    [
        ({"temperature": None}, "temperature:missing", None),
        ({"humidity": "45"}, "humidity:not_a_number", None),
        ({"batterylevel": True}, "batterylevel:not_a_number", None),
        ({"latitude": [1]}, "latitude:not_a_number", None),
        ({"longitude": {"v": 1}}, "longitude:not_a_number", None),
        ({"temperature": math.nan}, "temperature:not_finite", None),
        ({"temperature": math.inf}, "temperature:not_finite", None),
        ({"humidity": -math.inf}, "humidity:not_finite", None),
        ({"temperature": 10**400}, "temperature:not_finite", None),
        ({"temperature": -300.0}, "temperature:out_of_range", (schema.TEMPERATURE_SPIKE, -300.0, "<-10°C")),
        ({"humidity": 100.01}, "humidity:out_of_range", (schema.HUMIDITY_ANOMALY, 100.01, ">95%")),
        ({"humidity": -0.01}, "humidity:out_of_range", (schema.HUMIDITY_ANOMALY, -0.01, "<5%")),
        ({"batterylevel": 101}, "batterylevel:out_of_range", None),
        ({"batterylevel": -1}, "batterylevel:out_of_range", (schema.LOW_BATTERY, -1.0, "<20%")),
        ({"latitude": 90.5}, "latitude:out_of_range", None),
        ({"latitude": -91}, "latitude:out_of_range", None),
        ({"longitude": 180.01}, "longitude:out_of_range", None),
        ({"longitude": -181}, "longitude:out_of_range", None),
        ({"deviceid": None}, "deviceid:missing", None),
        ({"deviceid": "   "}, "deviceid:missing", None),
        ({"deviceid": 3.5}, "deviceid:not_a_string", None),
        ({"deviceid": False}, "deviceid:not_a_string", None),
        ({"timestamp": None}, "timestamp:missing", None),
        ({"timestamp": ""}, "timestamp:missing", None),
        ({"timestamp": "yesterday"}, "timestamp:malformed", None),
        ({"timestamp": "2024-06-01"}, "timestamp:malformed", None),
        ({"timestamp": "2024-13-01 00:00:00"}, "timestamp:malformed", None),
        ({"timestamp": "2024-W22-6T10:00"}, "timestamp:malformed", None),
        ({"timestamp": 1717246800}, "timestamp:not_a_string", None),
    ],
)
def test_each_kind_of_bad_value_is_invalid_with_its_reason(
    overrides: dict, reason: str, anomaly: tuple[str, float, str] | None
) -> None:
    # The reason is reported whatever the rules say; an impossible but finite value is still judged by
    # its rule, and an anomaly wins the one-word verdict.
    record = one(row(**overrides))
    assert record["invalidreasons"] == [reason]
    if anomaly is None:
        assert record["healthstatus"] == schema.INVALID
        assert record["anomalies"] == []
    else:
        kind, value, threshold = anomaly
        assert record["healthstatus"] == schema.ANOMALIES_DETECTED
        assert record["anomalies"] == [{"type": kind, "value": value, "threshold": threshold}]


def test_missing_fields_are_each_named() -> None:
    record = one({"deviceid": "d"})
    assert record["invalidreasons"] == [
        "timestamp:missing", "temperature:missing", "humidity:missing", "batterylevel:missing",
        "latitude:missing", "longitude:missing",
    ]  # fmt: skip
    assert record["metrics"] == dict.fromkeys(
        ("temperature", "humidity", "batterylevel", "latitude", "longitude")
    )


def test_invalid_rows_are_judged_by_every_rule_and_keep_finite_values() -> None:
    # Humidity is impossible, temperature a spike: both anomalies, beside the data-quality reason.
    record = one(row(humidity=150.0, temperature=50.0))
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED
    assert record["invalidreasons"] == ["humidity:out_of_range"]
    assert record["anomalies"] == [
        {"type": schema.TEMPERATURE_SPIKE, "value": 50.0, "threshold": ">35°C"},
        {"type": schema.HUMIDITY_ANOMALY, "value": 150.0, "threshold": ">95%"},
    ]
    assert record["metrics"]["humidity"] == 150.0  # kept for diagnosis: a finite number, impossible
    assert record["metrics"]["temperature"] == 50.0
    nan = one(row(temperature=math.nan))
    assert nan["metrics"]["temperature"] is None  # not finite: null (JSON has no NaN)
    assert (nan["healthstatus"], nan["anomalies"]) == (schema.INVALID, [])


def test_humidity_150_is_an_anomaly_and_out_of_range() -> None:
    record = one(row(humidity=150))
    assert record["anomalies"] == [{"type": schema.HUMIDITY_ANOMALY, "value": 150.0, "threshold": ">95%"}]
    assert record["invalidreasons"] == ["humidity:out_of_range"]
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED


def test_battery_minus_5_is_low_battery_and_out_of_range() -> None:
    record = one(row(batterylevel=-5.0))
    assert record["anomalies"] == [{"type": schema.LOW_BATTERY, "value": -5.0, "threshold": "<20%"}]
    assert record["invalidreasons"] == ["batterylevel:out_of_range"]
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED


@pytest.mark.parametrize(
    ("temperature", "problem", "config"),
    [
        (math.inf, "not_finite", PARQUET),
        (-math.inf, "not_finite", PARQUET),
        (math.nan, "not_finite", PARQUET),
        ("Infinity", "not_finite", CSV),
        (None, "missing", PARQUET),
        ("hot", "not_a_number", PARQUET),
        ("hot", "not_a_number", CSV),
        ("", "missing", CSV),
        ("\\N", "missing", CSV),
    ],
)
def test_an_unusable_value_breaks_no_rule_but_the_others_are_still_judged(
    temperature, problem: str, config: DetectorConfig
) -> None:
    reading = row(temperature=temperature, batterylevel=10.0)
    if config is CSV:
        reading = {key: value if type(value) is str else repr(value) for key, value in reading.items()}
    record = one(reading, config)
    assert record["invalidreasons"] == [f"temperature:{problem}"]
    assert record["anomalies"] == [{"type": schema.LOW_BATTERY, "value": 10.0, "threshold": "<20%"}]
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED
    assert record["metrics"]["temperature"] is None


def test_invalid_and_anomalous_are_counted_independently() -> None:
    result = analyse_event(
        event([
            item(row()),  # healthy
            item(row(temperature=40.0)),  # anomalous, valid
            item(row(humidity=150.0)),  # anomalous and invalid
            item(row(temperature=math.inf, batterylevel=10.0)),  # anomalous and invalid
            item(row(latitude=95.0)),  # invalid only
        ]),
        config=PARQUET,
        now=NOW,
    )  # fmt: skip
    assert (result.rows_in, result.valid, result.invalid, result.anomalous_rows) == (5, 2, 3, 3)
    assert result.anomalies == {
        schema.TEMPERATURE_SPIKE: 1,
        schema.HUMIDITY_ANOMALY: 1,
        schema.LOW_BATTERY: 1,
    }
    assert result.invalid_reasons == {
        "humidity:out_of_range": 1, "temperature:not_finite": 1, "latitude:out_of_range": 1,
    }  # fmt: skip


@pytest.mark.parametrize("bad", [None, 42, "a string", [1, 2], True, 3.5])
def test_non_object_items_and_rows_are_invalid_not_dropped(bad) -> None:
    # A bare non-object, a map item whose row was not an object (the ItemSelector sends its JSON text),
    # and a positional row of the wrong length (a JSONata path flattens an array-valued column).
    for shape in (bad, item(bad, index=9), {"r": [1, 2, 3], "i": 9}):
        (record,) = records([shape])
        assert record["invalidreasons"] == ["row:not_an_object"]
        assert record["healthstatus"] == schema.INVALID
        assert record["analysisdate"] == RUN_DATE
        assert_schema_keys(record)
    (indexed,) = records([item(bad, index=9)])
    assert indexed["sourceindex"] == 9
    # Distinct bad rows keep distinct ids.
    assert records([item(bad)])[0]["recordid"] != records([item([bad, 1])])[0]["recordid"]


def test_an_empty_batch_and_odd_event_shapes() -> None:
    assert analyse_event({"Items": [], "BatchInput": {}}, config=PARQUET).lines == []
    assert analyse_event({"Items": None}, config=PARQUET).lines == []
    assert analyse_event(None, config=PARQUET).lines == []
    bare = analyse_event(row(), config=PARQUET, now=NOW)
    assert bare.valid == 1
    bare_record = json.loads(bare.lines[0])
    assert (bare_record["sourceindex"], bare_record["runid"]) == (None, None)
    listed = analyse_event([item(row()), item(row(temperature=99.0))], config=PARQUET)
    assert (listed.valid, listed.anomalous_rows) == (2, 1)
    single = analyse_event({"Items": "garbage"}, config=PARQUET)
    assert (single.rows_in, single.invalid) == (1, 1)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2024-06-01 13:00:00", "2024-06-01"),
        ("2024-06-01T13:00:00", "2024-06-01"),
        ("2024-06-01T13:00:00.123456789", "2024-06-01"),
        ("2024-06-01 13:00:00.5Z", "2024-06-01"),
        ("2024-06-01t13:00:00z", "2024-06-01"),
        (" 2024-06-01 13:00 ", "2024-06-01"),
        ("2024-06-01T00:30:00+02:00", "2024-05-31"),  # the UTC date, not the local one
        ("2024-06-01T23:30:00-05:00", "2024-06-02"),
    ],
)
def test_iso_timestamps_are_accepted_and_dated_in_utc(text: str, day: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert parsed[0] == day
    assert one(row(timestamp=text))["analysisdate"] == day


def test_the_same_instant_in_any_notation_has_the_same_id() -> None:
    ids = {
        one(row(timestamp=t))["recordid"]
        for t in (
            "2024-06-01 13:00:00",
            "2024-06-01T13:00:00Z",
            "2024-06-01T15:00:00+02:00",
            "2024-06-01T13:00:00.000",
        )
    }
    assert len(ids) == 1


def test_an_invalid_timestamp_is_dated_by_the_run() -> None:
    assert one(row(timestamp="garbage"))["analysisdate"] == RUN_DATE
    (no_run,) = records([item(row(timestamp="garbage"))], run_date=None)
    assert no_run["analysisdate"] == "2024-06-02"  # no run date either: the processing date (UTC)


def test_batch_input_is_null_safe() -> None:
    context, warnings = batch_context({"runDate": "01/06/2024", "executionName": 5}, now=NOW)
    assert (context.rundate, context.runid) == (None, None)
    assert len(warnings) == 2
    context, warnings = batch_context(None, now=NOW)
    assert (context.rundate, context.runid, warnings) == (None, None, [])
    assert context.processedat == int(NOW.timestamp() * 1000) == 1_717_290_123_456
    # An execution ARN is reduced to the execution's name.
    arn = "arn:aws:states:eu-west-1:222222222222:execution:sensorflow-dev-pipeline:" + EXECUTION_NAME
    assert batch_context({"executionName": arn}, now=NOW)[0].runid == EXECUTION_NAME


def test_csv_strings_are_parsed_and_give_the_same_record_as_parquet() -> None:
    parquet = one(row(temperature=21.5, humidity=45, batterylevel=87.0))
    csv = one(
        {k: str(v) for k, v in row(temperature="21.5", humidity="45", batterylevel="87.0").items()}, CSV
    )
    assert csv == parquet  # same id, same values, same everything
    assert csv["metrics"]["humidity"] == 45.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "temperature:missing"), ("  ", "temperature:missing"), ("warm", "temperature:not_a_number"),
     ("1_000", "temperature:not_a_number"), ("NaN", "temperature:not_finite"), ("-inf", "temperature:not_finite"),
     ("0x10", "temperature:not_a_number")],
)  # fmt: skip
def test_csv_non_numeric_strings_are_still_invalid(value: str, reason: str) -> None:
    assert one(row(temperature=value), CSV)["invalidreasons"] == [reason]


def test_csv_accepts_blanks_and_exponents_like_a_csv_reader() -> None:
    record = one(row(temperature=" 2.15e1 ", humidity="45"), CSV)
    assert record["healthstatus"] == schema.HEALTHY
    assert record["metrics"]["temperature"] == 21.5


def test_in_parquet_and_jsonl_a_numeric_string_is_invalid() -> None:
    for config in (PARQUET, DetectorConfig(input_format=InputFormat.JSONL)):
        assert one(row(temperature="21.5"), config)["invalidreasons"] == ["temperature:not_a_number"]


def test_record_ids_are_deterministic_and_content_based() -> None:
    a = records([item(row(), index=1)])[0]["recordid"]
    b = records([item(row(), index=7)])[0]["recordid"]
    assert a == b  # same reading, same id, wherever it came from
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", a)  # 96 bits, URL-safe base64
    assert records([item(row(temperature=21.500001))])[0]["recordid"] != a
    assert records([item(row(deviceid="sensor-0002"))])[0]["recordid"] != a
    assert records([item(row(timestamp="2024-06-01 13:00:01"))])[0]["recordid"] != a
    bad_ids = {one(row(temperature=v))["recordid"] for v in ("x", "y", None, True)}
    assert len(bad_ids) == 4  # distinct bad readings keep distinct ids


def test_a_record_id_is_the_documented_hash_of_the_reading() -> None:
    # docs/detector.md: prefix, device id, the instant's fixed-width UTC text, the five doubles; the first
    # 96 bits of XXH3-128 (canonical, big-endian bytes) in URL-safe base64. Built here from the
    # definition, not from the detector's helpers, and pinned as text: a change of any part changes it.
    content = "\x1f".join(
        ("sensorflow.reading.v3", "sensor-0001", "T2024-06-01T13:00:00.000000Z")
    ).encode() + struct.pack("<5d", 21.5, 45.0, 87.0, 47.3769, 8.5417)
    expected = base64.urlsafe_b64encode(xxhash.xxh3_128_digest(content)[:12]).decode()
    assert one(row())["recordid"] == expected == "ln0iq9bMk9AhiDT1"


def test_every_record_keeps_its_item_index_and_no_file() -> None:
    (valid,) = records([item(row(), index=12)])
    assert valid["sourceindex"] == 12  # (runid, sourceindex) names the row
    (invalid,) = records([item(row(latitude=95.0), index=13)])
    assert invalid["sourceindex"] == 13
    # An item from a definition that still sent its UNLOAD file: the key is ignored, never delivered.
    (legacy,) = records([{**item(row(latitude=95.0), index=14), "s": "20240602_x_f1"}])
    assert "sourcefile" not in legacy
    assert legacy["sourceindex"] == 14
    (odd,) = records([item(row(latitude=95.0), index="12")])
    assert (odd["sourceindex"], odd["healthstatus"]) == (None, schema.INVALID)


def test_run_fields_and_processing_time() -> None:
    record = one(row())
    assert record["runid"] == EXECUTION_NAME
    assert record["processedatms"] == 1_717_290_123_456  # UTC milliseconds since the epoch
    assert (record["readingtime"], record.get("readingtimestamp")) == ("2024-06-01T13:00:00.000000Z", None)
    assert "readingtimestamp" not in record
    bad = one(row(timestamp="13h, 1 June"))
    assert (bad["readingtime"], bad["readingtimestamp"]) == (None, "13h, 1 June")  # kept as it arrived


def test_an_enormous_text_field_is_cut_not_lost() -> None:
    huge = "x" * 1_100_000
    (record,) = records([item(row(deviceid=huge))])
    assert record["healthstatus"] == schema.INVALID
    assert record["invalidreasons"] == ["row:too_large"]
    assert record["deviceid"] == "x" * 256
    assert record["metrics"]["temperature"] == 21.5
    assert record["anomalies"] == []


def test_an_oversized_record_keeps_its_anomalies() -> None:
    huge = "x" * 1_100_000
    (record,) = records([item(row(deviceid=huge, temperature=40.0, batterylevel=-5.0))])
    assert record["invalidreasons"] == ["batterylevel:out_of_range", "row:too_large"]
    assert record["anomalies"] == [
        {"type": schema.TEMPERATURE_SPIKE, "value": 40.0, "threshold": ">35°C"},
        {"type": schema.LOW_BATTERY, "value": -5.0, "threshold": "<20%"},
    ]
    assert record["healthstatus"] == schema.ANOMALIES_DETECTED
    assert record["deviceid"] == "x" * 256


def test_unicode_survives_and_a_lone_surrogate_becomes_valid_utf8() -> None:
    analyzer = Analyzer(PARQUET, batch_context(None, now=NOW)[0])
    for name in ("capteur-été", "传感器"):
        record = json.loads(analyzer.line(item(row(deviceid=name))).decode("utf-8"))
        assert (record["deviceid"], record["healthstatus"], record["invalidreasons"]) == (name, "healthy", [])
    # JSON can carry a lone surrogate; UTF-8 cannot: it is replaced, and the id still tells it apart.
    broken = analyzer.line(item(row(deviceid="\ud800broken")))
    assert json.loads(broken.decode("utf-8"))["deviceid"] == "\ufffdbroken"
    replaced = analyzer.line(item(row(deviceid="\ufffdbroken")))
    assert json.loads(broken)["recordid"] != json.loads(replaced)["recordid"]


def test_every_notation_of_an_instant_gives_one_sortable_utc_time() -> None:
    times = {
        one(row(timestamp=t))["readingtime"]
        for t in (
            "2024-06-01 13:00:00",
            "2024-06-01T13:00:00Z",
            "2024-06-01T15:00:00+02:00",
            " 2024-06-01t13:00:00z",
        )
    }
    assert times == {"2024-06-01T13:00:00.000000Z"}
    earlier, later = (
        one(row(timestamp="2024-06-01T14:30:00+02:00")),
        one(row(timestamp="2024-06-01 13:00:00.5")),
    )
    assert earlier["readingtime"] < later["readingtime"]  # text order is time order, unlike the raw texts
    assert one(row(timestamp="garbage"))["readingtime"] is None


@pytest.mark.parametrize("field", ["deviceid", "timestamp", "temperature", "latitude"])
def test_csv_null_marker_is_a_missing_value_as_in_the_other_formats(field: str) -> None:
    csv = one({k: str(v) for k, v in row(**{field: "\\N"}).items()}, CSV)
    parquet = one(row(**{field: None}))
    assert csv["invalidreasons"] == [f"{field}:missing"]
    assert csv == parquet


@pytest.mark.parametrize(("text", "number"), [("NaN", math.nan), ("inf", math.inf), ("-Infinity", -math.inf)])
def test_a_non_finite_value_has_one_id_in_every_format(text: str, number: float) -> None:
    csv = one({k: str(v) for k, v in row(humidity=text).items()}, CSV)
    parquet = one(row(humidity=number))
    assert csv["invalidreasons"] == parquet["invalidreasons"] == ["humidity:not_finite"]
    assert csv["recordid"] == parquet["recordid"]
