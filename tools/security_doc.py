"""docs/security.md's role tables, generated from the policy builders the components use.

Each role: the service it trusts and the condition of its trust policy, with the page that documents that
condition; then every grant of its inline policy (Sid, actions, resources) with the page that documents
the call needing it (``spec.iam.statement``'s ``source``). Resources are shown with placeholders
(``<analytics bucket>``, ``<account>``) where a stage's names go.

``tools.docs`` writes them into docs/security.md and checks they are current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import delivery, detector, schedule, workflow
from components.catalog import catalog_names
from spec import iam
from spec.naming import Account, Names

ACCOUNT = Account(partition="aws", region="<region>", account_id="<account>")
NAMES = Names("<stage>", ACCOUNT)


@dataclass(frozen=True)
class Role:
    """A role as the program builds it: its physical name's last part, trusted service, trust and grants."""

    name: str
    service: str
    trust: dict[str, Any]
    policy: dict[str, Any]


def roles() -> list[Role]:
    """Every role the program creates, built by the components' own policy builders."""
    machine = NAMES.state_machine
    machine_arn = ACCOUNT.state_machine_arn(machine)
    catalog = catalog_names(NAMES)

    def trust(service: str, source_arn: Any = None) -> dict[str, Any]:
        return iam.trust_policy(service, source_account=ACCOUNT.account_id, source_arn=source_arn)

    return [
        Role(
            "pipeline",
            "states.amazonaws.com",
            trust("states.amazonaws.com", workflow.state_machine_source_arns(machine_arn)),
            workflow.state_machine_policy(
                workflow.PolicyInputs(
                    account=ACCOUNT,
                    state_machine_name=machine,
                    function_arn="<detector function>",
                    workgroup_arn="<workgroup>",
                    catalog=catalog,
                    raw_bucket_arn="<raw bucket>",
                    unload_bucket_arn="<unload bucket>",
                    athena_bucket_arn="<athena bucket>",
                    analytics_bucket_arn="<analytics bucket>",
                )
            ),
        ),
        Role(
            "detector",
            "lambda.amazonaws.com",
            trust("lambda.amazonaws.com"),
            detector.detector_role_policy(
                log_group_arn="<detector log group>", stream_arn="<delivery stream>"
            ),
        ),
        Role(
            "firehose",
            "firehose.amazonaws.com",
            trust("firehose.amazonaws.com"),
            delivery.delivery_role_policy(
                bucket_arn="<analytics bucket>", log_group_arn="<delivery log group>"
            ),
        ),
        Role(
            "scheduler",
            schedule.SCHEDULER_PRINCIPAL,
            trust(schedule.SCHEDULER_PRINCIPAL),
            schedule.scheduler_role_policy(machine_arn),
        ),
    ]


def _code(values: Any) -> str:
    values = [values] if isinstance(values, str) else values
    return "<br>".join(f"`{v}`" for v in values)


def _link(url: str) -> str:
    return f"[{url.removeprefix(iam.DOCS)}]({url})"


def markdown() -> str:
    """The generated part of docs/security.md."""
    out: list[str] = []
    for role in roles():
        (assume,) = role.trust["Statement"]
        condition = "; ".join(
            f"{operator} `{key}` = {_code(value)}"
            for operator, keys in assume["Condition"].items()
            for key, value in keys.items()
        )
        out += [
            f"### `sensorflow-<stage>-{role.name}`",
            "",
            f"Trusted: `{role.service}` when {condition} ({_link(iam.TRUST_SOURCES[role.service])}).",
            "",
            "| Sid | Actions | Resources | Documented by |",
            "|---|---|---|---|",
        ]
        for stmt in role.policy["Statement"]:
            out.append(
                f"| {stmt['Sid']} | {_code(stmt['Action'])} | {_code(stmt['Resource'])} | {_link(stmt.source)} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n")
