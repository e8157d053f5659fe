"""How a rule is declared: one function per rule, plus the metadata every rule must carry.

``resource_rule`` and ``stack_rule`` wrap a plain check function into the pulumi_policy class the engine
runs. A check yields violation messages (resource rules) or ``(message, urn)`` pairs (stack rules); it
never calls ``report_violation`` itself, so it can be tested as a generator and reused by the offline gate.

A property that should hold a JSON document but does not is reported as a violation of the rule that
needed it (``Unparseable``), never as an analyzer crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .values import Unparseable, get, is_unknown, tags_of

ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[["Stack", Mapping[str, Any]], Iterable[tuple[str, str | None]]]


def resource_rule(
    *,
    name: str,
    description: str,
    types: Iterable[str] | None,
    check: ResourceCheck,
    severity: Severity,
    remediation: str,
    config: dict[str, dict[str, Any]] | None = None,
) -> ResourceValidationPolicy:
    """A rule run once per resource whose type is in ``types`` (``None``: every resource).

    ``check(type, props, config)`` yields one message per problem.
    """
    wanted = frozenset(types) if types is not None else None

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if wanted is not None and args.resource_type not in wanted:
            return
        conf = args.get_config() or {}
        try:
            for message in check(args.resource_type, args.props, conf):
                report(message, None)
        except Unparseable as exc:
            report(str(exc), None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        severity=severity,
        remediation_steps=remediation,
        config_schema=PolicyConfigSchema(properties=config) if config else None,
    )


def stack_rule(
    *,
    name: str,
    description: str,
    check: StackCheck,
    severity: Severity,
    remediation: str,
    config: dict[str, dict[str, Any]] | None = None,
) -> StackValidationPolicy:
    """A rule run once over the whole stack; ``check(stack, config)`` yields ``(message, urn or None)``."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        conf = args.get_config() or {}
        try:
            for message, urn in check(Stack(list(args.resources)), conf):
                report(message, urn)
        except Unparseable as exc:
            report(str(exc), None)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        severity=severity,
        remediation_steps=remediation,
        config_schema=PolicyConfigSchema(properties=config) if config else None,
    )


@dataclass
class Stack:
    """The stack's resources with the joins the stack rules need (by type, by S3 bucket name)."""

    resources: list[PolicyResource]

    def of_type(self, *types: str) -> list[PolicyResource]:
        wanted = set(types)
        return [r for r in self.resources if r.resource_type in wanted]

    def by_bucket(self, *types: str) -> dict[str, list[PolicyResource]]:
        """Bucket satellites (policy, encryption, versioning ...) keyed by their ``bucket`` name prop."""
        joined: dict[str, list[PolicyResource]] = {}
        for r in self.of_type(*types):
            bucket = get(r.props, "bucket")
            if isinstance(bucket, str) and not is_unknown(bucket):
                joined.setdefault(bucket, []).append(r)
        return joined

    def stage(self, config: Mapping[str, Any]) -> str | None:
        """The stage this stack deploys: the rule's ``stage`` config, else the commonest ``stage`` tag.

        The config wins because it is chosen per stage by whoever runs the pack; the tag fallback keeps the
        rule meaningful when the pack runs without a config file.
        """
        configured = config.get("stage")
        if isinstance(configured, str) and configured:
            return configured
        counts = Counter(
            tag
            for r in self.resources
            if isinstance(tag := tags_of(r.props).get("stage"), str) and tag and not is_unknown(tag)
        )
        return counts.most_common(1)[0][0] if counts else None


def bucket_name(resource: PolicyResource) -> str | None:
    """A Bucket's physical name: the ``bucket`` prop (explicit name, or the provider's auto-name)."""
    name = get(resource.props, "bucket")
    return name if isinstance(name, str) and name and not is_unknown(name) else None


STAGE_PROPERTY: dict[str, dict[str, Any]] = {
    "stage": {
        "type": "string",
        "description": "The stage this stack deploys (dev, prod). Empty: taken from the resources' stage tag.",
    }
}
