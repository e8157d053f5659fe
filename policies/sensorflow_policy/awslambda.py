"""Lambda and CloudWatch Logs rules: bounded concurrency, retained logs, a supported runtime.

- Reserved concurrency bounds what the function can take from the account pool (1,000 by default per
  Region) and is the ceiling the Distributed Map's MaxConcurrency is checked against.
- Lambda creates ``/aws/lambda/<name>`` on first invocation with *no* expiry unless the stack owns the log
  group; the function must log to a group of this stack that sets ``retentionInDays``.
- Runtimes: AWS Lambda developer guide, "Lambda runtimes" (supported and deprecated lists, read 2026).
  Deprecated runtimes stop receiving patches and later block updates, so only current ones pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from pulumi_policy import Severity

from .base import Stack, resource_rule, stack_rule
from .values import as_int, as_list, get, is_unknown

FUNCTION: Final = "aws:lambda/function:Function"
LOG_GROUP: Final = "aws:cloudwatch/logGroup:LogGroup"

# Runtimes AWS lists as supported (not deprecated) for Python, the only language this project ships.
# Extend through the policy config `runtimes` rather than editing the rule.
SUPPORTED_RUNTIMES: Final = ("python3.11", "python3.12", "python3.13")


def check_reserved_concurrency(
    _type: str, props: Mapping[str, Any], _config: Mapping[str, Any]
) -> Iterator[str]:
    raw = get(props, "reservedConcurrentExecutions")
    if is_unknown(raw):
        return
    value = as_int(raw)
    if value is None or value < 1:
        yield (
            f"reservedConcurrentExecutions is {raw!r}: set it to at least the Distributed Map's "
            "MaxConcurrency (unset or -1 is unreserved, 0 disables the function)."
        )


def check_runtime(_type: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if get(props, "packageType") == "Image":
        return  # container images carry their own runtime
    runtime = get(props, "runtime")
    allowed = [r for r in as_list(config.get("runtimes")) if isinstance(r, str)] or list(SUPPORTED_RUNTIMES)
    if not is_unknown(runtime) and runtime not in allowed:
        yield f"runtime {runtime!r} is not one of the supported runtimes {', '.join(allowed)}."


def check_log_group_retention(
    _type: str, props: Mapping[str, Any], _config: Mapping[str, Any]
) -> Iterator[str]:
    raw = get(props, "retentionInDays")
    if is_unknown(raw):
        return
    days = as_int(raw)
    if days is None or days <= 0:
        yield f"retentionInDays is {raw!r}: unset or 0 keeps logs forever; set the stage's logRetentionDays."


def check_function_log_retention(
    stack: Stack, _config: Mapping[str, Any]
) -> Iterator[tuple[str, str | None]]:
    retention = {
        get(g.props, "name"): as_int(get(g.props, "retentionInDays")) for g in stack.of_type(LOG_GROUP)
    }
    for fn in stack.of_type(FUNCTION):
        name = get(fn.props, "name")
        group = get(fn.props, "loggingConfig", "logGroup") or (
            f"/aws/lambda/{name}" if isinstance(name, str) else None
        )
        if not isinstance(group, str) or is_unknown(group) or is_unknown(name):
            continue
        days = retention.get(group)
        if group not in retention:
            yield (
                f"function {name} logs to {group}, which this stack does not own: Lambda would create it "
                "with no expiry. Create the LogGroup (retentionInDays set) and set loggingConfig.logGroup.",
                fn.urn,
            )
        elif days is None or days <= 0:
            yield f"function {name} logs to {group}, which keeps logs forever.", fn.urn


POLICIES = [
    resource_rule(
        name="lambda-reserved-concurrency",
        description="Every Lambda function sets reserved concurrency (>= 1).",
        types={FUNCTION},
        check=check_reserved_concurrency,
        severity=Severity.MEDIUM,
        remediation="Set reserved_concurrent_executions from the stage's lambdaReservedConcurrency.",
    ),
    resource_rule(
        name="lambda-supported-runtime",
        description="Every Lambda function uses a supported (not deprecated) runtime.",
        types={FUNCTION},
        check=check_runtime,
        severity=Severity.MEDIUM,
        remediation="Move to a supported runtime (lambdaRuntime in Pulumi.<stage>.yaml).",
        config={
            "runtimes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Allowed runtimes (default: " + ", ".join(SUPPORTED_RUNTIMES) + ").",
            }
        },
    ),
    resource_rule(
        name="logs-retention-set",
        description="Every CloudWatch log group sets retentionInDays.",
        types={LOG_GROUP},
        check=check_log_group_retention,
        severity=Severity.LOW,
        remediation="Set retention_in_days from the stage's logRetentionDays.",
    ),
    stack_rule(
        name="lambda-log-retention",
        description="Every Lambda function logs to a log group of this stack that sets retentionInDays.",
        check=check_function_log_retention,
        severity=Severity.LOW,
        remediation="Create the function's LogGroup in the stack and set loggingConfig.logGroup to it.",
    ),
]
