"""Delivery: a Firehose Direct PUT stream into the analytics bucket, partitioned by arrival day.

Objects land under ``analysis/dt=<yyyy-MM-dd>/`` (UTC), which the analysis table projects as its ``dt``
partition; failed deliveries under ``errors/<error type>/dt=<day>/`` (a custom prefix requires an error
prefix: docs firehose/latest/dev/s3-prefixes.html). Encrypted at rest with an AWS-owned key; delivery
errors logged to a log group this component creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from components import logs, roles
from spec import iam
from spec.naming import ANALYSIS_PREFIX, ERRORS_PREFIX, Names

PREFIX: Final = ANALYSIS_PREFIX + "dt=!{timestamp:yyyy-MM-dd}/"
ERROR_PREFIX: Final = ERRORS_PREFIX + "!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
LOG_STREAM: Final = "DestinationDelivery"
# "Grant Firehose access to an Amazon S3 destination": the S3 and logs actions of the role, as listed there.
FIREHOSE_S3_IAM: Final = iam.DOCS + "firehose/latest/dev/controlling-access.html#using-iam-s3"


def delivery_role_policy(*, bucket_arn: iam.Arn, log_group_arn: iam.Arn) -> dict:
    """What Firehose needs to write to S3 and log its errors (``FIREHOSE_S3_IAM``)."""
    return iam.document(
        [
            iam.statement(
                "WriteAnalysisObjects",
                [
                    "s3:AbortMultipartUpload",
                    "s3:GetObject",
                    "s3:PutObject",
                ],
                [iam.join(bucket_arn, f"/{ANALYSIS_PREFIX}*"), iam.join(bucket_arn, f"/{ERRORS_PREFIX}*")],
                source=FIREHOSE_S3_IAM,
            ),
            iam.statement(
                "LocateBucket",
                ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                [bucket_arn],
                source=FIREHOSE_S3_IAM,
            ),
            iam.statement(
                "LogDeliveryErrors",
                ["logs:PutLogEvents"],
                [iam.join(log_group_arn, f":log-stream:{LOG_STREAM}")],
                source=FIREHOSE_S3_IAM,
            ),
        ]
    )


@dataclass(frozen=True, kw_only=True)
class DeliveryArgs:
    """Inputs of ``Delivery``."""

    names: Names
    """The stream's and role's names and the account (the role's trust)."""
    tags: Mapping[str, str]
    """Tags of the stream, its role and its log group."""
    bucket_arn: pulumi.Input[str]
    """The analytics bucket the stream writes to."""
    log_retention_days: int
    """``logRetentionDays``: the delivery-error log group's retention."""
    buffer_interval_seconds: int
    """``firehoseBufferIntervalSeconds``: how long the stream buffers before it writes an object."""
    buffer_size_mb: int
    """``firehoseBufferSizeMb``: how much the stream buffers before it writes an object."""
    compression: str
    """``firehoseCompression``: GZIP or UNCOMPRESSED."""


class Delivery(pulumi.ComponentResource):
    """The analysis records' delivery stream.

    Outputs: ``stream`` (its ``name`` and ``arn``), ``role``, ``log_group``.
    """

    def __init__(self, name: str, args: DeliveryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:delivery:Delivery", name, None, opts)
        names = args.names
        child = pulumi.ResourceOptions(parent=self)
        stream_name = names.resource("analysis")

        self.log_group = logs.log_group(
            name,
            name=f"/aws/kinesisfirehose/{stream_name}",
            retention_days=args.log_retention_days,
            tags=args.tags,
            parent=self,
        )
        log_stream = aws.cloudwatch.LogStream(
            f"{name}-log-stream", name=LOG_STREAM, log_group_name=self.log_group.name, opts=child
        )
        self.role, policy = roles.service_role(
            name,
            parent=self,
            name=names.resource("firehose"),
            service="firehose.amazonaws.com",
            source_account=names.account.account_id,
            description="Firehose delivery of analysis records to S3",
            policy=delivery_role_policy(bucket_arn=args.bucket_arn, log_group_arn=self.log_group.arn),
            tags=args.tags,
        )
        self.stream = aws.kinesis.FirehoseDeliveryStream(
            f"{name}-stream",
            name=stream_name,
            destination="extended_s3",
            server_side_encryption=aws.kinesis.FirehoseDeliveryStreamServerSideEncryptionArgs(
                enabled=True, key_type="AWS_OWNED_CMK"
            ),
            extended_s3_configuration=aws.kinesis.FirehoseDeliveryStreamExtendedS3ConfigurationArgs(
                bucket_arn=args.bucket_arn,
                role_arn=self.role.arn,
                prefix=PREFIX,
                error_output_prefix=ERROR_PREFIX,
                buffering_interval=args.buffer_interval_seconds,
                buffering_size=args.buffer_size_mb,
                compression_format=args.compression,
                cloudwatch_logging_options=aws.kinesis.FirehoseDeliveryStreamExtendedS3ConfigurationCloudwatchLoggingOptionsArgs(
                    enabled=True,
                    log_group_name=self.log_group.name,
                    log_stream_name=log_stream.name,
                ),
            ),
            tags=args.tags,
            # The role's policy must exist before Firehose validates its access to the bucket.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs({"streamName": self.stream.name, "streamArn": self.stream.arn})
