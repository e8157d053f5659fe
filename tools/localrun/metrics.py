"""The CloudWatch metrics a local run would have produced on AWS, as datapoints.

``MetricRecorder`` keeps one ``Datapoint`` (namespace, metric, dimensions, timestamp, value, unit) per
value a service would publish for the run, stamped with the run's simulated time. ``tools/localrun/
alarms.py`` replays them through the alarm evaluator, and the report writes them to ``metrics.json``.

Only series AWS documents are recorded, with exactly the dimensions AWS publishes them under (``EMITTED``;
``put`` refuses anything else), so an alarm that names a wrong metric or dimension finds no data here,
as it would find none on AWS:

- ``AWS/States`` (https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html):
  the execution metrics ``ExecutionsStarted``, ``ExecutionsSucceeded``, ``ExecutionsFailed``,
  ``ExecutionsTimedOut``, ``ExecutionsAborted`` (Count) and ``ExecutionTime`` (Milliseconds), dimension
  ``StateMachineArn``; the map-run metrics ``ApproximateOpenMapRunCount`` and ``OpenMapRunLimit``, no
  dimension (one series per account and Region). ``ApproximateMapRunBacklogSize`` exists only while map
  runs wait for the open-map-run limit, which a local run never reaches: it is never recorded.
  ``ExecutionThrottled`` likewise (the local executor is not throttled).
- ``AWS/Lambda`` (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html):
  ``Invocations`` and ``Errors`` are binary per invocation ("if the function returns an error, then
  Lambda sends the Errors metric with a value of 1"; "the timestamp on an error metric reflects when the
  function was invoked"), ``Duration`` in milliseconds, all with ``FunctionName``. ``Throttles`` counts
  throttled requests and the local run throttles none, so it records none. ``ConcurrentExecutions``
  (Maximum) is recorded once per map run as the most children the map may run at once
  (``min(MaxConcurrency, children)``): a bound, not a measurement.
- The detector's own embedded metrics: the EMF documents the handler's Powertools ``Metrics`` printed
  during each invocation, parsed as CloudWatch Logs parses them
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html:
  ``_aws.CloudWatchMetrics[].Namespace``, ``Dimensions`` (each dimension set is one series),
  ``Metrics[].Name``/``Unit``, values from the root members). The document's ``Timestamp`` is this
  machine's clock; the simulated invocation time stands in for it.
- ``AWS/Firehose`` (https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html),
  dimension ``DeliveryStreamName``: ``IncomingRecords`` and ``IncomingBytes`` for what the stream accepted, when the map ran; ``DeliveryToS3.Records`` and ``DeliveryToS3.Success`` ("the sum
  of successful Amazon S3 put commands over the sum of all Amazon S3 put commands": 1 per delivery, the
  local S3 never refuses a put) one buffer interval later, when the stand-in delivers; and
  ``DeliveryToS3.DataFreshness`` ("the age ... of the oldest record in Firehose") once a minute from the
  records' arrival to their delivery.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from functions.detector import schema

NS_STATES: Final = "AWS/States"
NS_LAMBDA: Final = "AWS/Lambda"
NS_FIREHOSE: Final = "AWS/Firehose"
NS_DETECTOR: Final = schema.METRICS_NAMESPACE

SFN: Final = ("StateMachineArn",)
FN: Final = ("FunctionName",)
STREAM: Final = ("DeliveryStreamName",)
NONE: Final = ()

# Step Functions' default OpenMapRunLimit (procedure-cw-metrics.html).
OPEN_MAP_RUN_LIMIT: Final = 1_000
FRESHNESS_EVERY_SECONDS: Final = 60

# (namespace, metric) -> the dimension names AWS publishes that series under, for what this run records.
EMITTED: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    **{
        (NS_STATES, m): SFN
        for m in (
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
            "ExecutionsAborted",
            "ExecutionTime",
        )
    },
    (NS_STATES, "ApproximateOpenMapRunCount"): NONE,
    (NS_STATES, "OpenMapRunLimit"): NONE,
    **{(NS_LAMBDA, m): FN for m in ("Invocations", "Errors", "Duration", "ConcurrentExecutions")},
    **{
        (NS_FIREHOSE, m): STREAM
        for m in (
            "IncomingRecords",
            "IncomingBytes",
            "DeliveryToS3.Records",
            "DeliveryToS3.Success",
            "DeliveryToS3.DataFreshness",
        )
    },
    **{
        (NS_DETECTOR, m): (schema.METRIC_DIMENSION,)
        for m in (
            schema.METRIC_ROWS,
            schema.METRIC_VALID_ROWS,
            schema.METRIC_INVALID_ROWS,
            schema.METRIC_DELIVERY_RETRIES,
            schema.METRIC_DELIVERY_FAILURES,
            *schema.METRIC_ANOMALIES.values(),
        )
    },
}

# Outcome metric of an execution by its final status.
OUTCOME: Final = {
    "SUCCEEDED": "ExecutionsSucceeded",
    "FAILED": "ExecutionsFailed",
    "TIMED_OUT": "ExecutionsTimedOut",
    "ABORTED": "ExecutionsAborted",
}


class MetricError(ValueError):
    """A datapoint AWS would not publish: an undocumented metric, or other dimensions than AWS uses."""


@dataclass(frozen=True)
class Datapoint:
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    timestamp: float  # seconds since the epoch (UTC)
    value: float
    unit: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["dimensions"] = dict(self.dimensions)
        out["time"] = datetime.fromtimestamp(self.timestamp, UTC).isoformat().replace("+00:00", "Z")
        return out


class MetricRecorder:
    """Every datapoint of a local run, in the order recorded."""

    def __init__(self, points: Iterable[Datapoint] = ()):
        self.points: list[Datapoint] = list(points)

    def put(
        self,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, str],
        when: datetime,
        *,
        value: float,
        unit: str,
    ) -> None:
        expected = EMITTED.get((namespace, metric))
        if expected is None:
            raise MetricError(f"{namespace} {metric!r} is not a series this run records (see EMITTED)")
        if tuple(sorted(dimensions)) != tuple(sorted(expected)):
            raise MetricError(
                f"{namespace} {metric}: dimensions {sorted(dimensions)}; AWS publishes it with {list(expected)}"
            )
        self.points.append(
            Datapoint(
                namespace,
                metric,
                tuple(sorted((k, str(v)) for k, v in dimensions.items())),
                when.astimezone(UTC).timestamp(),
                float(value),
                unit,
            )
        )

    # ------------------------------------------------------------------------------------ queries
    def series(self, namespace: str, metric: str, dimensions: Mapping[str, Any]) -> list[tuple[float, float]]:
        """(timestamp, value) of the one series CloudWatch would match: same namespace, same metric and
        exactly these dimensions (CloudWatch matches a metric only on its full dimension set)."""
        wanted = tuple(sorted((k, str(v)) for k, v in dimensions.items()))
        return [
            (p.timestamp, p.value)
            for p in self.points
            if p.namespace == namespace and p.metric == metric and p.dimensions == wanted
        ]

    def last_timestamp(self) -> float | None:
        return max((p.timestamp for p in self.points), default=None)

    def first_timestamp(self) -> float | None:
        return min((p.timestamp for p in self.points), default=None)

    def totals(self) -> dict[tuple[str, str], float]:
        """Sum of every recorded value by (namespace, metric) (for the report and tests)."""
        out: dict[tuple[str, str], float] = {}
        for p in self.points:
            out[(p.namespace, p.metric)] = out.get((p.namespace, p.metric), 0.0) + p.value
        return out

    def write(self, path: Path) -> Path:
        """``{"source": ..., "datapoints": [...]}``: every datapoint, in the order recorded."""
        body = {
            "source": "tools/localrun/metrics.py: what AWS would publish for this run (simulated time)",
            "datapoints": [p.to_json() for p in self.points],
        }
        path.write_text(json.dumps(body, indent=1) + "\n")
        return path


# ---------------------------------------------------------------------------------------- producers
def record_execution(
    recorder: MetricRecorder,
    *,
    state_machine_arn: str,
    status: str,
    start: datetime,
    stop: datetime,
    redrive: bool,
) -> None:
    """An execution's metrics: started, its outcome and its time. A redrive (same execution ARN) records
    its outcome in the same outcome metrics, but neither a second start nor an execution time that would
    span both attempts (inference: the guide also documents redrive-specific metrics, which no alarm here
    reads)."""
    dims = {"StateMachineArn": state_machine_arn}
    if not redrive:
        recorder.put(NS_STATES, "ExecutionsStarted", dims, start, value=1, unit="Count")
    metric = OUTCOME.get(status)
    if metric is None:
        raise MetricError(f"execution status {status!r} has no outcome metric (known: {sorted(OUTCOME)})")
    recorder.put(NS_STATES, metric, dims, stop, value=1, unit="Count")
    if not redrive:
        milliseconds = (stop - start).total_seconds() * 1000
        recorder.put(NS_STATES, "ExecutionTime", dims, stop, value=milliseconds, unit="Milliseconds")


def record_map_run(
    recorder: MetricRecorder, *, function_name: str, at: datetime, max_concurrency: int, children: int
) -> None:
    """One open map run in the account while it runs; the children it may run at once."""
    recorder.put(NS_STATES, "ApproximateOpenMapRunCount", {}, at, value=1, unit="Count")
    recorder.put(NS_STATES, "OpenMapRunLimit", {}, at, value=OPEN_MAP_RUN_LIMIT, unit="Count")
    if children:
        recorder.put(
            NS_LAMBDA,
            "ConcurrentExecutions",
            {"FunctionName": function_name},
            at,
            value=min(max_concurrency, children),
            unit="Count",
        )


def record_invocations(recorder: MetricRecorder, *, function_name: str, invocations: Sequence[Any]) -> None:
    """Lambda's invocation metrics and the detector's EMF, for each ``worker.Invocation``."""
    dims = {"FunctionName": function_name}
    for inv in invocations:
        recorder.put(NS_LAMBDA, "Invocations", dims, inv.at, value=1, unit="Count")
        recorder.put(NS_LAMBDA, "Errors", dims, inv.at, value=1 if inv.error else 0, unit="Count")
        recorder.put(NS_LAMBDA, "Duration", dims, inv.at, value=inv.duration_ms, unit="Milliseconds")
        for document in inv.emf:
            for namespace, metric, dimensions, value, unit in parse_emf(document):
                recorder.put(namespace, metric, dimensions, inv.at, value=value, unit=unit)


def parse_emf(document: str) -> list[tuple[str, str, dict[str, str], float, str]]:
    """(namespace, metric, dimensions, value, unit) for every series an EMF document defines.

    Raises ``MetricError`` on a document CloudWatch Logs would reject (not an object, no
    ``_aws.CloudWatchMetrics``, a dimension or metric without its root member).
    """
    try:
        root = json.loads(document)
        directives = root["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MetricError(f"not an EMF document ({exc}): {document[:120]!r}") from None
    out = []
    for directive in directives:
        namespace = directive["Namespace"]
        for metric in directive["Metrics"]:
            name = metric["Name"]
            if name not in root:
                raise MetricError(f"EMF metric {name!r} has no value in the document")
            values = root[name] if isinstance(root[name], list) else [root[name]]
            for dimension_set in directive.get("Dimensions") or [[]]:
                missing = [d for d in dimension_set if d not in root]
                if missing:
                    raise MetricError(f"EMF dimensions {missing} have no value in the document")
                dims = {d: str(root[d]) for d in dimension_set}
                out.extend((namespace, name, dims, float(v), metric.get("Unit", "None")) for v in values)
    return out


def record_firehose(
    recorder: MetricRecorder,
    *,
    stream_name: str,
    arrival: datetime,
    records: int,
    size: int,
    lost: int,
    buffer_interval_seconds: int,
) -> None:
    """What the stream accepted at ``arrival``, and its delivery one buffer interval later."""
    dims = {"DeliveryStreamName": stream_name}
    if not records:
        return
    recorder.put(NS_FIREHOSE, "IncomingRecords", dims, arrival, value=records, unit="Count")
    recorder.put(NS_FIREHOSE, "IncomingBytes", dims, arrival, value=size, unit="Bytes")
    steps = max(1, math.ceil(buffer_interval_seconds / FRESHNESS_EVERY_SECONDS))
    for k in range(steps + 1):
        age = min(k * FRESHNESS_EVERY_SECONDS, buffer_interval_seconds)
        recorder.put(
            NS_FIREHOSE,
            "DeliveryToS3.DataFreshness",
            dims,
            arrival + timedelta(seconds=age),
            value=age,
            unit="Seconds",
        )
    delivered_at = arrival + timedelta(seconds=buffer_interval_seconds)
    recorder.put(NS_FIREHOSE, "DeliveryToS3.Records", dims, delivered_at, value=records - lost, unit="Count")
    recorder.put(NS_FIREHOSE, "DeliveryToS3.Success", dims, delivered_at, value=1, unit="None")
