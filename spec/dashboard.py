"""The stage's CloudWatch dashboard body, as data.

One page an operator opens when paged: the account's open map runs against the 1,000 limit (and the
alarm threshold), the pipeline's executions and their duration, the rows the map's children processed
(the detector's own metrics: Step Functions publishes no per-item map metrics), the detector Lambda's
health and Firehose delivery. A last widget shows the stage's alarms.

Body format: docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
(``metrics`` rows are ``[namespace, metric, dimName, dimValue, ..., {options}]``). Values may be Pulumi
Outputs; the component serialises the dict with ``pulumi.Output.json_dumps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from functions.detector import schema
from spec.alarms import (
    DURATION_TIMEOUT_SHARE,
    NS_DETECTOR,
    NS_FIREHOSE,
    NS_LAMBDA,
    NS_STATES,
    OPEN_MAP_RUN_LIMIT,
    AlarmSettings,
)

WIDTH: Final = 12  # two widgets per row on the 24-column grid
HEIGHT: Final = 6
PERIOD: Final = 300


def _row(namespace: str, metric: str, dimensions: dict[str, Any], **options: Any) -> list[Any]:
    row: list[Any] = [namespace, metric]
    for key, value in dimensions.items():
        row += [key, value]
    return [*row, options] if options else row


def _metric_widget(
    title: str, region: str, rows: list[list[Any]], *, annotations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "region": region,
        "view": "timeSeries",
        "stacked": False,
        "period": PERIOD,
        "metrics": rows,
    }
    if annotations:
        properties["annotations"] = {"horizontal": annotations}
    return {"type": "metric", "width": WIDTH, "height": HEIGHT, "properties": properties}


def dashboard_body(
    settings: AlarmSettings,
    *,
    region: str,
    state_machine_arn: Any,
    function_name: Any,
    delivery_stream_name: Any,
    alarm_arns: Sequence[Any],
) -> dict[str, Any]:
    """The dashboard as a dict; widgets are laid out left to right, top to bottom."""
    sfn = {"StateMachineArn": state_machine_arn}
    fn = {"FunctionName": function_name}
    stream = {"DeliveryStreamName": delivery_stream_name}
    service = {schema.METRIC_DIMENSION: function_name}
    timeout_ms = settings.lambda_timeout_seconds * 1_000

    widgets = [
        _metric_widget(
            "Open map runs (account and Region) vs the 1,000 limit",
            region,
            [
                _row(NS_STATES, "ApproximateOpenMapRunCount", {}, stat="Maximum", label="open map runs"),
                _row(NS_STATES, "OpenMapRunLimit", {}, stat="Maximum", label="open map run limit"),
                _row(NS_STATES, "ApproximateMapRunBacklogSize", {}, stat="Maximum", label="backlogged"),
            ],
            annotations=[
                {"label": "hard limit", "value": OPEN_MAP_RUN_LIMIT, "color": "#d62728"},
                {"label": "alarm threshold", "value": settings.open_map_run_threshold, "color": "#ff7f0e"},
            ],
        ),
        _metric_widget(
            "Pipeline executions",
            region,
            [
                _row(NS_STATES, metric, sfn, stat="Sum")
                for metric in (
                    "ExecutionsStarted",
                    "ExecutionsSucceeded",
                    "ExecutionsFailed",
                    "ExecutionsTimedOut",
                    "ExecutionsAborted",
                    "ExecutionThrottled",
                )
            ],
        ),
        _metric_widget(
            "Pipeline execution time (ms)",
            region,
            [
                _row(NS_STATES, "ExecutionTime", sfn, stat="Average", label="average"),
                _row(NS_STATES, "ExecutionTime", sfn, stat="Maximum", label="maximum"),
            ],
        ),
        _metric_widget(
            "Map items: rows processed by the detector",
            region,
            [
                _row(NS_DETECTOR, metric, service, stat="Sum")
                for metric in (schema.METRIC_ROWS, schema.METRIC_VALID_ROWS, schema.METRIC_INVALID_ROWS)
            ],
        ),
        _metric_widget(
            "Detector Lambda: invocations, errors, throttles, concurrency",
            region,
            [
                _row(NS_LAMBDA, "Invocations", fn, stat="Sum"),
                _row(NS_LAMBDA, "Errors", fn, stat="Sum"),
                _row(NS_LAMBDA, "Throttles", fn, stat="Sum"),
                _row(NS_LAMBDA, "ConcurrentExecutions", fn, stat="Maximum"),
            ],
        ),
        _metric_widget(
            "Detector Lambda duration (ms) vs timeout",
            region,
            [
                _row(NS_LAMBDA, "Duration", fn, stat="Maximum", label="maximum"),
                _row(NS_LAMBDA, "Duration", fn, stat="p99", label="p99"),
            ],
            annotations=[
                {"label": "timeout", "value": timeout_ms, "color": "#d62728"},
                {
                    "label": "alarm threshold",
                    "value": round(timeout_ms * DURATION_TIMEOUT_SHARE),
                    "color": "#ff7f0e",
                },
            ],
        ),
        _metric_widget(
            "Firehose: incoming and throttled",
            region,
            [
                _row(NS_FIREHOSE, "IncomingRecords", stream, stat="Sum"),
                _row(NS_FIREHOSE, "IncomingBytes", stream, stat="Sum"),
                _row(NS_FIREHOSE, "ThrottledRecords", stream, stat="Sum"),
                _row(NS_DETECTOR, schema.METRIC_DELIVERY_RETRIES, service, stat="Sum"),
                _row(NS_DETECTOR, schema.METRIC_DELIVERY_FAILURES, service, stat="Sum"),
            ],
        ),
        _metric_widget(
            "Firehose delivery to S3: freshness (s) and success ratio",
            region,
            [
                _row(NS_FIREHOSE, "DeliveryToS3.DataFreshness", stream, stat="Maximum"),
                _row(NS_FIREHOSE, "DeliveryToS3.Success", stream, stat="Average", yAxis="right"),
            ],
            annotations=[
                {
                    "label": "freshness alarm",
                    "value": settings.delivery_freshness_alarm_seconds,
                    "color": "#ff7f0e",
                }
            ],
        ),
        {
            "type": "alarm",
            "width": 2 * WIDTH,
            "height": HEIGHT,
            "properties": {"title": f"sensorflow {settings.stage} alarms", "alarms": list(alarm_arns)},
        },
    ]
    return {"start": "-PT24H", "widgets": widgets}


def dashboard_metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    """Every ``metrics`` row of every metric widget (for the tests' metric-name check)."""
    return [row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]]
