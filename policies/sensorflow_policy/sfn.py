"""Step Functions rules: logging and tracing on; every Distributed Map bounded, failure-tolerant, retrying.

The definition is walked, not searched by state name: a Distributed Map may sit at the top level or
inside a Parallel branch or another map's ItemProcessor. Facts relied on (Step Functions developer guide,
state-map-distributed.html, input-output-itembatcher.html):
- ``MaxConcurrency`` unset or 0 means up to 10,000 parallel children: far above any reserved concurrency,
  so the children would be throttled by Lambda and fail or retry in bulk.
- ``ToleratedFailurePercentage``/``ToleratedFailureCount`` default to 0: one failed child fails the run;
  the rule asks that the choice is written down.
- Lambda's transient errors (``Lambda.ServiceException``, ``Lambda.AWSLambdaException``,
  ``Lambda.SdkClientException``, ``Lambda.TooManyRequestsException``) need a ``Retry`` on the task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from .base import Stack, resource_rule, stack_rule
from .values import UNKNOWN_STRING, as_int, as_list, get, is_unknown, json_document

STATE_MACHINE: Final = "aws:sfn/stateMachine:StateMachine"
FUNCTION: Final = "aws:lambda/function:Function"

_LAMBDA_INVOKE: Final = re.compile(r"^arn:[a-z-]+:states:::lambda:invoke(\.waitForTaskToken)?$")
_LAMBDA_ARN: Final = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:([A-Za-z0-9_-]+)(:[^:]+)?$")
_RETRYABLE: Final = frozenset(
    {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "States.ALL",
        "States.TaskFailed",
    }
)
_TOLERANCE_FIELDS: Final = (
    "ToleratedFailurePercentage",
    "ToleratedFailureCount",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
)
LOG_LEVELS: Final = frozenset({"ALL", "ERROR", "FATAL"})


@dataclass
class LambdaTask:
    """A Task state that invokes Lambda, and the function it names (a name, ARN or expression)."""

    path: str
    state: dict[str, Any]
    function: Any


@dataclass
class DistributedMap:
    """A Map state in DISTRIBUTED mode, with the Lambda tasks its children run."""

    path: str
    state: dict[str, Any]
    tasks: list[LambdaTask] = field(default_factory=list)

    @property
    def max_concurrency(self) -> Any:
        return self.state.get("MaxConcurrency")


def _lambda_function(state: Mapping[str, Any]) -> Any:
    resource = state.get("Resource")
    if isinstance(resource, str) and (m := _LAMBDA_ARN.match(resource)):
        return m.group(0)
    for holder in ("Arguments", "Parameters"):  # JSONata, JSONPath
        block = state.get(holder)
        if isinstance(block, dict):
            for key in ("FunctionName", "FunctionName.$"):
                if key in block:
                    return block[key]
    return None


def _is_lambda_task(state: Mapping[str, Any]) -> bool:
    resource = state.get("Resource")
    return (
        state.get("Type") == "Task"
        and isinstance(resource, str)
        and bool(_LAMBDA_INVOKE.match(resource) or _LAMBDA_ARN.match(resource))
    )


def _processor(state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    processor = state.get("ItemProcessor", state.get("Iterator"))
    return processor if isinstance(processor, dict) else None


def distributed_maps(definition: Any) -> list[DistributedMap]:
    """Every Distributed Map in the definition, however deeply nested, with the Lambda tasks below it."""
    found: list[DistributedMap] = []

    def walk(states: Any, path: str, enclosing: list[DistributedMap]) -> None:
        if not isinstance(states, dict):
            return
        for name, state in states.items():
            if not isinstance(state, dict):
                continue
            here = f"{path}/{name}"
            if _is_lambda_task(state):
                for m in enclosing:
                    m.tasks.append(LambdaTask(here, state, _lambda_function(state)))
            kind = state.get("Type")
            if kind == "Map" and (processor := _processor(state)) is not None:
                inner = enclosing
                if get(processor, "ProcessorConfig", "Mode") == "DISTRIBUTED":
                    current = DistributedMap(here, state)
                    found.append(current)
                    inner = [*enclosing, current]
                walk(processor.get("States"), here, inner)
            elif kind == "Parallel":
                for i, branch in enumerate(as_list(state.get("Branches"))):
                    if isinstance(branch, dict):
                        walk(branch.get("States"), f"{here}[{i}]", enclosing)

    if isinstance(definition, dict):
        walk(definition.get("States"), "", [])
    return found


def _definition(props: Mapping[str, Any]) -> Any:
    raw = get(props, "definition")
    if is_unknown(raw):
        raise UnknownValueError(UNKNOWN_STRING, ["definition"])
    return json_document(raw, "definition") if raw is not None else None


# --- resource rules ---------------------------------------------------------------------------------


def check_logging(_type: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    level = get(props, "loggingConfiguration", "level")
    destination = get(props, "loggingConfiguration", "logDestination")
    if not is_unknown(level) and level not in LOG_LEVELS:
        yield f"loggingConfiguration.level is {level!r}; set ALL, ERROR or FATAL."
    if not destination:
        yield "loggingConfiguration.logDestination is not set; point it at the state machine's log group."


def check_tracing(_type: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    enabled = get(props, "tracingConfiguration", "enabled")
    if enabled is not True and not is_unknown(enabled):
        yield f"tracingConfiguration.enabled is {enabled!r}; enable X-Ray tracing."


def check_distributed_maps(_type: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    for m in distributed_maps(_definition(props)):
        concurrency = as_int(m.max_concurrency)
        if concurrency is None or concurrency <= 0:
            yield (
                f"Distributed Map {m.path} has MaxConcurrency {m.max_concurrency!r}: unset or 0 runs up to "
                "10,000 children at once; set a literal integer > 0."
            )
        if not any(f in m.state for f in _TOLERANCE_FIELDS):
            yield f"Distributed Map {m.path} sets no ToleratedFailurePercentage/ToleratedFailureCount."
        if not m.tasks:
            yield f"Distributed Map {m.path} invokes no Lambda task; expected the detector invocation."
        for task in m.tasks:
            retried = {
                error
                for retrier in as_list(task.state.get("Retry"))
                if isinstance(retrier, dict)
                for error in as_list(retrier.get("ErrorEquals"))
            }
            if not retried & _RETRYABLE:
                yield (
                    f"Lambda task {task.path} has no Retry for Lambda's transient errors "
                    "(Lambda.ServiceException, Lambda.TooManyRequestsException ...)."
                )


# --- stack rules ----------------------------------------------------------------------------------


def _function_name(reference: Any) -> str | None:
    """The function name in a FunctionName value: ARN, partial ARN, name or name:qualifier."""
    if not isinstance(reference, str) or is_unknown(reference) or reference.startswith("{%"):
        return None
    if m := _LAMBDA_ARN.match(reference):
        return m.group(1)
    if reference.startswith("arn:"):
        return None
    return reference.split(":")[0] or None


def check_concurrency_within_reserve(
    stack: Stack, _config: Mapping[str, Any]
) -> Iterator[tuple[str, str | None]]:
    reserves: dict[str, Any] = {}
    for fn in stack.of_type(FUNCTION):
        name = get(fn.props, "name")
        if isinstance(name, str) and not is_unknown(name):
            reserves[name] = get(fn.props, "reservedConcurrentExecutions")
    for machine in stack.of_type(STATE_MACHINE):
        for m in distributed_maps(_definition(machine.props)):
            concurrency = as_int(m.max_concurrency)
            for task in m.tasks:
                name = _function_name(task.function)
                where = f"Distributed Map {m.path} (Lambda task {task.path})"
                if name is None or name not in reserves:
                    yield (
                        f"{where} invokes {task.function!r}, which is not a function of this stack: its "
                        "reserved concurrency cannot be compared with MaxConcurrency.",
                        machine.urn,
                    )
                    continue
                reserve = as_int(reserves[name])
                if reserve is None or reserve < 1:
                    yield (
                        f"{where}: function {name} has no reserved concurrency to bound the map.",
                        machine.urn,
                    )
                elif concurrency is None or concurrency <= 0 or concurrency > reserve:
                    yield (
                        f"{where}: MaxConcurrency {m.max_concurrency!r} must be between 1 and function "
                        f"{name}'s reserved concurrency {reserve}, or children are throttled.",
                        machine.urn,
                    )


POLICIES = [
    resource_rule(
        name="sfn-logging-enabled",
        description="State machines log to CloudWatch Logs (level ALL, ERROR or FATAL).",
        types={STATE_MACHINE},
        check=check_logging,
        severity=Severity.MEDIUM,
        remediation="Set loggingConfiguration {level: ERROR or ALL, logDestination: '<log group arn>:*'}.",
    ),
    resource_rule(
        name="sfn-tracing-enabled",
        description="State machines have X-Ray tracing enabled.",
        types={STATE_MACHINE},
        check=check_tracing,
        severity=Severity.LOW,
        remediation="Set tracingConfiguration {enabled: true} and grant the X-Ray actions on '*'.",
    ),
    resource_rule(
        name="sfn-distributed-map-guardrails",
        description="Every Distributed Map sets MaxConcurrency > 0, a tolerated-failure threshold, and "
        "Retry on its Lambda task.",
        types={STATE_MACHINE},
        check=check_distributed_maps,
        severity=Severity.HIGH,
        remediation="Set MaxConcurrency from the stage's maxConcurrency, ToleratedFailurePercentage, and a "
        "Retry on Lambda.ServiceException/AWSLambdaException/SdkClientException/TooManyRequestsException.",
    ),
    stack_rule(
        name="sfn-map-concurrency-within-lambda-reserve",
        description="A Distributed Map's MaxConcurrency is at most the reserved concurrency of the Lambda "
        "it invokes.",
        check=check_concurrency_within_reserve,
        severity=Severity.HIGH,
        remediation="Lower maxConcurrency or raise lambdaReservedConcurrency in Pulumi.<stage>.yaml.",
    ),
]
