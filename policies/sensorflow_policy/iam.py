"""IAM rules: least privilege in identity policies, no broad managed policies, narrow trust and PassRole.

Every statement is judged on its own fields, so a value unknown at preview (typically a resource ARN that
is an output of a resource not yet created) only suspends the judgement that depends on it: an unknown
ARN is never the literal ``"*"``, while the action list, which is made of plain strings, is always judged.
Only when the whole document is unknown does the rule fall back to the runtime's advisory
"can't run during preview" diagnostic; ``pulumi up`` analyses the resource again with known inputs before
creating it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from .base import resource_rule
from .iam_allowlist import REQUIRED_CONDITION_KEYS, canonical
from .values import UNKNOWN_STRING, as_list, get, is_unknown, json_document

# Resource types whose `policy` prop is an identity-based policy document.
POLICY_DOCUMENT_TYPES: Final = frozenset(
    {
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)
ROLE: Final = "aws:iam/role:Role"
IDENTITY_TYPES: Final = POLICY_DOCUMENT_TYPES | {ROLE}

ATTACHMENT_TYPES: Final = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    }
)

# `*` alone, or a whole service (`s3:*`). IAM actions are `<service prefix>:<action>`.
_WHOLE_SERVICE: Final = re.compile(r"^[A-Za-z0-9-]+:\*$")
# An exact role ARN: no wildcard anywhere (IAM User Guide, "Granting a user permissions to pass a role").
_ROLE_ARN: Final = re.compile(r"^arn:[a-z-]+:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$")
# AWS-managed policies that grant far more than any one function needs.
_BROAD_MANAGED: Final = re.compile(
    r"^arn:[a-z-]+:iam::aws:policy/(?:.*/)?(?:[A-Za-z0-9]*FullAccess[A-Za-z0-9]*|AdministratorAccess|PowerUserAccess)$"
)


# --- reading policy documents -----------------------------------------------------------------------


def _documents(type_: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, parsed document) for each identity policy the resource carries."""
    if type_ in POLICY_DOCUMENT_TYPES:
        raw = get(props, "policy")
        if raw is None:
            return
        if is_unknown(raw):
            # Nothing in the document can be judged: let the runtime report its standard advisory.
            raise UnknownValueError(UNKNOWN_STRING, ["policy"])
        yield "policy", json_document(raw, "policy")
    elif type_ == ROLE:
        for i, inline in enumerate(as_list(get(props, "inlinePolicies"))):
            raw = inline.get("policy") if isinstance(inline, dict) else None
            if isinstance(raw, str) and raw and not is_unknown(raw):
                yield f"inlinePolicies[{i}]", json_document(raw, f"inlinePolicies[{i}].policy")


