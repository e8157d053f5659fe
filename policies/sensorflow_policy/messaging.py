"""Firehose and SNS rules: encryption at rest.

- Firehose: ``serverSideEncryption {enabled: true, keyType: AWS_OWNED_CMK | CUSTOMER_MANAGED_CMK}``
  (Firehose developer guide, "Data protection / server-side encryption"; applies to Direct PUT streams).
- SNS: ``kmsMasterKeyId`` set to a customer managed key. Not the AWS-managed ``alias/aws/sns``: its key
  policy cannot be changed to let cloudwatch.amazonaws.com use it, so alarm notifications to such a topic
  are silently dropped (aws-facts.md; SNS developer guide, sns-key-management.html). The customer key's
  policy must grant CloudWatch kms:Decrypt and kms:GenerateDataKey*.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import Severity

from .base import resource_rule
from .values import get, is_unknown

FIREHOSE: Final = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
TOPIC: Final = "aws:sns/topic:Topic"
KEY_TYPES: Final = frozenset({"AWS_OWNED_CMK", "CUSTOMER_MANAGED_CMK"})


def check_firehose(_type: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    enabled = get(props, "serverSideEncryption", "enabled")
    key_type = get(props, "serverSideEncryption", "keyType", default="AWS_OWNED_CMK")
    if enabled is not True and not is_unknown(enabled):
        yield f"serverSideEncryption.enabled is {enabled!r}; enable encryption at rest."
    elif key_type not in KEY_TYPES and not is_unknown(key_type):
        yield f"serverSideEncryption.keyType is {key_type!r}; use AWS_OWNED_CMK or CUSTOMER_MANAGED_CMK."


def check_topic(_type: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    key = get(props, "kmsMasterKeyId")
    if not key:
        yield "kmsMasterKeyId is not set; encrypt the topic with a customer key CloudWatch may use."
    elif isinstance(key, str) and key.split(":")[-1] == "alias/aws/sns":
        yield (
            "kmsMasterKeyId is the AWS-managed alias/aws/sns, which CloudWatch cannot use: alarm "
            "notifications would be dropped; use a customer key whose policy grants cloudwatch.amazonaws.com."
        )


POLICIES = [
    resource_rule(
        name="firehose-encryption-at-rest",
        description="Firehose delivery streams encrypt data at rest.",
        types={FIREHOSE},
        check=check_firehose,
        severity=Severity.MEDIUM,
        remediation="Set server_side_encryption {enabled: true, key_type: AWS_OWNED_CMK}.",
    ),
    resource_rule(
        name="sns-encryption-at-rest",
        description="SNS topics are encrypted at rest with KMS.",
        types={TOPIC},
        check=check_topic,
        severity=Severity.MEDIUM,
        remediation="Set kms_master_key_id to a customer managed key whose policy allows "
        "cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*.",
    ),
]
