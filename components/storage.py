"""Storage: the stage's four data buckets, each encrypted, private, TLS-only, versioned where data matters,
and the access-log bucket that receives their S3 server access logs.

- ``raw``: raw readings as delivered by devices (``daily-data/<day>/``); data, versioned.
- ``unload``: UNLOAD output and the map's ResultWriter summaries; staging, expires.
- ``athena``: the workgroup's query results and UNLOAD manifests; staging, expires.
- ``analytics``: analysis records (Firehose) and daily KPIs; data, versioned.
- ``access-logs``: server access logs of the four, under ``<source bucket name>/``; expires after
  ``accessLogRetentionDays``. It does not log to itself (that would log its own log deliveries).

SSE-S3 (AES256) rather than SSE-KMS: every reader here (Athena, the Distributed Map's ItemReader,
Firehose) works with it without per-request KMS calls or key grants, and the data is not cross-account.
For the access-log bucket SSE-S3 is the documented choice: S3 server access logging supports SSE-S3 as the
destination bucket's default encryption, not SSE-KMS
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from spec.iam import document, join
from spec.naming import Names

DATA: Final = "data"
STAGING: Final = "staging"
# The data-class tag of the access-log bucket; the CrossGuard pack exempts only this bucket from having
# server access logging itself, and holds its policy to granting the log delivery service alone.
ACCESS_LOGS: Final = "access-logs"
ACCESS_LOG_ROLE: Final = "access-logs"
LOGGING_SERVICE: Final = "logging.s3.amazonaws.com"


@dataclass(frozen=True, kw_only=True)
class BucketSpec:
    """What a bucket holds and how long its objects live."""

    role: str
    data_class: str  # DATA (versioned, kept per raw/analytics retention), STAGING or ACCESS_LOGS (expire)
    expire_days: int  # 0 = never
    description: str


def bucket_specs(args: StorageArgs) -> tuple[BucketSpec, ...]:
    return (
        BucketSpec(role="raw", data_class=DATA, expire_days=args.raw_retention_days,
                   description="raw sensor readings, one folder per arrival day"),
        BucketSpec(role="unload", data_class=STAGING, expire_days=args.staging_retention_days,
                   description="Athena UNLOAD output and map run results"),
        BucketSpec(role="athena", data_class=STAGING, expire_days=args.staging_retention_days,
                   description="Athena query results and UNLOAD manifests"),
        BucketSpec(role="analytics", data_class=DATA, expire_days=args.analytics_retention_days,
                   description="analysis records and daily KPIs"),
    )  # fmt: skip


def access_log_spec(args: StorageArgs) -> BucketSpec:
    """The access-log bucket: not versioned, because S3 writes each log object once under a key of its own
    and never overwrites it; versions would only keep what the expiry rule deletes."""
    return BucketSpec(role=ACCESS_LOG_ROLE, data_class=ACCESS_LOGS, expire_days=args.access_log_retention_days,
                      description="S3 server access logs of the stage's buckets")  # fmt: skip


def log_prefix(source_bucket: str) -> str:
    """Where a source bucket's access logs go in the access-log bucket: ``<source bucket name>/``."""
    return f"{source_bucket}/"


def tls_only_statement(bucket_arn: str | pulumi.Output[str]) -> dict:
    """Deny every request that does not use TLS (S3 User Guide: security-best-practices.html)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, join(bucket_arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_only_policy(bucket_arn: str | pulumi.Output[str]) -> dict:
    """A data bucket's policy: TLS only."""
    return document([tls_only_statement(bucket_arn)])


