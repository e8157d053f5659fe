"""Service roles: a role one AWS service may assume for this account, with its one inline policy.

The documents come from ``spec.iam`` (trust) and from each component's policy builder (grants).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from spec.iam import Arn, trust_policy


def service_role(
    logical: str,
    *,
    parent: pulumi.Resource,
    name: str,
    service: str,
    source_account: str,
    description: str,
    policy: dict[str, Any],
    tags: Mapping[str, str],
    source_arn: Arn | Sequence[Arn] | None = None,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role only ``service`` may assume, for this account, with its one inline policy.

    Children ``<logical>-role`` and ``<logical>-policy`` of ``parent``. Resources that need the role's
    rights when they are created should depend on the returned policy, not only on the role.
    """
    role = aws.iam.Role(
        f"{logical}-role",
        name=name,
        description=description,
        assume_role_policy=pulumi.Output.json_dumps(
            trust_policy(service, source_account=source_account, source_arn=source_arn)
        ),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    inline = aws.iam.RolePolicy(
        f"{logical}-policy",
        role=role.name,
        policy=pulumi.Output.json_dumps(policy),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role, inline
