"""The analysis record: what the detector delivers for every reading, and the Glue table that reads it.

This module is the single source of truth for both sides: the detector builds records with exactly these
keys, and the catalog component builds the analytics table's columns from ``ANALYSIS_COLUMNS``; a test
checks that a record produced by the handler has exactly these keys in this order.

Close to the reference sample's record (``deviceid, analysisdate, readingtimestamp, metrics{...},
anomalies[{type, value, threshold}], healthstatus``; its ``readingscount`` (always 1) and ``anomalycount``
(``cardinality(anomalies)``) are not sent), plus what operations need: a deterministic ``recordid`` (same
reading, same id, so reruns and at-least-once deliveries are de-duplicated), the reasons a reading was
invalid, the map item index and the run's execution name (together they name one processed row of a run,
which reconciliation counts) and the UTC processing time. Every
byte is sent once per reading through Firehose, whose per-stream bytes quota bounds the pipeline: a
field is here only if a query needs it and cannot derive it (docs/detector.md, "The record, field by
field").

A map item (the ItemSelector's output) is positional, ``{"r": [<ITEM_FIELDS values>], "i": <index>}``:
the row's values in ``ITEM_FIELDS`` order (null where absent) and the item's index in the map run.
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
# each as the invalid reason ``<field>:truncated`` (spec.queries.unload_day).
TRUNCATED_FIELD: Final = "truncated"
# The map item (spec.definition builds the ItemSelector from these names).
ITEM_FIELDS: Final = (*READING_FIELDS, TRUNCATED_FIELD)  # the order of the row's values in the item's "r"
ITEM_ROW: Final = "r"
ITEM_INDEX: Final = "i"
ITEM_KEYS: Final = (ITEM_ROW, ITEM_INDEX)
# The BatchInput key holding the run's execution name (the record's runid).
BATCH_RUN: Final = "executionName"

METRICS_TYPE: Final = (
    "struct<temperature:double,humidity:double,batterylevel:double,latitude:double,longitude:double>"
)
ANOMALIES_TYPE: Final = "array<struct<type:string,value:double,threshold:string>>"

# (column, Glue/Hive type, comment) in record key order.
ANALYSIS_COLUMNS: Final = (
    (
        "recordid",
        "string",
        "96 bits of the XXH3-128 of the reading's content, base64url: the de-duplication key",
    ),
    ("deviceid", "string", "device that sent the reading"),
    (
        "analysisdate",
        "string",
        "UTC date of the reading (YYYY-MM-DD), or the run date if its timestamp is unusable",
    ),
    (
        "readingtime",
        "string",
        "the reading's instant in UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ (null if unusable): sorts as time does",
    ),
    (
        "readingtimestamp",
        "string",
        "the timestamp as it arrived, only when it is unusable (absent, so null, when readingtime holds it)",
    ),
    ("metrics", METRICS_TYPE, "the reading's values (null where missing or unusable)"),
    (
        "anomalies",
        ANOMALIES_TYPE,
        "rules the reading broke, with the value and the threshold (every finite value is judged, valid or not)",
    ),
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
    ("sourceindex", "bigint", "the map item's index, unique within the run: with runid, names the row"),
    ("runid", "string", "Step Functions execution name of the run (unique per state machine)"),
    # A new name, not processedat with a new type: records written before hold processedat as ISO text,
    # which a bigint column of that name could not read (the JSON SerDe fails the row); under this name
    # they read as NULL, and NULLs sort last in the newest-delivery ordering.
    ("processedatms", "bigint", "UTC time the detector processed the reading, milliseconds since the epoch"),
)
ANALYSIS_KEYS: Final = tuple(name for name, _type, _comment in ANALYSIS_COLUMNS)
# Keys a record leaves out when they hold nothing (most records: 24 bytes each through Firehose). The
# table's Hive JSON SerDe reads an absent key as NULL, exactly as a null one: Athena's reader for it,
# trino-hive-formats line/json/JsonDeserializer.java, "write[s] null to unset fields".
OPTIONAL_KEYS: Final = ("readingtimestamp",)
# Records written before carry a ``sourcefile`` key (the UNLOAD file of an invalid reading) that the table
# no longer has: the same reader skips a key that is not a column ("if (rowIndex < 0) skipNextValue").
# The UNLOAD file expired with the staging bucket after ``stagingRetentionDays`` anyway; the raw file a
# reading came from is the ``raw-files-of-a-device`` named query (spec.queries).

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
