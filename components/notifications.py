"""The stage's alarm topic: an SNS topic encrypted with its own KMS key, and who hears it.

Why a customer managed key with its own policy: SNS server-side encryption needs every publisher to be
allowed ``kms:GenerateDataKey*`` and ``kms:Decrypt`` on the topic's key. CloudWatch is the publisher here,
and the AWS managed key ``alias/aws/sns`` cannot be edited to allow it, so alarms on a topic encrypted
with it fail their action and nobody is paged (docs.aws.amazon.com/sns/latest/dg/sns-key-management.html,
"Enable compatibility between event sources from AWS services and encrypted topics"; AWS re:Post
knowledge-center/cloudwatch-configure-alarm-sns).

The topic policy lets ``cloudwatch.amazonaws.com`` publish only for this account and only from this
stage's own alarms (exact ARNs), and denies any request that is not over TLS. A prod alarm therefore
cannot publish to a dev topic even if someone wired it there by hand: AWS refuses the publish.

Subscriptions come from the stack settings (``alarmEmails``, ``alarmHttpsEndpoints``: a chat or paging
webhook). Email subscriptions stay pending until the recipient confirms them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from spec.naming import Account, Names

CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"


def kms_key_policy(account: Account) -> dict[str, Any]:
    """Key policy of the topic's key: the account administers it; CloudWatch may use it, for this account.

    In a key policy ``Resource: "*"`` means "this key" (the policy is attached to exactly one key).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Without this statement the key becomes unmanageable (KMS default key policy).
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": account.arn("iam", "root", regional=False)},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsEncryptToTopic",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH_PRINCIPAL},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                # Confused-deputy guard: only CloudWatch acting for this account. CloudWatch's calls to KMS
                # for an alarm carry aws:SourceAccount (AWS's MDAA, grantCloudWatchAlarmsTopicAccess:
                # "conditions here are both supported and correct", unlike EventBridge's delivery).
                "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
            },
        ],
    }


def topic_policy(topic_arn: Any, account: Account, alarm_arns: Sequence[str]) -> dict[str, Any]:
    """Topic policy: CloudWatch may publish from the listed alarms of this account; TLS only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StageAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH_PRINCIPAL},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account.account_id},
                    "ArnLike": {"aws:SourceArn": list(alarm_arns)},
                },
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def subscriptions(emails: Sequence[str], https_endpoints: Sequence[str]) -> list[tuple[str, str]]:
    """``(protocol, endpoint)`` for every subscriber, emails first."""
    return [("email", e) for e in emails] + [("https", url) for url in https_endpoints]


# An HTTPS subscriber must confirm the subscription by visiting the SubscribeURL SNS posts to it
# (sns/latest/dg/SendMessageToHttp.prepare.html); paging services such as PagerDuty do so on their own.
# The provider manages an HTTP(S) subscription fully only when told the endpoint confirms itself
# (`endpoint_auto_confirms`, pulumi-aws sns.TopicSubscription: http/https are "partially supported"
# otherwise), and then waits up to `confirmation_timeout_in_minutes` for the confirmed ARN. Email
# subscriptions stay pending until the recipient follows the link SNS mails them (README, Operations).
HTTPS_CONFIRMATION_TIMEOUT_MINUTES: Final = 5


def subscription_confirmation(protocol: str) -> dict[str, Any]:
    """The TopicSubscription arguments about confirmation for one protocol (none for email)."""
    if protocol == "https":
        return {
            "endpoint_auto_confirms": True,
            "confirmation_timeout_in_minutes": HTTPS_CONFIRMATION_TIMEOUT_MINUTES,
        }
    return {}


def subscription_suffix(protocol: str, endpoint: str) -> str:
    """A stable logical-name suffix: reordering the list in a stack file replaces nothing."""
    return f"{protocol}-{hashlib.sha256(endpoint.encode()).hexdigest()[:10]}"


@dataclass(frozen=True, kw_only=True)
class AlarmTopicArgs:
    """Inputs of ``AlarmTopic``."""

    names: Names
    """Physical names, the stage and the account (for the key and topic policies)."""
    tags: Mapping[str, str]
    """Tags of the key and the topic."""
    alarm_arns: Sequence[str]
    """Exact ARNs of the alarms allowed to publish (``alarms.publishing_alarm_arns``)."""
    emails: Sequence[str]
    """``alarmEmails``: email subscribers (each confirms by mail)."""
    https_endpoints: Sequence[str]
    """``alarmHttpsEndpoints``: HTTPS subscribers that confirm themselves."""


class AlarmTopic(pulumi.ComponentResource):
    """KMS key (rotation on) + alias, encrypted SNS topic, topic policy and subscriptions.

    Outputs: ``key`` (the ``aws.kms.Key``), ``topic`` (the ``aws.sns.Topic``), ``topic_arn``,
    ``subscriptions`` (the ``aws.sns.TopicSubscription`` list).
    """

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:notifications:AlarmTopic", name, None, opts)
        names = args.names
        child = pulumi.ResourceOptions(parent=self)

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the {names.resource('alarms')} SNS topic; CloudWatch may use it.",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.json_dumps(kms_key_policy(names.account)),
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{names.resource('alarms')}",
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.topic = aws.sns.Topic(
            f"{name}-topic",
            name=names.resource("alarms"),
            display_name=f"sensorflow {names.stage} alarms",
            kms_master_key_id=self.key.arn,
            tags=args.tags,
            opts=child,
        )
        self.topic_arn: pulumi.Output[str] = self.topic.arn
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=self.topic.arn,
            policy=pulumi.Output.json_dumps(topic_policy(self.topic.arn, names.account, args.alarm_arns)),
            opts=child,
        )
        self.subscriptions = [
            aws.sns.TopicSubscription(
                f"{name}-{subscription_suffix(protocol, endpoint)}",
                topic=self.topic.arn,
                protocol=protocol,
                endpoint=endpoint,
                **subscription_confirmation(protocol),
                opts=child,
            )
            for protocol, endpoint in subscriptions(args.emails, args.https_endpoints)
        ]
        self.register_outputs({"topicArn": self.topic.arn, "keyArn": self.key.arn})
