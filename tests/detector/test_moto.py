"""Against moto: the handler's records land in S3 through a Direct PUT stream and decode back."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from functions.detector import handler, schema

from .helpers import LambdaContext, assert_schema_keys, decode, event, item, row

BUCKET = "sensorflow-dev-analytics"
STREAM = "sensorflow-dev-analysis"


@pytest.fixture
def aws(monkeypatch, cold_start):
    """Fake credentials and region; no endpoint override, so moto intercepts."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "DELIVERY_STREAM_NAME": STREAM,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    cold_start()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        boto3.client("firehose").create_delivery_stream(
            DeliveryStreamName=STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": "analysis/",
            },
        )
        handler.use_firehose_client(None)  # the handler makes its own client, inside the mock
        yield s3
        handler.use_firehose_client(None)


def test_records_land_in_s3_one_per_reading(aws, capsys) -> None:
    readings = [item(row(temperature=20.0 + i, deviceid=f"sensor-{i % 5}"), index=i) for i in range(40)]
    readings.append(item({"deviceid": "broken"}, index=40))
    summary = handler.lambda_handler(event(readings), LambdaContext())
    capsys.readouterr()
    assert summary["rowsIn"] == 41
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys, "moto delivered nothing to the bucket"
    assert all(k.startswith("analysis/") for k in keys)
    delivered = decode([aws.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys])
    assert len(delivered) == 41
    assert sorted(r["sourceindex"] for r in delivered) == list(range(41))
    for r in delivered:
        assert_schema_keys(r)
    assert sum(r["healthstatus"] == schema.INVALID for r in delivered) == summary["invalid"] == 1
    assert sum(r["healthstatus"] == schema.ANOMALIES_DETECTED for r in delivered) == summary["anomalousRows"]
