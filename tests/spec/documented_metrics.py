"""The CloudWatch metrics AWS documents, with the dimension sets each accepts: the tests' reference.

CloudWatch accepts an alarm on any metric name, and an alarm on a name nobody emits stays in
INSUFFICIENT_DATA (or OK, with notBreaching) forever. Every metric the stage alarms on or graphs must
therefore appear here, with a dimension set listed for it. The table is typed in from the documentation,
not imported from the code under test, so a misspelling on either side fails the suite.

Sources (read 2026):
- AWS/States: docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html ("Execution Metrics",
  "Map Run Metrics"): execution metrics with ``StateMachineArn`` or none (account level); map-run metrics
  dimensionless only.
- AWS/Lambda: docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html (``FunctionName``, or
  none for account-wide aggregates).
- AWS/Firehose: docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html
  ("Data delivery", "Data ingestion"; dimension ``DeliveryStreamName``).
- The detector's namespace: functions/detector/schema.py, the contract the detector emits against (one
  dimension, ``service``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from functions.detector import schema

NONE: Final = frozenset()
SFN: Final = frozenset({"StateMachineArn"})
FN: Final = frozenset({"FunctionName"})
STREAM: Final = frozenset({"DeliveryStreamName"})
SERVICE: Final = frozenset({schema.METRIC_DIMENSION})

DOCUMENTED: Final[dict[str, dict[str, frozenset[frozenset[str]]]]] = {
    "AWS/States": {
        **{
            metric: frozenset({SFN, NONE})
            for metric in (
                "ExecutionsAborted",
                "ExecutionsFailed",
                "ExecutionsStarted",
                "ExecutionsSucceeded",
                "ExecutionsTimedOut",
                "ExecutionThrottled",
                "ExecutionTime",
            )
        },
        "ApproximateOpenMapRunCount": frozenset({NONE}),
        "OpenMapRunLimit": frozenset({NONE}),
        "ApproximateMapRunBacklogSize": frozenset({NONE}),
    },
    "AWS/Lambda": {
        metric: frozenset({FN, NONE})
        for metric in ("Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions")
    },
    "AWS/Firehose": {
        metric: frozenset({STREAM})
        for metric in (
            "DeliveryToS3.DataFreshness",
            "DeliveryToS3.Success",
            "DeliveryToS3.Records",
            "DeliveryToS3.Bytes",
            "ThrottledRecords",
            "IncomingRecords",
            "IncomingBytes",
        )
    },
    schema.METRICS_NAMESPACE: {
        metric: frozenset({SERVICE})
        for metric in (
            schema.METRIC_ROWS,
            schema.METRIC_VALID_ROWS,
            schema.METRIC_INVALID_ROWS,
            schema.METRIC_DELIVERY_RETRIES,
            schema.METRIC_DELIVERY_FAILURES,
            *schema.METRIC_ANOMALIES.values(),
        )
    },
}


def metric_problems(namespace: str, metric: str, dimension_names: Iterable[str]) -> list[str]:
    """Why ``(namespace, metric, dimensions)`` is not a documented series; empty when it is."""
    if namespace not in DOCUMENTED:
        return [f"namespace {namespace!r} is not in the documented table"]
    metrics = DOCUMENTED[namespace]
    if metric not in metrics:
        return [f"{namespace} {metric!r} is not a documented metric (known: {sorted(metrics)})"]
    dims = frozenset(dimension_names)
    if dims not in metrics[metric]:
        allowed = [sorted(d) for d in metrics[metric]]
        return [f"{namespace} {metric}: dimensions {sorted(dims)} not documented (allowed: {allowed})"]
    return []
