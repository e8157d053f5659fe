"""The Lambda entry point: env configuration, one log line and one EMF blob per invocation, failures."""

from __future__ import annotations

import json
import warnings

import pytest

from functions.detector import handler, schema
from functions.detector.delivery import DeliveryError

from .conftest import FUNCTION_NAME
from .helpers import FakeFirehose, LambdaContext, decode, event, item, row

SUCCESS_METRICS = {
    schema.METRIC_ROWS, schema.METRIC_VALID_ROWS, schema.METRIC_INVALID_ROWS,
    schema.METRIC_DELIVERY_RETRIES, schema.METRIC_DELIVERY_FAILURES, *schema.METRIC_ANOMALIES.values(),
}  # fmt: skip


@pytest.fixture
def lambda_env(monkeypatch, cold_start):
    """The environment the Pulumi component sets, a cold start under it, and a fake Firehose injected."""
    monkeypatch.setenv("DELIVERY_STREAM_NAME", "sensorflow-dev-analysis")
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "3")
    cold_start()
    firehose = FakeFirehose()
    handler.use_firehose_client(firehose)
    handler.use_sleep(lambda _s: None)
    yield firehose
    handler.use_firehose_client(None)
    handler.use_sleep(None)


def emf_blobs(text: str) -> list[dict]:
    blobs = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_handler_returns_the_summary_and_emits_one_emf_blob(lambda_env, capsys, caplog) -> None:
    caplog.set_level("INFO", logger=handler.logger.name)
    batch = event(
        [item(row(), index=0), item(row(temperature=40.0), index=1), item(row(humidity="x"), index=2)]
    )
    summary = handler.lambda_handler(batch, LambdaContext())
    assert summary == {
        "rowsIn": 3, "valid": 2, "invalid": 1, "anomalousRows": 1,
        "anomalies": {"temperature_spike": 1, "humidity_anomaly": 0, "low_battery": 0},
        "firehoseRecords": 1, "firehoseBytes": summary["firehoseBytes"], "putRecordBatchCalls": 1, "retries": 0,
    }  # fmt: skip
    assert len(decode(lambda_env.accepted)) == 3
    out = capsys.readouterr().out
    (blob,) = emf_blobs(out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == schema.METRICS_NAMESPACE
    assert directive["Dimensions"] == [[schema.METRIC_DIMENSION]]
    assert blob[schema.METRIC_DIMENSION] == FUNCTION_NAME
    assert {m["Name"] for m in directive["Metrics"]} == SUCCESS_METRICS
    assert {m["Unit"] for m in directive["Metrics"]} == {"Count"}
    assert all("StorageResolution" not in m for m in directive["Metrics"])  # standard resolution
    assert (blob[schema.METRIC_ROWS], blob[schema.METRIC_INVALID_ROWS]) == ([3.0], [1.0])
    assert blob["TemperatureSpikes"] == [1.0]
    logs = [r for r in caplog.records if r.name == handler.logger.name]
    assert [r.getMessage() for r in logs] == ["batch processed"]  # one log line per invocation, none per row
    assert logs[0].summary == summary
    assert logs[0].invalidReasons == {"humidity:not_a_number": 1}
    assert logs[0].requestId == "req-1"


def test_invalid_and_anomalous_readings_are_metered_independently(lambda_env, capsys) -> None:
    batch = event([
        item(row(), index=0),  # healthy
        item(row(humidity=150.0), index=1),  # humidity_anomaly and humidity:out_of_range
        item(row(batterylevel=-5.0), index=2),  # low_battery and batterylevel:out_of_range
        item(row(temperature=float("inf"), batterylevel=10.0), index=3),  # low_battery, temperature:not_finite
        item(row(latitude=95.0), index=4),  # invalid only
    ])  # fmt: skip
    summary = handler.lambda_handler(batch, LambdaContext())
    assert (summary["rowsIn"], summary["valid"], summary["invalid"], summary["anomalousRows"]) == (5, 1, 4, 3)
    assert summary["anomalies"] == {"temperature_spike": 0, "humidity_anomaly": 1, "low_battery": 2}
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert (blob[schema.METRIC_ROWS], blob[schema.METRIC_VALID_ROWS], blob[schema.METRIC_INVALID_ROWS]) == (
        [5.0], [1.0], [4.0],
    )  # fmt: skip
    assert (blob["HumidityAnomalies"], blob["LowBatteryReadings"], blob["TemperatureSpikes"]) == (
        [1.0], [2.0], [0.0],
    )  # fmt: skip


def test_a_delivery_failure_raises_and_still_flushes_delivery_failures(lambda_env, capsys, caplog) -> None:
    caplog.set_level("INFO", logger=handler.logger.name)
    lambda_env.always_fail = True
    with pytest.raises(DeliveryError):
        handler.lambda_handler(event([item(row(), index=i) for i in range(7)]), LambdaContext())
    (blob,) = emf_blobs(capsys.readouterr().out)
    names = {m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {schema.METRIC_DELIVERY_FAILURES, schema.METRIC_DELIVERY_RETRIES}
    assert blob[schema.METRIC_DELIVERY_FAILURES] == [7.0]
    assert blob[schema.METRIC_DELIVERY_RETRIES] == [2.0]  # the attempts after the first, each refused whole
    assert len(lambda_env.calls) == 3  # DELIVERY_MAX_ATTEMPTS from the environment
    logs = [r for r in caplog.records if r.name == handler.logger.name]
    assert [r.getMessage() for r in logs] == ["batch failed"]
    assert (logs[0].undeliveredReadings, logs[0].error, logs[0].requestId) == (7, "DeliveryError", "req-1")


def test_thresholds_and_input_format_come_from_the_environment(lambda_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TEMPERATURE_HIGH", "25")
    monkeypatch.setenv("INPUT_FORMAT", "CSV")
    summary = handler.lambda_handler(event([item(row(temperature="26"))]), LambdaContext())
    assert summary["anomalies"]["temperature_spike"] == 1
    (record,) = decode(lambda_env.accepted)
    assert record["anomalies"][0]["threshold"] == ">25°C"
    capsys.readouterr()


def test_a_bad_environment_fails_the_invocation_and_meters_nothing(lambda_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("INPUT_FORMAT", "XML")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", append=True)  # keep whatever the module's own filters let through
        with pytest.raises(handler.ConfigError, match="INPUT_FORMAT"):
            handler.lambda_handler(event([item(row())]), LambdaContext())
    assert emf_blobs(capsys.readouterr().out) == []  # nothing was metered before the error
    assert [str(w.message) for w in caught] == []  # and log_metrics' empty flush says nothing either


def test_an_undeliverable_batch_without_a_stream_meters_every_row_as_failed(
    lambda_env, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("DELIVERY_STREAM_NAME")
    with pytest.raises(handler.ConfigError, match="DELIVERY_STREAM_NAME"):
        handler.lambda_handler(event([item(row(), index=i) for i in range(4)]), LambdaContext())
    (blob,) = emf_blobs(capsys.readouterr().out)
    assert (blob[schema.METRIC_DELIVERY_FAILURES], blob[schema.METRIC_DELIVERY_RETRIES]) == ([4.0], [0.0])


def test_each_invocation_prints_exactly_its_own_emf_blob(lambda_env, capsys) -> None:
    for rows in (2, 3):
        handler.lambda_handler(event([item(row(), index=i) for i in range(rows)]), LambdaContext())
        (blob,) = emf_blobs(capsys.readouterr().out)  # one blob per invocation, nothing carried over
        assert blob[schema.METRIC_ROWS] == [float(rows)]
        assert blob[schema.METRIC_DELIVERY_FAILURES] == [0.0]


def test_namespace_and_service_come_from_the_environment(lambda_env, cold_start, capsys) -> None:
    cold_start(
        POWERTOOLS_METRICS_NAMESPACE="Sensorflow/Elsewhere",
        POWERTOOLS_SERVICE_NAME="sensorflow-prod-detector",
    )
    handler.use_firehose_client(lambda_env)
    handler.lambda_handler(event([item(row())]), LambdaContext())
    (blob,) = emf_blobs(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Sensorflow/Elsewhere"
    assert directive["Dimensions"] == [[schema.METRIC_DIMENSION]]
    assert blob[schema.METRIC_DIMENSION] == "sensorflow-prod-detector"
    assert handler.logger.service == "sensorflow-prod-detector"


def test_the_log_line_carries_the_invocation_context(lambda_env, caplog, capsys) -> None:
    caplog.set_level("INFO", logger=handler.logger.name)
    summary = handler.lambda_handler(event([item(row())]), LambdaContext("req-7"))
    capsys.readouterr()
    (record,) = [r for r in caplog.records if r.name == handler.logger.name]
    line = json.loads(handler.logger.registered_formatter.format(record))  # the JSON line Lambda keeps
    assert line["message"] == "batch processed"
    assert line["service"] == FUNCTION_NAME
    assert (line["function_request_id"], line["requestId"]) == ("req-7", "req-7")
    assert line["function_name"] == LambdaContext.function_name
    assert line["function_arn"] == LambdaContext.invoked_function_arn
    assert isinstance(line["cold_start"], bool)
    assert line["summary"] == summary
    assert {"invalidReasons", "warnings"} <= set(line)


def test_the_default_client_is_created_once_per_process(monkeypatch) -> None:
    handler.use_firehose_client(None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    first = handler.firehose_client()
    assert handler.firehose_client() is first
    assert first.meta.endpoint_url == "http://localhost:4566"  # boto3 honours AWS_ENDPOINT_URL
    assert first.meta.config.retries["total_max_attempts"] == 2  # the delivery loop owns retries
    handler.use_firehose_client(None)  # restores the default: made afresh, under the current environment
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4567")
    second = handler.firehose_client()
    assert second is not first
    assert second.meta.endpoint_url == "http://localhost:4567"
    handler.use_firehose_client(None)
