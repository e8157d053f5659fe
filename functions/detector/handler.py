"""The detector Lambda: a thin adapter over pure functions.

``lambda_handler(event, context)`` reads its configuration from the environment, runs
``process_batch`` (analyse every item, pack the lines, deliver them to Firehose) and emits one log line
and one EMF metrics blob per invocation, never one per row.

Input (Distributed Map with ItemBatcher; docs: input-output-itembatcher.html)::

    {"Items": [{"r": [<deviceid>, <timestamp>, <temperature>, ...], "i": 0}, ...],
     "BatchInput": {"executionName": "<execution name>", "runDate": "YYYY-MM-DD"}}

A bare row (a dict with the row fields and no ``Items``), a bare item and a list of items are accepted
too (``schema`` describes the item). Bad content never raises: every item comes out as exactly one analysis record.

Logging and metrics follow Powertools' model: a module-level ``Logger`` and ``Metrics`` configured by the
environment, ``@logger.inject_lambda_context`` (the invocation's context keys on the log line) and
``@metrics.log_metrics`` (one flush per invocation, on success and failure alike).

Injection points for tests and the local runner: ``use_firehose_client(client)``, ``use_sleep(fn)``; the
pure core is ``process_batch(event, config=..., firehose=..., sleep=...)``.
"""

from __future__ import annotations

import functools
import os
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from . import schema
from .analysis import Analyzer, batch_context
from .config import ConfigError, DetectorConfig
from .delivery import DeliveryError, Packer, deliver

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "BatchResult",
    "ConfigError",
    "DeliveryError",
    "analyse_event",
    "lambda_handler",
    "process_batch",
    "use_firehose_client",
    "use_sleep",
]

# botocore's own retries stay small: the delivery loop owns retries (only failed entries, full jitter,
# a budget from DELIVERY_MAX_ATTEMPTS). One botocore retry still covers a dropped connection.
# Docs: boto3 "Retries" guide (total_max_attempts includes the first attempt).
_BOTO_CONFIG: Final = {
    "retries": {"mode": "standard", "total_max_attempts": 2},
    "connect_timeout": 5,
    "read_timeout": 15,
}


@dataclass
class BatchResult:
    """The analysis of one event, before delivery."""

    lines: list[bytes]  # one JSON line per item (UTF-8, no newline), unless a sink took them
    rows_in: int = 0  # items received; always valid + invalid
    valid: int = 0  # readings without invalid reasons
    invalid: int = 0  # readings with invalid reasons, anomalous or not
    anomalous_rows: int = 0  # readings that broke at least one rule, valid or not
    anomalies: dict[str, int] = field(default_factory=lambda: dict.fromkeys(schema.ANOMALY_TYPES, 0))
    invalid_reasons: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)


def split_event(event: Any) -> tuple[list[Any], Any]:
    """(items, BatchInput) of any event shape; never raises."""
    if isinstance(event, dict):
        if "Items" in event:
            items = event["Items"]
            if items is None:
                items = []
            elif not isinstance(items, list):
                items = [items]  # one malformed item is still one item, reported invalid if it is bad
            return items, event.get("BatchInput")
        return [event], None  # a bare row, or a single item
    if isinstance(event, list):
        return event, None
    if event is None:
        return [], None
    return [event], None


def analyse_event(
    event: Any,
    *,
    config: DetectorConfig,
    now: datetime | None = None,
    sink: Callable[[bytes], None] | None = None,
) -> BatchResult:
    """Analyse every item of an event into JSON lines (pure: no I/O). Each line goes to ``sink`` when
    one is given (``delivery.Packer.add``), else into ``lines``."""
    items, batch_input = split_event(event)
    context, warnings = batch_context(batch_input, now=now or datetime.now(UTC))
    analyzer = Analyzer(config, context)
    lines: list[bytes] = []
    analyzer.lines(items, lines.append if sink is None else sink)
    return BatchResult(
        lines=lines,
        rows_in=len(items),
        valid=len(items) - analyzer.invalid_rows,
        invalid=analyzer.invalid_rows,
        anomalous_rows=analyzer.anomalous_rows,
        anomalies=analyzer.anomaly_counts,
        invalid_reasons=analyzer.invalid_reasons,
        warnings=warnings,
    )


def summary_of(result: BatchResult, *, records: int, size: int, calls: int, retries: int) -> dict[str, Any]:
    """The invocation's return value: exactly ``schema.SUMMARY_KEYS``."""
    summary = {
        "rowsIn": result.rows_in,
        "valid": result.valid,
        "invalid": result.invalid,
        "anomalousRows": result.anomalous_rows,
        "anomalies": dict(result.anomalies),
        "firehoseRecords": records,
        "firehoseBytes": size,
        "putRecordBatchCalls": calls,
        "retries": retries,
    }
    return {key: summary[key] for key in schema.SUMMARY_KEYS}


def process_batch(
    event: Any,
    *,
    config: DetectorConfig,
    firehose: Any,
    sleep: Callable[[float], None],
    now: datetime | None = None,
    rng: Callable[[], float] = random.random,
    time_left: Callable[[], float] | None = None,
    on_result: Callable[[BatchResult], None] | None = None,
) -> dict[str, Any]:
    """Analyse, pack and deliver one event; return the summary, or raise ``DeliveryError``.

    ``on_result`` sees the analysis before delivery (the handler logs and meters from it).
    """
    packer = Packer()
    result = analyse_event(event, config=config, now=now, sink=packer.add)
    if on_result is not None:
        on_result(result)
    if not result.rows_in:
        return summary_of(result, records=0, size=0, calls=0, retries=0)
    if not config.stream_name:
        raise ConfigError(f"{schema.ENV_STREAM} is not set: the detector has nowhere to deliver")
    records = packer.finish()
    report = deliver(
        records,
        client=firehose,
        stream=config.stream_name,
        max_attempts=config.max_attempts,
        sleep=sleep,
        rng=rng,
        time_left=time_left,
    )
    return summary_of(
        result, records=report.records, size=report.bytes, calls=report.calls, retries=report.retries
    )


