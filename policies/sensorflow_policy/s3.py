"""S3 rules: every bucket encrypted, shielded from public access and TLS-only; data buckets versioned in prod;
every bucket but the access-log bucket logs its requests to the stack's access-log bucket, whose policy
admits the S3 log delivery service and nobody else.

pulumi-aws v7 configures a bucket through separate resources (BucketServerSideEncryptionConfiguration,
BucketPublicAccessBlock, BucketPolicy, BucketVersioning), each naming the bucket in its ``bucket`` prop.
The stack rules join them to the Bucket by that name, so a bucket whose satellite is missing is caught
even though no single resource is wrong. The ``V2`` tokens are the deprecated aliases of the same types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import Severity

from .base import STAGE_PROPERTY, Stack, bucket_name, resource_rule, stack_rule
from .iam import statements
from .values import as_list, get, is_unknown, json_document, tags_of

BUCKET: Final = "aws:s3/bucket:Bucket"
BUCKET_TYPES: Final = (BUCKET, "aws:s3/bucketV2:BucketV2")
SSE_TYPES: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
PAB_TYPE: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY_TYPE: Final = "aws:s3/bucketPolicy:BucketPolicy"
VERSIONING_TYPES: Final = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
ACL_TYPES: Final = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
LOGGING_TYPES: Final = (
    "aws:s3/bucketLogging:BucketLogging",
    "aws:s3/bucketLoggingV2:BucketLoggingV2",
)

PAB_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
PUBLIC_ACLS: Final = frozenset({"public-read", "public-read-write", "authenticated-read"})
SSE_ALGORITHMS: Final = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
DATA_CLASS_TAG: Final = "data-class"
# The access-log bucket is the one tagged data-class=access-logs (components/storage.py ACCESS_LOGS).
ACCESS_LOGS_CLASS: Final = "access-logs"
LOGGING_SERVICE: Final = "logging.s3.amazonaws.com"
# Conditions the S3 User Guide's "Permissions for log delivery" puts on the grant, against the confused
# deputy (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
LOG_GRANT_CONDITION_KEYS: Final = ("aws:SourceArn", "aws:SourceAccount")


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))


# --- resource rules ---------------------------------------------------------------------------------


def check_no_public_access(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if type_ == PAB_TYPE:
        for flag in PAB_FLAGS:
            value = get(props, flag)
            if value is not True and not is_unknown(value):
                yield f"{flag} is {value!r}; all four public-access-block settings must be true."
    elif type_ in (*BUCKET_TYPES, *ACL_TYPES):
        acl = get(props, "acl")
        if isinstance(acl, str) and acl in PUBLIC_ACLS:
            yield f"canned ACL {acl!r} opens the bucket; leave ACLs disabled (BucketOwnerEnforced)."
    elif type_ == POLICY_TYPE:
        raw = get(props, "policy")
        if isinstance(raw, str) and not is_unknown(raw):
            for label, stmt in statements(json_document(raw, "policy")):
                if stmt.get("Effect") == "Allow" and _is_everyone(stmt.get("Principal")):
                    yield f"bucket policy {label} allows Principal '*': grant named roles only."


# --- stack rules ----------------------------------------------------------------------------------


def _buckets(stack: Stack) -> Iterator[tuple[str, Any]]:
    for bucket in stack.of_type(*BUCKET_TYPES):
        name = bucket_name(bucket)
        if name is not None:
            yield name, bucket


def check_encryption(stack: Stack, _config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    configs = stack.by_bucket(*SSE_TYPES)
    for name, bucket in _buckets(stack):
        rules = [rule for c in configs.get(name, []) for rule in as_list(get(c.props, "rules"))]
        # The deprecated inline form on the Bucket itself still counts.
        inline = get(bucket.props, "serverSideEncryptionConfiguration", "rule")
        rules += as_list(inline)
        algorithms = {
            get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            for rule in rules
            if isinstance(rule, dict)
        }
        if not algorithms & (SSE_ALGORITHMS | _unknowns(algorithms)):
            yield (
                f"bucket {name} has no default encryption (found {sorted(map(str, algorithms)) or 'none'}); "
                "add a BucketServerSideEncryptionConfiguration with SSE-S3 or SSE-KMS.",
                bucket.urn,
            )


def _unknowns(values: set[Any]) -> set[Any]:
    return {v for v in values if is_unknown(v)}


def check_public_access_block(stack: Stack, _config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    blocks = stack.by_bucket(PAB_TYPE)
    for name, bucket in _buckets(stack):
        complete = [b for b in blocks.get(name, []) if all(get(b.props, flag) is True for flag in PAB_FLAGS)]
        if not complete:
            yield (
                f"bucket {name} has no BucketPublicAccessBlock with all four settings true.",
                bucket.urn,
            )


def _denies_insecure_transport(stmt: Mapping[str, Any]) -> bool:
    if stmt.get("Effect") != "Deny" or not _is_everyone(stmt.get("Principal")):
        return False
    if not {"s3:*", "*"} & {a for a in as_list(stmt.get("Action")) if isinstance(a, str)}:
        return False
    condition = stmt.get("Condition")
    bool_block = condition.get("Bool") if isinstance(condition, dict) else None
    value = bool_block.get("aws:SecureTransport") if isinstance(bool_block, dict) else None
    return any(str(v).lower() == "false" for v in as_list(value))


def check_tls_only(stack: Stack, _config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    policies = stack.by_bucket(POLICY_TYPE)
    for name, bucket in _buckets(stack):
        ok = False
        for policy in policies.get(name, []):
            raw = get(policy.props, "policy")
            if isinstance(raw, str) and not is_unknown(raw):
                ok |= any(
                    _denies_insecure_transport(stmt) for _, stmt in statements(json_document(raw, "policy"))
                )
        if not ok:
            yield (
                f"bucket {name} has no bucket policy denying s3:* when aws:SecureTransport is false.",
                bucket.urn,
            )


def check_versioning(stack: Stack, config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    stage = stack.stage(config)
    required = as_list(config.get("stages")) or ["prod"]
    if stage not in required:
        return
    versionings = stack.by_bucket(*VERSIONING_TYPES)
    for name, bucket in _buckets(stack):
        if tags_of(bucket.props).get(DATA_CLASS_TAG) != "data":
            continue
        statuses = {get(v.props, "versioningConfiguration", "status") for v in versionings.get(name, [])}
        if get(bucket.props, "versioning", "enabled") is True:
            statuses.add("Enabled")
        if "Enabled" not in statuses and not _unknowns(statuses):
            yield (
                f"data bucket {name} in stage {stage} is not versioned: add a BucketVersioning "
                "with status Enabled (and a noncurrent-version expiry).",
                bucket.urn,
            )


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _is_access_log_bucket(bucket: Any) -> bool:
    return tags_of(bucket.props).get(DATA_CLASS_TAG) == ACCESS_LOGS_CLASS


def _logging_targets(stack: Stack) -> dict[str, list[Any]]:
    """Source bucket name -> the ``targetBucket`` values it logs to (BucketLogging, or the inline form)."""
    targets: dict[str, list[Any]] = {}
    for name, configs in stack.by_bucket(*LOGGING_TYPES).items():
        targets.setdefault(name, []).extend(get(c.props, "targetBucket") for c in configs)
    for name, bucket in _buckets(stack):
        inline = get(bucket.props, "logging", "targetBucket")
        if inline is not None:
            targets.setdefault(name, []).append(inline)
    return targets


def check_access_logging(stack: Stack, _config: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    buckets = dict(_buckets(stack))
    log_buckets = {name for name, bucket in buckets.items() if _is_access_log_bucket(bucket)}
    targets = _logging_targets(stack)
    for name, bucket in buckets.items():
        found = targets.get(name, [])
        if name in log_buckets:
            # Exempt from logging itself, but only as a real log bucket: something of the stack logs to it.
            if found:
                yield (
                    f"access-log bucket {name} has server access logging itself; it must not (logging "
                    "into itself logs its own deliveries, endlessly; elsewhere it needs a second log bucket).",
                    bucket.urn,
                )
            if not any(name in t for source, t in targets.items() if source != name):
                yield (
                    f"bucket {name} is tagged {DATA_CLASS_TAG}={ACCESS_LOGS_CLASS} but no bucket of the stack "
                    "logs to it: only the stack's access-log bucket is exempt from access logging.",
                    bucket.urn,
                )
            continue
        if any(is_unknown(t) for t in found):
            continue  # a target not known until the update: judged by the stack rule run after it
        good = [t for t in found if t in log_buckets and t != name]
        if not good:
            where = f"logs to {sorted(map(str, found))}" if found else "has no BucketLogging"
            yield (
                f"bucket {name} {where}; it must log to the stack's access-log bucket (a bucket of this "
                f"stack tagged {DATA_CLASS_TAG}={ACCESS_LOGS_CLASS}"
                f"{': ' + ', '.join(sorted(log_buckets)) if log_buckets else ', and there is none'}).",
                bucket.urn,
            )


def _log_grant_problems(label: str, stmt: Mapping[str, Any]) -> Iterator[str]:
    if stmt.get("Effect") != "Allow":
        return
    principal = stmt.get("Principal")
    services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
    others = sorted(k for k in principal if k != "Service") if isinstance(principal, dict) else []
    if others or services != [LOGGING_SERVICE]:
        yield f"{label} allows {_compact(principal)}; the access-log bucket grants {LOGGING_SERVICE} only."
        return
    actions = [a for a in as_list(stmt.get("Action")) if not is_unknown(a)]
    if actions != ["s3:PutObject"] or "NotAction" in stmt:
        yield f"{label} grants {LOGGING_SERVICE} {actions}; log delivery needs s3:PutObject only."
    condition = stmt.get("Condition") if isinstance(stmt.get("Condition"), dict) else {}
    keys = {key for block in condition.values() if isinstance(block, dict) for key in block}
    missing = [k for k in LOG_GRANT_CONDITION_KEYS if k not in keys]
    if missing:
        yield f"{label} grants {LOGGING_SERVICE} without {' and '.join(missing)} conditions."


def check_access_log_bucket_policy(
    stack: Stack, _config: Mapping[str, Any]
) -> Iterator[tuple[str, str | None]]:
    policies = stack.by_bucket(POLICY_TYPE)
    for name, bucket in _buckets(stack):
        if not _is_access_log_bucket(bucket):
            continue
        grants = 0
        for policy in policies.get(name, []):
            raw = get(policy.props, "policy")
            if not isinstance(raw, str) or is_unknown(raw):
                grants += 1  # not known until the update: judged by the stack rule run after it
                continue
            for label, stmt in statements(json_document(raw, "policy")):
                problems = list(_log_grant_problems(label, stmt))
                for problem in problems:
                    yield f"access-log bucket {name}: {problem}", policy.urn
                if stmt.get("Effect") == "Allow" and not problems:
                    grants += 1
        if not grants:
            yield (
                f"access-log bucket {name} has no bucket policy statement granting {LOGGING_SERVICE} "
                "s3:PutObject; S3 cannot deliver the logs.",
                bucket.urn,
            )


POLICIES = [
    resource_rule(
        name="s3-no-public-access",
        description="No S3 public-access block setting is off, no public canned ACL, no bucket policy "
        "allowing Principal '*'.",
        types=(PAB_TYPE, POLICY_TYPE, *BUCKET_TYPES, *ACL_TYPES),
        check=check_no_public_access,
        severity=Severity.CRITICAL,
        remediation="Set all four BucketPublicAccessBlock flags true; grant access to named roles only.",
    ),
    stack_rule(
        name="s3-bucket-public-access-block",
        description="Every bucket has a BucketPublicAccessBlock with all four settings true.",
        check=check_public_access_block,
        severity=Severity.CRITICAL,
        remediation="Create aws.s3.BucketPublicAccessBlock(bucket=<bucket>.bucket, all four flags true).",
    ),
    stack_rule(
        name="s3-bucket-encryption",
        description="Every bucket has default server-side encryption (SSE-S3 or SSE-KMS).",
        check=check_encryption,
        severity=Severity.HIGH,
        remediation="Create aws.s3.BucketServerSideEncryptionConfiguration for the bucket.",
    ),
    stack_rule(
        name="s3-bucket-tls-only",
        description="Every bucket has a bucket policy that denies requests without TLS "
        "(aws:SecureTransport false).",
        check=check_tls_only,
        severity=Severity.HIGH,
        remediation="Add a BucketPolicy statement: Deny, Principal '*', Action s3:*, Resource bucket and "
        "bucket/*, Condition Bool aws:SecureTransport 'false'.",
    ),
    stack_rule(
        name="s3-bucket-access-logging",
        description="Every bucket except the stack's access-log bucket (tagged data-class=access-logs) has "
        "server access logging (BucketLogging) to that access-log bucket; the access-log bucket does not log "
        "to itself and is the target of at least one bucket.",
        check=check_access_logging,
        severity=Severity.HIGH,
        remediation="Create aws.s3.BucketLogging(bucket=<bucket>.bucket, target_bucket=<access-log "
        "bucket>.bucket, target_prefix='<bucket name>/').",
    ),
    stack_rule(
        name="s3-access-log-bucket-policy",
        description="The access-log bucket's policy allows only logging.s3.amazonaws.com, only s3:PutObject, "
        "with aws:SourceArn and aws:SourceAccount conditions, and has at least one such grant.",
        check=check_access_log_bucket_policy,
        severity=Severity.HIGH,
        remediation="Grant Principal {Service: logging.s3.amazonaws.com} s3:PutObject on "
        "<log bucket ARN>/<prefix>* with ArnLike aws:SourceArn <source bucket ARN> and StringEquals "
        "aws:SourceAccount <account>; nothing else.",
    ),
    stack_rule(
        name="s3-data-bucket-versioning",
        description="In prod, buckets tagged data-class=data (raw readings, analytics) are versioned.",
        check=check_versioning,
        severity=Severity.HIGH,
        remediation="Create aws.s3.BucketVersioning(status Enabled) for the bucket, with a lifecycle rule "
        "expiring noncurrent versions.",
        config={
            **STAGE_PROPERTY,
            "stages": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Stages where data buckets must be versioned (default: prod).",
            },
        },
    ),
]
