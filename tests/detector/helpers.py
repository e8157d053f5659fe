"""Shared builders and fakes for the detector tests."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from functions.detector import schema

EXECUTION_ARN = "arn:aws:states:eu-west-1:222222222222:execution:sensorflow-dev-pipeline/detect:0b7f2c9e"
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


def item(
    reading: Any, *, index: int = 0, source: Any = "S3://unload-bucket/unload/2024-06-01/f1.parquet"
) -> dict:
    """A map item as the ItemSelector builds it."""
    return {"row": reading, "source": source, "index": index}


def event(items: list[Any], *, run_date: Any = RUN_DATE, execution: Any = EXECUTION_ARN) -> dict[str, Any]:
    """An ItemBatcher event."""
    return {"Items": items, "BatchInput": {"executionId": execution, "runDate": run_date}}


def decode(records: list[bytes]) -> list[dict[str, Any]]:
    """Firehose records (newline-terminated JSON Lines) back into analysis records."""
    out = []
    for data in records:
        text = data.decode("ascii")
        assert text.endswith("\n"), "every packed record must end with a newline"
        out.extend(json.loads(line) for line in text.splitlines())
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
