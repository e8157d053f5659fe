"""The one allowlist of IAM actions that may be granted on ``Resource: "*"``.

These actions support no resource-level permissions: AWS evaluates them only against ``"*"``, so a
statement naming an ARN for them simply does not work. Everything else must name exact ARNs.

Sources (Service Authorization Reference, "Actions, resources, and condition keys"; Step Functions
developer guide, "IAM policies for logging" and "X-Ray"):
- AWS X-Ray: PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets have no
  resource types.
- CloudWatch Logs vended-log delivery used by Step Functions logging: CreateLogDelivery, GetLogDelivery,
  UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies,
  DescribeLogGroups (docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html).
- CloudWatch PutMetricData has no resource type; scope it with the ``cloudwatch:namespace`` condition key.

The platform keeps its own copy (``spec/iam.py`` ``RESOURCE_STAR_ACTIONS``) so the program does not
depend on the pack; tests/policies keeps the two equal.
"""

from __future__ import annotations

from typing import Final

RESOURCE_STAR_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "cloudwatch:PutMetricData",
    }
)

# Allowlisted actions that are only acceptable on "*" with a condition narrowing them: action -> the
# condition key that must appear in the statement's Condition block.
REQUIRED_CONDITION_KEYS: Final[dict[str, str]] = {
    "cloudwatch:PutMetricData": "cloudwatch:namespace",
}

# IAM action names are case-insensitive (IAM User Guide, "IAM JSON policy elements: Action").
_LOWER: Final = {action.lower(): action for action in RESOURCE_STAR_ACTIONS}


def canonical(action: str) -> str | None:
    """The allowlisted spelling of ``action`` (any case), or None when it is not allowlisted."""
    return _LOWER.get(action.lower())
