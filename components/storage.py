"""Storage: the stage's four buckets, each encrypted, private, TLS-only, versioned where data matters.

- ``raw``: raw readings as delivered by devices (``daily-data/<day>/``); data, versioned.
- ``unload``: UNLOAD output and the map's ResultWriter summaries; staging, expires.
- ``athena``: the workgroup's query results and UNLOAD manifests; staging, expires.
- ``analytics``: analysis records (Firehose) and daily KPIs; data, versioned.

SSE-S3 (AES256) rather than SSE-KMS: every reader here (Athena, the Distributed Map's ItemReader,
Firehose) works with it without per-request KMS calls or key grants, and the data is not cross-account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from components.iam import document, join
from components.naming import Names
from components.settings import Settings

DATA: Final = "data"
STAGING: Final = "staging"


@dataclass(frozen=True, kw_only=True)
class BucketSpec:
    """What a bucket holds and how long its objects live."""

    role: str
    data_class: str  # DATA (versioned, kept per raw/analytics retention) or STAGING (expires)
    expire_days: int  # 0 = never
    description: str


def bucket_specs(settings: Settings) -> tuple[BucketSpec, ...]:
    return (
        BucketSpec(role="raw", data_class=DATA, expire_days=settings.raw_retention_days,
                   description="raw sensor readings, one folder per arrival day"),
        BucketSpec(role="unload", data_class=STAGING, expire_days=settings.staging_retention_days,
                   description="Athena UNLOAD output and map run results"),
        BucketSpec(role="athena", data_class=STAGING, expire_days=settings.staging_retention_days,
                   description="Athena query results and UNLOAD manifests"),
        BucketSpec(role="analytics", data_class=DATA, expire_days=settings.analytics_retention_days,
                   description="analysis records and daily KPIs"),
    )  # fmt: skip


def tls_only_policy(bucket_arn: str | pulumi.Output[str]) -> dict:
    """Deny every request that does not use TLS (S3 User Guide: security-best-practices.html)."""
    return document(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, join(bucket_arn, "/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    )


@dataclass(frozen=True, kw_only=True)
class StorageArgs:
    settings: Settings
    names: Names


class Storage(pulumi.ComponentResource):
    """The stage's buckets.

    Outputs: ``buckets`` (role -> ``aws.s3.Bucket``), and ``raw``, ``unload``, ``athena``, ``analytics``.
    """

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:storage:Storage", name, None, opts)
        settings = args.settings
        protect = settings.protect_data_stores
        self.buckets: dict[str, aws.s3.Bucket] = {}
        for spec in bucket_specs(settings):
            self.buckets[spec.role] = self._bucket(name, spec, args.names, settings, protect)
        self.raw = self.buckets["raw"]
        self.unload = self.buckets["unload"]
        self.athena = self.buckets["athena"]
        self.analytics = self.buckets["analytics"]
        self.register_outputs({role: b.bucket for role, b in self.buckets.items()})

    def _bucket(
        self, name: str, spec: BucketSpec, names: Names, settings: Settings, protect: bool
    ) -> aws.s3.Bucket:
        logical = f"{name}-{spec.role}"
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            logical,
            bucket=names.bucket(spec.role),
            # A protected stage keeps its buckets, even on `pulumi destroy`; others may be emptied and removed.
            force_destroy=not protect,
            tags={**settings.tags, "data-class": spec.data_class},
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
        aws.s3.BucketPolicy(
            f"{logical}-tls-only",
            bucket=bucket.bucket,
            policy=pulumi.Output.json_dumps(tls_only_policy(bucket.arn)),
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
                        noncurrent_days=settings.noncurrent_version_retention_days
                    ),
                )
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{logical}-lifecycle", bucket=bucket.bucket, rules=rules, opts=child
        )
        return bucket
