"""The sensorflow CrossGuard pack's rules, grouped by service; ``all_policies()`` is the pack's list.

Each module exposes ``POLICIES``; each rule has a stable name (used in policy config files and in the
docs' rule table), a description, a severity and remediation text. Modules import nothing from the
Pulumi program: the pack runs in its own virtualenv with only pulumi and pulumi-policy installed.
"""

from __future__ import annotations

from pulumi_policy import Policy

from . import awslambda, iam, messaging, observability, s3, sfn, tags

PACK_NAME = "sensorflow-guardrails"
MODULES = (iam, s3, sfn, awslambda, messaging, observability, tags)


def all_policies() -> list[Policy]:
    """Every rule, in the order of the docs' table; names are unique (checked here, at start-up)."""
    policies = [p for module in MODULES for p in module.POLICIES]
    names = [p.name for p in policies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate policy names: {', '.join(duplicates)}")
    return policies
