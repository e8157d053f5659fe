"""The three anomaly rules at and around every boundary, threshold texts, and overrides from env."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.detector import schema
from functions.detector.analysis import Analyzer, batch_context
from functions.detector.config import ConfigError, DetectorConfig, Thresholds
from functions.detector.values import PHYSICAL_RANGES, format_number

from .helpers import item, row

NOW = datetime(2024, 6, 2, 1, 2, 3, 456000, tzinfo=UTC)


def analyse(reading: dict, config: DetectorConfig | None = None) -> dict:
    context, _ = batch_context({"runDate": "2024-06-01", "executionName": "run-1"}, now=NOW)
    analyzer = Analyzer(config or DetectorConfig(), context)
    return json.loads(analyzer.line(item(reading)))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", 34.99, None),
        ("temperature", 35, None),
        ("temperature", 35.0, None),
        ("temperature", 35.01, (schema.TEMPERATURE_SPIKE, ">35°C")),
        ("temperature", -9.99, None),
        ("temperature", -10, None),
        ("temperature", -10.01, (schema.TEMPERATURE_SPIKE, "<-10°C")),
        ("humidity", 94.99, None),
        ("humidity", 95, None),
        ("humidity", 95.01, (schema.HUMIDITY_ANOMALY, ">95%")),
        ("humidity", 5.01, None),
        ("humidity", 5, None),
        ("humidity", 4.99, (schema.HUMIDITY_ANOMALY, "<5%")),
        ("batterylevel", 20.01, None),
        ("batterylevel", 20, None),
        ("batterylevel", 19.99, (schema.LOW_BATTERY, "<20%")),
        ("batterylevel", 0, (schema.LOW_BATTERY, "<20%")),
    ],
)
def test_each_rule_is_a_strict_inequality(field: str, value: float, expected: tuple[str, str] | None) -> None:
    record = analyse(row(**{field: value}))
    if expected is None:
        assert record["anomalies"] == []
        assert record["healthstatus"] == schema.HEALTHY
        assert len(record["anomalies"]) == 0
    else:
        kind, threshold = expected
        assert record["anomalies"] == [{"type": kind, "value": float(value), "threshold": threshold}]
        assert record["healthstatus"] == schema.ANOMALIES_DETECTED
        assert len(record["anomalies"]) == 1


def test_a_reading_can_break_all_three_rules_in_the_sample_order() -> None:
    record = analyse(row(temperature=50.0, humidity=99.5, batterylevel=3.0))
    assert [a["type"] for a in record["anomalies"]] == list(schema.ANOMALY_TYPES)
    assert len(record["anomalies"]) == 3


def _around(low: float, high: float) -> st.SearchStrategy:
    """Finite values of a field, possible or just not: its ends, just past them, and between."""
    edges = [low, high, low - 0.5, high + 0.5, math.nextafter(low, -math.inf), math.nextafter(high, math.inf)]
    return st.one_of(
        st.sampled_from(edges), st.floats(low - 2, high + 2), st.integers(int(low) - 2, int(high) + 2)
    )


_VALUES = st.tuples(_around(-280, 60), _around(0, 100), _around(0, 100), _around(-90, 90), _around(-180, 180))
_THRESHOLD = st.one_of(
    st.floats(min_value=-300, max_value=300), st.sampled_from([-10.0, 5.0, 20.0, 35.0, 95.0])
)
# (high, low) of one field, never crossed (the configuration refuses that), ordered by construction: an
# assume() on two independent draws threw away three inputs in four, and failed Hypothesis's health check.
_HIGH_LOW = st.tuples(_THRESHOLD, _THRESHOLD).filter(lambda p: p[0] != p[1]).map(lambda p: (max(p), min(p)))


@settings(max_examples=400, deadline=None)
@given(
    values=_VALUES,
    limits=st.tuples(_HIGH_LOW, _HIGH_LOW, _THRESHOLD).map(lambda p: (*p[0], *p[1], p[2])),
)
def test_verdicts_follow_the_rules_and_ranges_for_any_thresholds(values, limits) -> None:
    """The usual reading is checked at once against the band where it is possible and breaks no rule;
    for any thresholds (inside the physical ranges or not) and any finite values, the record says what
    the strict rules and the physical ranges say, one by one."""
    t_high, t_low, h_high, h_low, b_low = limits
    thresholds = Thresholds(
        temperature_high=t_high,
        temperature_low=t_low,
        humidity_high=h_high,
        humidity_low=h_low,
        battery_low=b_low,
    )
    names = ("temperature", "humidity", "batterylevel", "latitude", "longitude")
    record = analyse(row(**dict(zip(names, values, strict=True))), DetectorConfig(thresholds=thresholds))
    t, h, b = (float(v) for v in values[:3])
    expected = [
        kind
        for kind, broken in (
            (schema.TEMPERATURE_SPIKE, t > t_high),
            (schema.TEMPERATURE_SPIKE, t < t_low),
            (schema.HUMIDITY_ANOMALY, h > h_high),
            (schema.HUMIDITY_ANOMALY, h < h_low),
            (schema.LOW_BATTERY, b < b_low),
        )
        if broken
    ]
    assert [a["type"] for a in record["anomalies"]] == expected
    impossible = [
        f"{name}:out_of_range"
        for name, value in zip(names, values, strict=True)
        if not PHYSICAL_RANGES[name][0] <= value <= PHYSICAL_RANGES[name][1]
    ]
    assert record["invalidreasons"] == impossible
    assert record["metrics"] == dict(zip(names, map(float, values), strict=True))


@pytest.mark.parametrize(
    ("value", "text"), [(35, "35"), (35.0, "35"), (35.5, "35.5"), (-10, "-10"), (0.25, "0.25")]
)
def test_thresholds_are_written_compactly(value: float, text: str) -> None:
    assert format_number(value) == text


def test_thresholds_come_from_the_environment() -> None:
    config = DetectorConfig.from_env(
        {"TEMPERATURE_HIGH": "30", "TEMPERATURE_LOW": "-5.5", "HUMIDITY_HIGH": "90", "HUMIDITY_LOW": "10",
         "BATTERY_LOW": "25"}
    )  # fmt: skip
    assert config.thresholds == Thresholds(
        temperature_high=30, temperature_low=-5.5, humidity_high=90, humidity_low=10, battery_low=25
    )
    hot = analyse(row(temperature=30.5, batterylevel=24.0), config)
    assert hot["anomalies"] == [
        {"type": schema.TEMPERATURE_SPIKE, "value": 30.5, "threshold": ">30°C"},
        {"type": schema.LOW_BATTERY, "value": 24.0, "threshold": "<25%"},
    ]
    cold = analyse(row(temperature=-6.0, humidity=9.0), config)
    assert [a["threshold"] for a in cold["anomalies"]] == ["<-5.5°C", "<10%"]
    assert analyse(row(temperature=30.0), config)["anomalies"] == []  # still strict


def test_defaults_match_the_reference_sample() -> None:
    config = DetectorConfig.from_env({})
    assert config.thresholds == Thresholds(
        temperature_high=35, temperature_low=-10, humidity_high=95, humidity_low=5, battery_low=20
    )
    assert config.input_format.value == "PARQUET"
    assert config.max_attempts == 8
    assert config.stream_name is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TEMPERATURE_HIGH": "hot"}, "TEMPERATURE_HIGH='hot'"),
        ({"BATTERY_LOW": "nan"}, "BATTERY_LOW='nan'"),
        ({"HUMIDITY_LOW": "1_0"}, "HUMIDITY_LOW='1_0'"),
        ({"TEMPERATURE_LOW": "40"}, "TEMPERATURE_LOW=40.0 must be below TEMPERATURE_HIGH=35.0"),
        ({"HUMIDITY_HIGH": "5"}, "HUMIDITY_LOW=5.0 must be below HUMIDITY_HIGH=5.0"),
        ({"INPUT_FORMAT": "ORC"}, "INPUT_FORMAT='ORC': expected one of PARQUET, JSONL, CSV"),
        ({"DELIVERY_MAX_ATTEMPTS": "0"}, "DELIVERY_MAX_ATTEMPTS=0"),
        ({"DELIVERY_MAX_ATTEMPTS": "three"}, "DELIVERY_MAX_ATTEMPTS='three'"),
        ({"DELIVERY_MAX_ATTEMPTS": "21"}, "DELIVERY_MAX_ATTEMPTS=21"),
    ],
)
def test_a_bad_environment_fails_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DetectorConfig.from_env(env)
    assert message in str(caught.value)


def test_input_format_is_case_insensitive() -> None:
    assert DetectorConfig.from_env({"INPUT_FORMAT": "csv"}).input_format.value == "CSV"
    assert DetectorConfig.from_env({"INPUT_FORMAT": "jsonl"}).input_format.value == "JSONL"