def access_log_policy(
    log_bucket_arn: str | pulumi.Output[str],
    sources: Sequence[tuple[str, str | pulumi.Output[str]]],
    account_id: str,
) -> dict:
    """The access-log bucket's policy: TLS only, and the S3 logging service may put objects, each source
    bucket only under its own prefix and only for this account's bucket.

    One statement per source bucket, as the S3 User Guide's "Permissions for log delivery" documents it
    (enable-server-access-logging.html#grant-log-delivery-permissions-general): principal
    ``logging.s3.amazonaws.com``, ``s3:PutObject`` on ``<log bucket ARN>/<prefix>*``, ``ArnLike``
    ``aws:SourceArn`` the source bucket's ARN and ``StringEquals`` ``aws:SourceAccount`` its account.
    ``sources`` is ``(source bucket name, source bucket ARN)`` pairs.
    """
    if not sources:
        raise ValueError("access_log_policy: no source buckets; the log bucket would grant nothing")
    grants = [
        {
            "Sid": f"S3ServerAccessLogs{index}",
            "Effect": "Allow",
            "Principal": {"Service": LOGGING_SERVICE},
            "Action": "s3:PutObject",
            "Resource": join(log_bucket_arn, f"/{log_prefix(name)}*"),
            "Condition": {
                "ArnLike": {"aws:SourceArn": arn},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        }
        for index, (name, arn) in enumerate(sources)
    ]
    return document([tls_only_statement(log_bucket_arn), *grants])


@dataclass(frozen=True, kw_only=True)
class StorageArgs:
    """Inputs of ``Storage``; each retention is the stack setting of that name (``spec.settings.SPECS``)."""

    names: Names
    """Physical bucket names and the account (the log bucket's policy names it)."""
    tags: Mapping[str, str]
    """Tags of every bucket (each also gets its ``data-class``)."""
    protect: bool
    """``protectDataStores``: protect the buckets and keep them when the stack is destroyed."""
    raw_retention_days: int
    """Days raw readings are kept; 0 keeps them forever."""
    analytics_retention_days: int
    """Days analysis records and KPIs are kept; 0 keeps them forever."""
    staging_retention_days: int
    """Days UNLOAD output and query results are kept."""
    noncurrent_version_retention_days: int
    """Days overwritten object versions are kept in the versioned (data) buckets."""
    access_log_retention_days: int
    """Days the access-log bucket keeps its logs."""


class Storage(pulumi.ComponentResource):
    """The stage's buckets.

    Outputs: ``buckets`` (role -> ``aws.s3.Bucket``: the data buckets), ``raw``, ``unload``, ``athena``,
    ``analytics``, and ``access_logs`` (the bucket their server access logs go to).
    """

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:storage:Storage", name, None, opts)
        names = args.names
        self.buckets: dict[str, aws.s3.Bucket] = {}
        for spec in bucket_specs(args):
            self.buckets[spec.role], _ = self._bucket(name, spec, args)
        # Names are deterministic (Names.bucket), so the prefixes are plain strings; the ARNs in the log
        # bucket's policy come from the buckets' own outputs.
        sources = [(names.bucket(role), bucket.arn) for role, bucket in self.buckets.items()]
        self.access_logs, log_policy = self._bucket(
            name,
            access_log_spec(args),
            args,
            policy=lambda arn: access_log_policy(arn, sources, names.account.account_id),
            policy_name="policy",
        )
        for role, bucket in self.buckets.items():
            # Server access logging (S3 User Guide: ServerLogs.html). Logs are best-effort and arrive
            # within hours; the bucket's policy must admit the logging service first, hence depends_on.
            aws.s3.BucketLogging(
                f"{name}-{role}-access-logging",
                bucket=bucket.bucket,
                target_bucket=self.access_logs.bucket,
                target_prefix=log_prefix(names.bucket(role)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[log_policy]),
            )
        self.raw = self.buckets["raw"]
        self.unload = self.buckets["unload"]
        self.athena = self.buckets["athena"]
        self.analytics = self.buckets["analytics"]
        self.register_outputs(
            {**{role: b.bucket for role, b in self.buckets.items()}, ACCESS_LOG_ROLE: self.access_logs.bucket}
        )

    def _bucket(
        self,
        name: str,
        spec: BucketSpec,
        args: StorageArgs,
        *,
        policy: Callable[[pulumi.Output[str]], dict] = tls_only_policy,
        policy_name: str = "tls-only",
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """A bucket with its baseline; ``policy(bucket ARN)`` is its bucket policy document (data)."""
        logical = f"{name}-{spec.role}"
        protect = args.protect
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            logical,
            bucket=args.names.bucket(spec.role),
            # A protected stage keeps its buckets, even on `pulumi destroy`; others may be emptied and removed.
            force_destroy=not protect,
            tags={**args.tags, "data-class": spec.data_class},
            opts=pulumi.ResourceOptions(parent=self, protect=protect, retain_on_delete=protect),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{logical}-encryption",
            bucket=bucket.bucket,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                )
            ],
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{logical}-public-access",
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{logical}-ownership",
            bucket=bucket.bucket,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        bucket_policy = aws.s3.BucketPolicy(
            f"{logical}-{policy_name}",
            bucket=bucket.bucket,
            policy=pulumi.Output.json_dumps(policy(bucket.arn)),
            # S3 rejects a bucket policy while the public-access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        rules = [
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="abort-incomplete-uploads",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ]
        if spec.expire_days:
            rules.append(
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id=f"expire-after-{spec.expire_days}-days",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=spec.expire_days),
                )
            )
        if spec.data_class == DATA:
            aws.s3.BucketVersioning(
                f"{logical}-versioning",
                bucket=bucket.bucket,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                opts=child,
            )
            rules.append(
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_retention_days
                    ),
                )
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{logical}-lifecycle", bucket=bucket.bucket, rules=rules, opts=child
        )
        return bucket, bucket_policy
