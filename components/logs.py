"""The log group every service of a stage writes to: named as that service expects, with the stage's
retention and tags (the policy pack's ``logs-retention-set`` and ``lambda-log-retention`` rules)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def log_group(
    logical: str, *, name: str, retention_days: int, tags: Mapping[str, str], parent: pulumi.Resource
) -> aws.cloudwatch.LogGroup:
    """``<logical>-logs``, a child of ``parent``, created by the program (so no role needs CreateLogGroup)."""
    return aws.cloudwatch.LogGroup(
        f"{logical}-logs",
        name=name,
        retention_in_days=retention_days,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
