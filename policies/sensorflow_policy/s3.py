"""S3 rules: every bucket encrypted, shielded from public access and TLS-only; data buckets versioned in prod.

pulumi-aws v7 configures a bucket through separate resources (BucketServerSideEncryptionConfiguration,
BucketPublicAccessBlock, BucketPolicy, BucketVersioning), each naming the bucket in its ``bucket`` prop.
The stack rules join them to the Bucket by that name, so a bucket whose satellite is missing is caught
even though no single resource is wrong. The ``V2`` tokens are the deprecated aliases of the same types.
"""

from __future__ import annotations

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

PAB_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
PUBLIC_ACLS: Final = frozenset({"public-read", "public-read-write", "authenticated-read"})
SSE_ALGORITHMS: Final = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
DATA_CLASS_TAG: Final = "data-class"


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