# ------------------------------------------------------------------------------------ the Lambda adapter
# Module level, as Powertools intends: both read their settings from the environment the Pulumi component
# sets (components/detector.py) once per execution environment. The Logger's service comes from
# POWERTOOLS_SERVICE_NAME and its level from AWS_LAMBDA_LOG_LEVEL (the JSON log format's application log
# level) before POWERTOOLS_LOG_LEVEL; Metrics takes its namespace from POWERTOOLS_METRICS_NAMESPACE and its
# single ``service`` dimension from POWERTOOLS_SERVICE_NAME. Docs: Powertools "Metrics", Getting started.
logger = Logger()
metrics = Metrics()

# A wrong environment fails the invocation (ConfigError) before anything is metered, so an empty metric set
# is expected there: silenced as Powertools' Metrics docs advise ("Suppressing warning messages on empty
# metrics"), instead of a warning line beside the error.
warnings.filterwarnings("ignore", "No application metrics to publish*")


@dataclass
class _Dependencies:
    """What tests and the local runner replace: the Firehose client (``None``: the default) and the sleep."""

    firehose: Any = None
    sleep: Callable[[float], None] = time.sleep


_deps = _Dependencies()


def use_firehose_client(client: Any) -> None:
    """Use this Firehose client from now on (tests, the local runner); ``None`` restores the default."""
    _deps.firehose = client
    if client is None:
        _default_firehose.cache_clear()  # the next default client is made afresh, under the current env


def use_sleep(sleep: Callable[[float], None] | None) -> None:
    """Use this sleep between delivery retries (tests pass a recorder); ``None`` restores ``time.sleep``."""
    _deps.sleep = sleep if sleep is not None else time.sleep


@functools.cache
def _default_firehose() -> Any:
    """The execution environment's Firehose client, made on first use and kept for every later
    invocation (boto3 honours ``AWS_ENDPOINT_URL``)."""
    import boto3  # from the Lambda runtime; imported lazily so pure processing needs no AWS SDK
    from botocore.config import Config

    return boto3.client("firehose", config=Config(**_BOTO_CONFIG))


def firehose_client() -> Any:
    """The injected Firehose client, else the default one."""
    return _deps.firehose if _deps.firehose is not None else _default_firehose()


def _undelivered(exc: Exception, seen: list[BatchResult], event: Any) -> tuple[int, int]:
    """(readings that did not reach Firehose, retries spent) when a batch fails."""
    if isinstance(exc, DeliveryError):
        return exc.failed_readings, exc.retries
    return (seen[0].rows_in if seen else len(split_event(event)[0])), 0


def _meter(summary: dict[str, Any]) -> None:
    metrics.add_metric(name=schema.METRIC_ROWS, unit=MetricUnit.Count, value=summary["rowsIn"])
    metrics.add_metric(name=schema.METRIC_VALID_ROWS, unit=MetricUnit.Count, value=summary["valid"])
    metrics.add_metric(name=schema.METRIC_INVALID_ROWS, unit=MetricUnit.Count, value=summary["invalid"])
    for kind, name in schema.METRIC_ANOMALIES.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=summary["anomalies"][kind])
    metrics.add_metric(name=schema.METRIC_DELIVERY_RETRIES, unit=MetricUnit.Count, value=summary["retries"])
    metrics.add_metric(name=schema.METRIC_DELIVERY_FAILURES, unit=MetricUnit.Count, value=0)


# Decorator order as Powertools stacks them (log_metrics' docstring, aws_lambda_powertools/metrics/provider/
# base.py: other middlewares above, log_metrics nearest the handler): the Logger's context outermost.
# log_metrics flushes in a ``finally``, so the one EMF blob is printed on success and on failure alike,
# after the handler's own log line.
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``detector.handler.lambda_handler``)."""
    config = DetectorConfig.from_env(os.environ)
    seen: list[BatchResult] = []
    try:
        summary = process_batch(
            event,
            config=config,
            firehose=firehose_client(),
            sleep=_deps.sleep,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000.0,
            on_result=seen.append,
        )
    except Exception as exc:
        # Only what did not reach Firehose is metered; row counts wait for the retry that succeeds, so
        # dashboards do not count a batch twice.
        failures, retries = _undelivered(exc, seen, event)
        metrics.add_metric(name=schema.METRIC_DELIVERY_FAILURES, unit=MetricUnit.Count, value=failures)
        metrics.add_metric(name=schema.METRIC_DELIVERY_RETRIES, unit=MetricUnit.Count, value=retries)
        logger.exception(
            "batch failed",
            extra={
                "requestId": context.aws_request_id,
                "undeliveredReadings": failures,
                "error": type(exc).__name__,
            },
        )
        raise

    _meter(summary)
    result = seen[0]
    logger.info(
        "batch processed",
        extra={
            "requestId": context.aws_request_id,
            "summary": summary,
            "invalidReasons": dict(result.invalid_reasons.most_common(10)),
            "warnings": result.warnings,
        },
    )
    return summary
