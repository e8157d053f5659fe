"""Every rule, cdk-nag style: a compliant and a non-compliant case, props wrapped as the runtime wraps them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy

from tests.policies import fixtures as fx
from tests.policies.runtime import UNKNOWN, policy, resource_violations, sensorflow_policy, stack_violations

GOOD = fx.good_stack("prod")
GOOD_DEV = fx.good_stack("dev", owns_alarms=False)
PROD = {"stage": "prod"}


def props_of(name: str, stack: list[Any] = GOOD) -> dict[str, Any]:
    return fx.find(stack, name)[2]


def with_props(name: str, **changes: Any) -> dict[str, Any]:
    return fx.find(fx.replace(GOOD, name, **changes), name)[2]


def role_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"role": "r", "policy": fx.doc(*statements)}


ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
ALLOW_S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}

# rule -> (type, compliant props, non-compliant props, config, words the violation must contain)
RESOURCE_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = {
    "iam-no-wildcard-actions": (
        ROLE_POLICY,
        props_of("workflow-policy"),
        role_policy(ALLOW_S3_ALL),
        {},
        "'s3:*'",
    ),
    "iam-no-resource-star": (
        ROLE_POLICY,
        props_of("workflow-policy"),
        role_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}),
        {},
        "'s3:GetObject' on Resource '*'",
    ),
    "iam-no-not-action-not-resource": (
        ROLE_POLICY,
        props_of("workflow-policy"),
        role_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}),
        {},
        "NotAction",
    ),
    "iam-no-broad-managed-policies": (
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"},
        {},
        "AmazonS3FullAccess",
    ),
    "iam-pass-role-scoped": (
        ROLE_POLICY,
        props_of("workflow-policy"),
        role_policy(
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::123456789012:role/*"}
        ),
        {},
        "iam:PassedToService",
    ),
    "iam-trust-one-service": (
        ROLE,
        props_of("workflow-role"),
        {
            "assumeRolePolicy": fx.doc(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["states.amazonaws.com", "lambda.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            )
        },
        {},
        "2 service principals",
    ),
    "s3-no-public-access": (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        props_of("raw-pab"),
        with_props("raw-pab", blockPublicPolicy=False, restrictPublicBuckets=False),
        {},
        "blockPublicPolicy is False",
    ),
    "sfn-logging-enabled": (
        "aws:sfn/stateMachine:StateMachine",
        props_of("workflow"),
        with_props("workflow", loggingConfiguration={"level": "OFF"}),
        {},
        "'OFF'",
    ),
    "sfn-tracing-enabled": (
        "aws:sfn/stateMachine:StateMachine",
        props_of("workflow"),
        with_props("workflow", tracingConfiguration=None),
        {},
        "enable X-Ray",
    ),
    "sfn-distributed-map-guardrails": (
        "aws:sfn/stateMachine:StateMachine",
        with_props("workflow", definition=json.dumps(fx.definition("prod", nested=True))),
        with_props("workflow", definition=json.dumps(fx.definition("prod", max_concurrency=0, nested=True))),
        {},
        "MaxConcurrency 0",
    ),
    "lambda-reserved-concurrency": (
        "aws:lambda/function:Function",
        props_of("detector"),
        with_props("detector", reservedConcurrentExecutions=-1),
        {},
        "reservedConcurrentExecutions is -1",
    ),
    "lambda-supported-runtime": (
        "aws:lambda/function:Function",
        props_of("detector"),
        with_props("detector", runtime="python3.8"),
        {},
        "'python3.8'",
    ),
    "logs-retention-set": (
        "aws:cloudwatch/logGroup:LogGroup",
        props_of("detector-logs"),
        with_props("detector-logs", retentionInDays=None),
        {},
        "keeps logs forever",
    ),
    "firehose-encryption-at-rest": (
        "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
        props_of("delivery"),
        with_props("delivery", serverSideEncryption={"enabled": False}),
        {},
        "enabled is False",
    ),
    "sns-encryption-at-rest": (
        "aws:sns/topic:Topic",
        props_of("alarms"),
        with_props("alarms", kmsMasterKeyId=None),
        {},
        "kmsMasterKeyId",
    ),
    "alarm-treat-missing-data": (
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        props_of("executions-failed"),
        with_props("executions-failed", treatMissingData=None),
        {},
        "treatMissingData is None",
    ),
    "tags-stage-owner": (
        "aws:s3/bucket:Bucket",
        props_of("raw"),
        with_props("raw", tags={"stage": "prod"}),
        PROD,
        "missing tag(s) owner",
    ),
}

DEV_TOPIC = f"arn:aws:sns:{fx.REGION}:{fx.ACCOUNT}:sensorflow-dev-alarms"

# rule -> (compliant stack, non-compliant stack, config, words the violation must contain)
STACK_CASES: dict[str, tuple[list[Any], list[Any], dict[str, Any], str]] = {
    "s3-bucket-public-access-block": (GOOD, fx.without(GOOD, "unload-pab"), {}, "sensorflow-prod-unload"),
    "s3-bucket-encryption": (GOOD, fx.without(GOOD, "raw-sse"), {}, "no default encryption"),
    "s3-bucket-tls-only": (
        GOOD,
        fx.replace(
            GOOD,
            "raw-tls",
            policy=fx.doc({"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "*"}),
        ),
        {},
        "aws:SecureTransport",
    ),
    "s3-data-bucket-versioning": (GOOD, fx.without(GOOD, "raw-versioning"), PROD, "not versioned"),
    "s3-bucket-access-logging": (
        GOOD,
        fx.without(GOOD, "unload-logging"),
        {},
        "bucket sensorflow-prod-unload-123456789012-eu-west-1 has no BucketLogging",
    ),
    "s3-access-log-bucket-policy": (
        GOOD,
        fx.replace(
            GOOD,
            "access-logs-tls",
            policy=fx.doc(
                fx.log_grant("prod", "raw"),
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["logging.s3.amazonaws.com", "firehose.amazonaws.com"]},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{fx.bucket_name('prod', 'access-logs')}/*",
                },
            ),
        ),
        {},
        "grants logging.s3.amazonaws.com only",
    ),
    "sfn-map-concurrency-within-lambda-reserve": (
        GOOD,
        fx.replace(GOOD, "workflow", definition=json.dumps(fx.definition("prod", max_concurrency=50))),
        {},
        "reserved concurrency 10",
    ),
    "lambda-log-retention": (GOOD, fx.without(GOOD, "detector-logs"), {}, "does not own"),
    "observability-map-run-alarms": (
        GOOD,
        fx.without(GOOD, "ApproximateMapRunBacklogSize"),
        {"ownsAccountAlarms": True},
        "ApproximateMapRunBacklogSize",
    ),
    "observability-alarm-topics-match-stage": (
        GOOD,
        fx.replace(GOOD, "ApproximateOpenMapRunCount", alarmActions=[DEV_TOPIC]),
        PROD,
        "sensorflow-dev-alarms",
    ),
}


def test_every_rule_has_a_compliant_and_a_non_compliant_case() -> None:
    names = {p.name for p in sensorflow_policy.all_policies()}
    assert names, "the pack has no policies"
    assert names == set(RESOURCE_CASES) | set(STACK_CASES)


def test_every_rule_carries_its_metadata() -> None:
    policies = sensorflow_policy.all_policies()
    assert policies
    for p in policies:
        assert p.description, p.name
        assert p.severity is not None, p.name
        assert p.remediation_steps, p.name


@pytest.mark.parametrize("name", sorted(RESOURCE_CASES))
def test_resource_rule(name: str) -> None:
    type_, good, bad, config, expected = RESOURCE_CASES[name]
    assert resource_violations(name, type_, good, config) == []
    found = resource_violations(name, type_, bad, config)
    assert found, f"{name} let a non-compliant {type_} through"
    assert any(expected in message for message in found), found


@pytest.mark.parametrize("key", ["alias/aws/sns", "arn:aws:kms:eu-west-1:111111111111:alias/aws/sns"])
def test_sns_rule_refuses_the_aws_managed_key_cloudwatch_cannot_use(key: str) -> None:
    found = resource_violations(
        "sns-encryption-at-rest", "aws:sns/topic:Topic", with_props("alarms", kmsMasterKeyId=key)
    )
    assert any("alias/aws/sns" in message for message in found), found


@pytest.mark.parametrize("name", sorted(STACK_CASES))
def test_stack_rule(name: str) -> None:
    good, bad, config, expected = STACK_CASES[name]
    assert stack_violations(name, good, config) == []
    found = stack_violations(name, bad, config)
    assert found, f"{name} let a non-compliant stack through"
    assert any(expected in message for message, _ in found), found


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_the_compliant_stage_passes_every_rule(stage: str) -> None:
    stack = GOOD if stage == "prod" else GOOD_DEV
    config = {"stage": stage, "ownsAccountAlarms": stage == "prod"}
    checked = 0
    for p in sensorflow_policy.all_policies():
        if isinstance(p, ResourceValidationPolicy):
            for type_, _, props in stack:
                assert resource_violations(p.name, type_, props, config) == [], (p.name, type_)
                checked += 1
        else:
            assert stack_violations(p.name, stack, config) == [], p.name
            checked += 1
    assert checked > 100


# --- details the table does not show ----------------------------------------------------------------


def test_unknown_resource_arn_keeps_the_action_checks() -> None:
    """At preview an output ARN is the unknown sentinel: wildcard actions are still judged from strings."""
    props = role_policy({"Effect": "Allow", "Action": ["s3:*", "iam:PassRole"], "Resource": UNKNOWN})
    assert any("'s3:*'" in m for m in resource_violations("iam-no-wildcard-actions", ROLE_POLICY, props))
    # the unknown ARN is not '*'...
    assert resource_violations("iam-no-resource-star", ROLE_POLICY, props) == []
    # ...nor a reason to drop the PassedToService requirement
    assert any(
        "PassedToService" in m for m in resource_violations("iam-pass-role-scoped", ROLE_POLICY, props)
    )


def test_unknown_sibling_property_does_not_silence_the_rule() -> None:
    """An unknown `role` (a name not yet known) must not stop the rule reading `policy`."""
    props = {"role": UNKNOWN, "policy": fx.doc(ALLOW_S3_ALL)}
    assert resource_violations("iam-no-wildcard-actions", ROLE_POLICY, props)


def test_a_wholly_unknown_document_is_left_to_the_runtime() -> None:
    from pulumi_policy.proxy import UnknownValueError

    with pytest.raises(UnknownValueError):
        resource_violations("iam-no-wildcard-actions", ROLE_POLICY, {"role": "r", "policy": UNKNOWN})


def test_resource_star_allowlist_needs_the_namespace_condition() -> None:
    props = role_policy({"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"})
    assert any(
        "cloudwatch:namespace" in m for m in resource_violations("iam-no-resource-star", ROLE_POLICY, props)
    )


def test_deny_statements_are_not_least_privilege_violations() -> None:
    props = role_policy({"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert resource_violations("iam-no-wildcard-actions", ROLE_POLICY, props) == []
    assert resource_violations("iam-no-resource-star", ROLE_POLICY, props) == []


def test_trust_policy_rejects_account_principals() -> None:
    props = {
        "assumeRolePolicy": fx.doc({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    }
    assert resource_violations("iam-trust-one-service", ROLE, props)


def test_a_policy_that_is_not_json_is_a_violation_not_a_crash() -> None:
    found = resource_violations("iam-no-wildcard-actions", ROLE_POLICY, {"role": "r", "policy": "{not json"})
    assert found == ["policy is not valid JSON (Expecting property name enclosed in double quotes at line 1)"]


def test_map_without_retry_or_tolerance_is_reported() -> None:
    definition = fx.definition("prod")
    state = definition["States"]["Process"]
    del state["ToleratedFailurePercentage"]
    del state["ItemProcessor"]["States"]["Detect"]["Retry"]
    found = resource_violations(
        "sfn-distributed-map-guardrails",
        "aws:sfn/stateMachine:StateMachine",
        {"definition": json.dumps(definition)},
    )
    assert any("Tolerated" in m for m in found), found
    assert any("Retry" in m for m in found), found


def test_map_invoking_a_function_outside_the_stack_is_reported() -> None:
    other = json.dumps(fx.definition("prod")).replace("sensorflow-prod-detector", "someone-else")
    bad = fx.replace(GOOD, "workflow", definition=other)
    found = stack_violations("sfn-map-concurrency-within-lambda-reserve", bad)
    assert any("not a function of this stack" in m for m, _ in found), found


def test_a_stack_that_does_not_own_the_account_alarms_must_not_create_them() -> None:
    found = stack_violations("observability-map-run-alarms", GOOD, {"ownsAccountAlarms": False})
    assert len(found) == 2, found
    assert all(u for _, u in found), found  # each names the alarm's URN


LOG_BUCKET = fx.bucket_name("prod", "access-logs")


def _log_policy(*statements: dict[str, Any]) -> list[Any]:
    return fx.replace(GOOD, "access-logs-tls", policy=fx.doc(*statements))


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        # logging into a data bucket instead of the access-log bucket
        (
            fx.replace(GOOD, "raw-logging", targetBucket=fx.bucket_name("prod", "unload")),
            "logs to ['sensorflow-prod-unload-123456789012-eu-west-1']",
        ),
        # logging into itself
        (fx.replace(GOOD, "raw-logging", targetBucket=fx.bucket_name("prod", "raw")), "must log to"),
        # no access-log bucket at all: the tag is what marks it
        (fx.replace(GOOD, "access-logs", tags=fx.tags("prod", **{"data-class": "staging"})), "there is none"),
        # the access-log bucket logging into itself
        (
            [
                *GOOD,
                (
                    "aws:s3/bucketLogging:BucketLogging",
                    "self-logging",
                    {"bucket": LOG_BUCKET, "targetBucket": LOG_BUCKET, "targetPrefix": "self/"},
                ),
            ],
            "has server access logging itself",
        ),
        # a data bucket tagged as an access-log bucket to dodge the rule: nothing logs to it
        (
            fx.replace(GOOD, "raw", tags=fx.tags("prod", **{"data-class": "access-logs"})),
            "sensorflow-prod-raw-123456789012-eu-west-1 is tagged data-class=access-logs but no bucket",
        ),
    ],
)
def test_access_logging_rejects(stack: list[Any], expected: str) -> None:
    found = stack_violations("s3-bucket-access-logging", stack)
    assert any(expected in message for message, _ in found), found
    assert all(u for _, u in found), found


def test_access_logging_accepts_the_deprecated_inline_form_and_an_unknown_target() -> None:
    inline = fx.replace(fx.without(GOOD, "raw-logging"), "raw", logging={"targetBucket": LOG_BUCKET})
    assert stack_violations("s3-bucket-access-logging", inline) == []
    unknown = fx.replace(GOOD, "raw-logging", targetBucket=UNKNOWN)
    assert stack_violations("s3-bucket-access-logging", unknown) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Principal": "*"}, 'allows "*"'),
        ({"Principal": {"AWS": "arn:aws:iam::123456789012:root"}}, "grants logging.s3.amazonaws.com only"),
        ({"Action": ["s3:PutObject", "s3:GetObject"]}, "needs s3:PutObject only"),
        ({"Condition": {"StringEquals": {"aws:SourceAccount": fx.ACCOUNT}}}, "without aws:SourceArn"),
        ({"Condition": None}, "without aws:SourceArn and aws:SourceAccount"),
    ],
)
def test_access_log_bucket_policy_rejects(change: dict[str, Any], expected: str) -> None:
    grant = {**fx.log_grant("prod", "raw"), **change}
    grant = {k: v for k, v in grant.items() if v is not None}
    found = stack_violations(
        "s3-access-log-bucket-policy", _log_policy(fx.log_grant("prod", "unload"), grant)
    )
    assert any(expected in message for message, _ in found), found
    assert all(u and "access-logs-tls" in u for _, u in found), found  # names the policy


def test_access_log_bucket_without_any_grant_is_reported() -> None:
    deny = json.loads(fx.find(GOOD, "raw-tls")[2]["policy"])["Statement"]
    found = stack_violations("s3-access-log-bucket-policy", _log_policy(*deny))
    assert any("no bucket policy statement granting" in message for message, _ in found), found


def test_versioning_is_not_required_in_dev() -> None:
    assert (
        stack_violations(
            "s3-data-bucket-versioning", fx.without(GOOD_DEV, "raw-versioning"), {"stage": "dev"}
        )
        == []
    )


def test_stage_falls_back_to_the_stage_tag() -> None:
    """Without a config the stage comes from the resources' tags, so prod still rejects a dev topic."""
    bad = STACK_CASES["observability-alarm-topics-match-stage"][1]
    assert stack_violations("observability-alarm-topics-match-stage", bad, {})


def test_policy_lookup_names_the_missing_rule() -> None:
    with pytest.raises(KeyError, match="no policy 'nope'"):
        policy("nope")
