"""IAM documents built as data, with exact ARNs derived from the resources they govern.

Each builder returns a policy document (a dict whose leaves may be ``pulumi.Output``s); components
serialise it with ``pulumi.Output.json_dumps``. Tests call the same builders with plain strings and lint
the result with parliament and with ``wildcard_problems``.

The few actions that accept nothing but ``"Resource": "*"`` live in ``RESOURCE_STAR_ACTIONS``, the one
allowlist: nothing else may use a wildcard resource (the policy pack enforces the same list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pulumi

# Actions that only accept Resource "*" (Service Authorization Reference: no resource types listed).
# X-Ray tracing for Step Functions (docs: step-functions/latest/dg/xray-iam.html); CloudWatch Logs vended
# log delivery used by Step Functions logging (cw-logs.html#cloudwatch-iam-policy); PutMetricData, scoped
# by a cloudwatch:namespace condition wherever it is granted.
RESOURCE_STAR_ACTIONS: Final = frozenset(
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

Arn = str | pulumi.Output[str]


def join(arn: Arn, suffix: str) -> Arn:
    """``arn + suffix`` for a plain string or an Output (object ARNs under a bucket, log streams...)."""
    if isinstance(arn, pulumi.Output):
        return pulumi.Output.concat(arn, suffix)
    return arn + suffix


DOCS: Final = "https://docs.aws.amazon.com/"


class Statement(dict[str, Any]):
    """An IAM statement: serialises as the plain dict it is, and also carries ``source``, the AWS page that
    documents the API call needing it (rendered into docs/security.md, never into the policy)."""

    source: str


def statement(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[Arn],
    *,
    source: str,
    conditions: Mapping[str, Any] | None = None,
) -> Statement:
    """One Allow statement. Actions are sorted so documents diff cleanly between stages. ``source`` is the
    documentation page (under docs.aws.amazon.com) that says which call needs these actions; every grant
    names one, so every right in every role can be traced to a documented need."""
    if not actions or not resources:
        raise ValueError(f"statement {sid}: needs at least one action and one resource")
    if not source.startswith(DOCS):
        raise ValueError(f"statement {sid}: source must be a page under {DOCS}, got {source!r}")
    stmt = Statement(Sid=sid, Effect="Allow", Action=sorted(actions), Resource=list(resources))
    if conditions:
        stmt["Condition"] = dict(conditions)
    stmt.source = source
    return stmt


def document(statements: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# The condition key each service documents for its role's trust policy, where it is not aws:SourceAccount:
# Firehose documents sts:ExternalId equal to the account id (firehose/latest/dev/controlling-access.html,
# "Grant Firehose access to an Amazon S3 destination"), not aws:SourceAccount.
ACCOUNT_CONDITION_KEYS: Final = {"firehose.amazonaws.com": "sts:ExternalId"}

# The page each trusted service's condition comes from. Step Functions and Scheduler document aws:SourceAccount
# with aws:SourceArn for their roles; Firehose documents sts:ExternalId. Lambda's developer guide shows the
# execution role's trust without a condition; aws:SourceAccount is the IAM User Guide's general guard for
# service roles ("The confused deputy problem"), used for Lambda in AWS's own samples (aws/
# agent-toolkit-for-aws, deploying-custom-domain-rest-api/scripts/lambda-trust-policy.json).
TRUST_SOURCES: Final = {
    "states.amazonaws.com": DOCS + "step-functions/latest/dg/procedure-create-iam-role.html",
    "firehose.amazonaws.com": DOCS + "firehose/latest/dev/controlling-access.html",
    "lambda.amazonaws.com": DOCS + "IAM/latest/UserGuide/confused-deputy.html",
    "scheduler.amazonaws.com": DOCS + "scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role",
}


def trust_policy(
    service: str, *, source_account: str, source_arn: Arn | Sequence[Arn] | None = None
) -> dict[str, Any]:
    """Trust one AWS service principal, only on behalf of this account (and resources, when given), which
    closes the confused-deputy hole (docs: IAM User Guide, "The confused deputy problem"). The account is
    matched with the key the service documents (``ACCOUNT_CONDITION_KEYS``; aws:SourceAccount otherwise);
    several source ARNs are alternatives (a condition key with a list of values matches any of them)."""
    if service not in TRUST_SOURCES:
        raise ValueError(f"trust policy for {service}: no documented condition in TRUST_SOURCES")
    key = ACCOUNT_CONDITION_KEYS.get(service, "aws:SourceAccount")
    condition: dict[str, Any] = {"StringEquals": {key: source_account}}
    if source_arn is not None:
        arns = [source_arn] if isinstance(source_arn, str | pulumi.Output) else list(source_arn)
        condition["ArnLike"] = {"aws:SourceArn": arns[0] if len(arns) == 1 else arns}
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ]
    )


def wildcard_problems(doc: Mapping[str, Any]) -> list[str]:
    """Wildcards the platform never allows in a grant: ``*``/``service:*`` actions, ``Resource: "*"``
    outside the allowlist, ``NotAction``/``NotResource``. Deny statements (such as the TLS-only bucket
    policy's ``s3:*``) are meant to be broad and are not checked. One message per problem."""
    problems = []
    for stmt in doc.get("Statement", []):
        sid = stmt.get("Sid", "<no Sid>")
        if stmt.get("Effect") == "Deny":
            continue
        for key in ("NotAction", "NotResource"):
            if key in stmt:
                problems.append(f"{sid}: uses {key}")
        actions = stmt.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        resources = stmt.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else list(resources)
        for action in actions:
            if action == "*" or action.endswith(":*"):
                problems.append(f"{sid}: wildcard action {action}")
        if "*" in resources:
            outside = sorted(a for a in actions if a not in RESOURCE_STAR_ACTIONS)
            if outside:
                problems.append(f"{sid}: Resource '*' for {outside}, which accept exact ARNs")
    return problems