def statements(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """(label, statement) pairs; the label is the Sid when there is one, else the index."""
    if not isinstance(document, dict):
        return []
    out = []
    for i, stmt in enumerate(as_list(document.get("Statement"))):
        if isinstance(stmt, dict):
            sid = stmt.get("Sid")
            out.append((f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement #{i}", stmt))
    return out


def _allows(stmt: Mapping[str, Any]) -> bool:
    return stmt.get("Effect") == "Allow"


def _known_strings(value: Any) -> list[str]:
    return [v for v in as_list(value) if isinstance(v, str) and not is_unknown(v)]


def _condition_keys(stmt: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    condition = stmt.get("Condition")
    if isinstance(condition, dict):
        for block in condition.values():
            if isinstance(block, dict):
                keys.update(k.lower() for k in block)
    return keys


# --- checks ---------------------------------------------------------------------------------------


def check_wildcard_actions(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    for where, document in _documents(type_, props):
        for label, stmt in statements(document):
            if not _allows(stmt):
                continue
            for action in _known_strings(stmt.get("Action")):
                if action == "*" or _WHOLE_SERVICE.match(action):
                    yield f"{where} {label} allows {action!r}: name the exact actions the caller needs."


def check_resource_star(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    for where, document in _documents(type_, props):
        for label, stmt in statements(document):
            # An unknown resource is an ARN still being computed, never the literal "*".
            if not _allows(stmt) or "*" not in _known_strings(stmt.get("Resource")):
                continue
            conditions = _condition_keys(stmt)
            for action in _known_strings(stmt.get("Action")):
                allowed = canonical(action)
                if allowed is None:
                    yield (
                        f"{where} {label} grants {action!r} on Resource '*': name the ARNs; only the "
                        "documented actions without resource-level permissions may use '*'."
                    )
                elif (key := REQUIRED_CONDITION_KEYS.get(allowed)) and key.lower() not in conditions:
                    yield f"{where} {label} grants {allowed!r} on '*' without a {key!r} condition."


def check_not_elements(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    for where, document in _documents(type_, props):
        for label, stmt in statements(document):
            for element in ("NotAction", "NotResource"):
                if element in stmt:
                    yield (
                        f"{where} {label} uses {element}: it grants everything not listed, including "
                        "actions and resources added later."
                    )


def check_managed_policies(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    arns = (
        _known_strings(get(props, "policyArn"))
        if type_ in ATTACHMENT_TYPES
        else _known_strings(get(props, "managedPolicyArns"))
    )
    for arn in arns:
        if _BROAD_MANAGED.match(arn):
            yield f"attaches the AWS-managed policy {arn}: grant exact actions on exact ARNs instead."


def check_pass_role(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    for where, document in _documents(type_, props):
        for label, stmt in statements(document):
            actions = [a.lower() for a in _known_strings(stmt.get("Action"))]
            if not _allows(stmt) or "iam:passrole" not in actions:
                continue
            resources = as_list(stmt.get("Resource"))
            if not resources:
                yield f"{where} {label} grants iam:PassRole without a Resource."
            for arn in resources:
                # An unknown value is the ARN output of a role: exact by construction.
                if not is_unknown(arn) and not (isinstance(arn, str) and _ROLE_ARN.match(arn)):
                    yield f"{where} {label} grants iam:PassRole on {arn!r}: name exact role ARNs, no wildcards."
            if "iam:passedtoservice" not in _condition_keys(stmt):
                yield (
                    f"{where} {label} grants iam:PassRole without an 'iam:PassedToService' condition: "
                    "say which service may receive the role."
                )


def _principal_services(stmt: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(service principals, problems) of a trust statement."""
    principal = stmt.get("Principal")
    if not isinstance(principal, dict):
        return [], [f"principal {principal!r} is not a service principal"]
    problems = [f"principal type {kind!r} is not allowed" for kind in principal if kind != "Service"]
    services = as_list(principal.get("Service"))
    return [s for s in services if isinstance(s, str)], problems


def check_trust_policy(type_: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    raw = get(props, "assumeRolePolicy")
    if raw is None:
        return
    if is_unknown(raw):
        raise UnknownValueError(UNKNOWN_STRING, ["assumeRolePolicy"])
    services: set[str] = set()
    for label, stmt in statements(json_document(raw, "assumeRolePolicy")):
        if not _allows(stmt):
            continue
        found, problems = _principal_services(stmt)
        for problem in problems:
            yield f"assumeRolePolicy {label}: {problem}; trust exactly one AWS service."
        services.update(found)
    if len(services) != 1:
        listed = ", ".join(sorted(services)) or "none"
        yield f"assumeRolePolicy trusts {len(services)} service principals ({listed}); trust exactly one."
    elif (only := next(iter(services))) == "*" or not only.endswith(".amazonaws.com"):
        yield f"assumeRolePolicy trusts {only!r}; trust one AWS service principal (<service>.amazonaws.com)."


POLICIES = [
    resource_rule(
        name="iam-no-wildcard-actions",
        description="IAM Allow statements name exact actions: no '*' and no whole-service 'service:*'.",
        types=IDENTITY_TYPES,
        check=check_wildcard_actions,
        severity=Severity.CRITICAL,
        remediation="List the API actions the role calls (e.g. states:StartExecution), never 'svc:*'.",
    ),
    resource_rule(
        name="iam-no-resource-star",
        description="IAM Allow statements name exact ARNs; Resource '*' only for the documented actions "
        "that accept nothing else (policies/sensorflow_policy/iam_allowlist.py).",
        types=IDENTITY_TYPES,
        check=check_resource_star,
        severity=Severity.HIGH,
        remediation="Derive the ARN from the resource it grants on (spec/naming.py); move an action "
        "to iam_allowlist.py only with the AWS page that shows it has no resource type.",
    ),
    resource_rule(
        name="iam-no-not-action-not-resource",
        description="IAM statements use no NotAction or NotResource.",
        types=IDENTITY_TYPES,
        check=check_not_elements,
        severity=Severity.HIGH,
        remediation="Rewrite the statement as an Allow of the listed actions on the listed ARNs.",
    ),
    resource_rule(
        name="iam-no-broad-managed-policies",
        description="No AWS-managed *FullAccess, AdministratorAccess or PowerUserAccess policy is attached.",
        types=ATTACHMENT_TYPES | {ROLE},
        check=check_managed_policies,
        severity=Severity.CRITICAL,
        remediation="Replace the attachment with an inline RolePolicy of exact actions on exact ARNs.",
    ),
    resource_rule(
        name="iam-pass-role-scoped",
        description="iam:PassRole is granted only on exact role ARNs with an iam:PassedToService condition.",
        types=IDENTITY_TYPES,
        check=check_pass_role,
        severity=Severity.CRITICAL,
        remediation="Grant iam:PassRole on the role's ARN output with "
        "Condition StringEquals iam:PassedToService <service>.amazonaws.com.",
    ),
    resource_rule(
        name="iam-trust-one-service",
        description="A role's trust policy names exactly one AWS service principal and nothing else.",
        types={ROLE},
        check=check_trust_policy,
        severity=Severity.HIGH,
        remediation="One role per service: Principal {'Service': '<service>.amazonaws.com'}, no AWS/* "
        "principals.",
    ),
]
