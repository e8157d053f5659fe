"""The analysis record: what the detector delivers for every reading, and the Glue table that reads it.

This module is the single source of truth for both sides: the detector builds records with exactly these
keys, and the catalog component builds the analytics table's columns from ``ANALYSIS_COLUMNS``; a test
checks that a record produced by the handler has exactly these keys in this order.

Compatible with the reference sample's record (``deviceid, analysisdate, readingtimestamp, readingscount,
metrics{...}, anomalies[{type, value, threshold}], anomalycount, healthstatus``), plus what operations
need: a deterministic ``recordid`` (same reading, same id, so reruns and at-least-once deliveries are
de-duplicated), the reasons a reading was invalid, its source file and map item index (together they name
one processed row of a run, which reconciliation counts), the run that produced it and the UTC processing
time.

A map item (the ItemSelector's output) is ``{"row": {...}, "source": "s3://...", "index": <int>}``.
"""

from __future__ import annotations

from typing import Final

# Health verdicts of one reading, by precedence: anomalies_detected if any rule broke (even on an invalid
# reading), else invalid if it has invalid reasons, else healthy. Invalid readings are delivered too, never
# dropped; validity itself is ``invalidreasons`` being empty.
HEALTHY: Final = "healthy"
ANOMALIES_DETECTED: Final = "anomalies_detected"
INVALID: Final = "invalid"
HEALTH_STATUSES: Final = (HEALTHY, ANOMALIES_DETECTED, INVALID)

# Anomaly types, as in the reference sample.
TEMPERATURE_SPIKE: Final = "temperature_spike"
HUMIDITY_ANOMALY: Final = "humidity_anomaly"
LOW_BATTERY: Final = "low_battery"
ANOMALY_TYPES: Final = (TEMPERATURE_SPIKE, HUMIDITY_ANOMALY, LOW_BATTERY)

# Fields of a raw reading, as unloaded from the raw table (Athena lower-cases column names).
READING_FIELDS: Final = (
    "deviceid",
    "timestamp",
    "temperature",
    "humidity",
    "batterylevel",
    "latitude",
    "longitude",
)

# The export bounds every text field of a reading so that any row fits one map batch, and names the
# fields it cut, comma-separated, in this extra field (null when nothing was cut); the detector reports
# each as the invalid reason ``<field>:truncated`` (components.queries.unload_day).
TRUNCATED_FIELD: Final = "truncated"

METRICS_TYPE: Final = (
    "struct<temperature:double,humidity:double,batterylevel:double,latitude:double,longitude:double>"
)
ANOMALIES_TYPE: Final = "array<struct<type:string,value:double,threshold:string>>"

# (column, Glue/Hive type, comment) in record key order.
ANALYSIS_COLUMNS: Final = (
    ("recordid", "string", "sha256 of the reading's content: the de-duplication key"),
    ("deviceid", "string", "device that sent the reading"),
    (
        "analysisdate",
        "string",
        "UTC date of the reading (YYYY-MM-DD), or the run date if its timestamp is invalid",
    ),
    ("readingtimestamp", "string", "the reading's timestamp as it arrived"),
    (
        "readingtime",
        "string",
        "the reading's instant in UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ (null if unusable): sorts as time does",
    ),
    ("readingscount", "int", "readings summarised by this record (always 1)"),
    ("metrics", METRICS_TYPE, "the reading's values (null where missing or unusable)"),
    (
        "anomalies",
        ANOMALIES_TYPE,
        "rules the reading broke, with the value and the threshold (every finite value is judged, valid or not)",
    ),
    ("anomalycount", "int", "number of anomalies"),
    (
        "healthstatus",
        "string",
        "anomalies_detected if any anomaly, else invalid if any invalid reason, else healthy",
    ),
    (
        "invalidreasons",
        "array<string>",
        "why the reading is invalid (empty when valid): beside its anomalies",
    ),
    ("sourcefile", "string", "s3:// URI of the UNLOAD file the reading came from"),
    ("sourceindex", "bigint", "the map item's index: with sourcefile, identifies the row within its run"),
    ("rundate", "string", "the run's date (YYYY-MM-DD)"),
    ("runid", "string", "Step Functions execution ARN of the run"),
    ("processedat", "string", "UTC time the detector processed the reading (ISO 8601)"),
)
ANALYSIS_KEYS: Final = tuple(name for name, _type, _comment in ANALYSIS_COLUMNS)

# CloudWatch embedded metrics the detector emits once per invocation (never per row), under one namespace
# with the single dimension ``service`` = the function's name, so each stage's alarms see only its own.
METRICS_NAMESPACE: Final = "Sensorflow/Detector"
METRIC_DIMENSION: Final = "service"
METRIC_ROWS: Final = "Rows"
METRIC_VALID_ROWS: Final = "ValidRows"
METRIC_INVALID_ROWS: Final = "InvalidRows"
METRIC_ANOMALIES: Final = {  # anomaly type -> metric name
    TEMPERATURE_SPIKE: "TemperatureSpikes",
    HUMIDITY_ANOMALY: "HumidityAnomalies",
    LOW_BATTERY: "LowBatteryReadings",
}
METRIC_DELIVERY_RETRIES: Final = "DeliveryRetries"
METRIC_DELIVERY_FAILURES: Final = "DeliveryFailures"

# The summary the handler returns (and the map's children report): these keys, all integers except
# ``anomalies`` (anomaly type -> count). rowsIn == valid + invalid, always; anomalousRows counts readings
# with at least one anomaly, valid or invalid (the two are counted independently).
SUMMARY_KEYS: Final = (
    "rowsIn", "valid", "invalid", "anomalousRows", "anomalies",
    "firehoseRecords", "firehoseBytes", "putRecordBatchCalls", "retries",
)  # fmt: skip

# Environment variables the detector reads (the Pulumi component sets every one of them).
ENV_STREAM: Final = "DELIVERY_STREAM_NAME"
ENV_MAX_ATTEMPTS: Final = "DELIVERY_MAX_ATTEMPTS"
ENV_INPUT_FORMAT: Final = "INPUT_FORMAT"  # PARQUET | JSONL | CSV (in CSV every value arrives as a string)
ENV_THRESHOLDS: Final = (
    "TEMPERATURE_HIGH",
    "TEMPERATURE_LOW",
    "HUMIDITY_HIGH",
    "HUMIDITY_LOW",
    "BATTERY_LOW",
)

# The Lambda errorType the detector raises when Firehose keeps refusing records within the retry budget
# (the class name of ``delivery.DeliveryError``); the state machine's Retry matches this name.
DELIVERY_ERROR: Final = "DeliveryError"
