"""Shared builders and fakes for the detector tests."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from functions.detector import schema

EXECUTION_NAME = "0b7f2c9e-1d2a-4c3b-9e8f-5a6b7c8d9e0f"  # the run's execution name (BatchInput)
RUN_DATE = "2024-06-01"


def row(**overrides: Any) -> dict[str, Any]:
    """A healthy reading (every value well inside every threshold), with overrides."""
    base: dict[str, Any] = {
        "deviceid": "sensor-0001",
        "timestamp": "2024-06-01 13:00:00.000",
        "temperature": 21.5,
        "humidity": 45.0,
        "batterylevel": 87.0,
        "latitude": 47.3769,
        "longitude": 8.5417,
    }
    base.update(overrides)
    return base


def item(reading: Any, *, index: Any = 0) -> dict:
    """A map item as the ItemSelector builds it (spec.map_items.item_selector): the row's values
    in schema.ITEM_FIELDS order, null where absent; a row that is not an object as its JSON text."""
    if isinstance(reading, dict):
        values: Any = [reading.get(name) for name in schema.ITEM_FIELDS]
    else:
        values = json.dumps(reading, separators=(",", ":"))
    return {schema.ITEM_ROW: values, schema.ITEM_INDEX: index}


def event(items: list[Any], *, run_date: Any = RUN_DATE, execution: Any = EXECUTION_NAME) -> dict[str, Any]:
    """An ItemBatcher event."""
    return {"Items": items, "BatchInput": {schema.BATCH_RUN: execution, "runDate": run_date}}


def decode(records: list[bytes]) -> list[dict[str, Any]]:
    """Firehose records (newline-terminated JSON Lines) back into analysis records."""
    out = []
    for data in records:
        assert data.endswith(b"\n"), "every packed record must end with a newline"
        # Split on the newline only, as a line reader of JSON Lines does: U+0085 or U+2028 inside a string
        # is no line break (str.splitlines would take them for one).
        out.extend(json.loads(line) for line in data[:-1].split(b"\n"))
    return out


class FakeFirehose:
    """Records every PutRecordBatch; can reject entries and throttle calls.

    ``accepted`` holds the Data of every entry answered with a RecordId (what Firehose would keep).
    """

    def __init__(
        self,
        *,
        reject_share: float = 0.0,
        throttle_share: float = 0.0,
        seed: int = 0,
        always_fail: bool = False,
        call_error: Callable[[int], Exception | None] | None = None,
    ) -> None:
        self.rnd = random.Random(seed)
        self.reject_share = reject_share
        self.throttle_share = throttle_share
        self.always_fail = always_fail
        self.call_error = call_error
        self.calls: list[list[bytes]] = []
        self.accepted: list[bytes] = []

    def put_record_batch(self, *, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        assert DeliveryStreamName, "a stream name must be given"
        assert 1 <= len(Records) <= 500, f"{len(Records)} records in one call"
        assert sum(len(r["Data"]) for r in Records) <= 4 * 1024 * 1024
        assert all(len(r["Data"]) <= 1_024_000 for r in Records)
        self.calls.append([r["Data"] for r in Records])
        if self.call_error is not None:
            exc = self.call_error(len(self.calls))
            if exc is not None:
                raise exc
        if self.throttle_share and self.rnd.random() < self.throttle_share:
            raise throttling("ServiceUnavailableException")
        responses = []
        failed = 0
        for i, record in enumerate(Records):
            if self.always_fail or self.rnd.random() < self.reject_share:
                failed += 1
                responses.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
            else:
                self.accepted.append(record["Data"])
                responses.append({"RecordId": f"{len(self.calls)}-{i}"})
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}


def throttling(code: str) -> Exception:
    """A botocore ClientError with this error code, as boto3 raises it."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "PutRecordBatch")


def counts_add_up(summary: dict[str, Any]) -> None:
    """The summary's invariants."""
    assert tuple(summary) == schema.SUMMARY_KEYS
    assert summary["rowsIn"] == summary["valid"] + summary["invalid"]
    assert summary["anomalousRows"] <= summary["rowsIn"]  # invalid readings can be anomalous too
    assert set(summary["anomalies"]) == set(schema.ANOMALY_TYPES)
    assert sum(summary["anomalies"].values()) >= summary["anomalousRows"]


def assert_schema_keys(record: dict[str, Any]) -> None:
    """The record's keys are ``schema.ANALYSIS_KEYS`` in order, an optional key only when it holds a value."""
    expected = [k for k in schema.ANALYSIS_KEYS if k not in schema.OPTIONAL_KEYS or record.get(k) is not None]
    assert list(record) == expected, f"keys {list(record)}"
    assert all(record[k] is not None for k in schema.OPTIONAL_KEYS if k in record)


class LambdaContext:
    """The context attributes the handler and Powertools' ``inject_lambda_context`` read, as the Powertools
    docs' tests fake it ("Testing your code")."""

    function_name = "sensorflow-dev-detector"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:sensorflow-dev-detector"

    def __init__(self, request_id: str = "req-1") -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 50_000
