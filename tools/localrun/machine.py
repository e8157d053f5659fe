"""The state machine definition, checked and compiled into a ``Machine`` (``asl`` runs it).

``load`` accepts exactly the states and fields ``spec/definition.py`` uses (see ``SUPPORTED``): Pass,
Choice, Wait, Task, Map (DISTRIBUTED, compiled by ``mapspec``), Succeed and Fail, with Retry (ErrorEquals,
IntervalSeconds, MaxAttempts, BackoffRate, JitterStrategy), Catch (ErrorEquals, Next, Output, Assign),
Assign and Output. It checks the whole definition first: a field it does not know, a state type, a
Resource, a ``Next`` that names no state, or a JSONata expression that does not compile stops the run
before it starts, with an error naming the state and the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tools.localrun.expressions import Expression, ExpressionError, Template

INTEGRATION_PREFIX = "arn:{partition}:states:::"

# Fields each state type may carry (plus "Type", "Comment", "QueryLanguage"); anything else is refused.
SUPPORTED: dict[str, set[str]] = {
    "Pass": {"Next", "End", "Assign", "Output"},
    "Choice": {"Choices", "Default"},
    "Wait": {"Seconds", "Next", "End"},
    "Task": {"Resource", "Arguments", "Output", "Assign", "Next", "End", "Retry", "Catch", "TimeoutSeconds"},
    "Map": {
        "ItemReader", "ItemSelector", "ItemBatcher", "MaxConcurrency", "ToleratedFailurePercentage", "Label",
        "ItemProcessor", "ResultWriter", "Assign", "Output", "Next", "End", "Retry", "Catch",
    },
    "Succeed": {"Output"},
    "Fail": {"Error", "Cause"},
}  # fmt: skip
COMMON_FIELDS = {"Type", "Comment", "QueryLanguage"}
TOP_LEVEL_FIELDS = {"Comment", "QueryLanguage", "TimeoutSeconds", "StartAt", "States"}
PROCESSOR_FIELDS = {"ProcessorConfig", "StartAt", "States"}
CHOICE_RULE_FIELDS = {"Condition", "Next"}
RETRY_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "JitterStrategy"}
CATCH_FIELDS = {"ErrorEquals", "Next", "Output", "Assign"}


# Task resources the local run provides (after ``arn:<partition>:states:::``).
TASK_RESOURCES = {
    "athena:startQueryExecution.sync",
    "athena:getQueryResults",
    "lambda:invoke",
    "aws-sdk:sfn:describeMapRun",
    "aws-sdk:s3:listObjectsV2",
    "aws-sdk:s3:deleteObjects",
}


class DefinitionError(ValueError):
    """The definition uses something the local executor does not support, or is malformed."""


@dataclass
class CompiledState:
    name: str
    type: str
    raw: dict[str, Any]
    assign: Template | None
    output: Template | None
    arguments: Template | None
    retry: list[dict[str, Any]]
    catch: list[dict[str, Any]]  # with compiled "Output"/"Assign"
    choices: list[tuple[Expression, str]]
    extra: dict[str, Any]


@dataclass
class Machine:
    """A checked, compiled definition (or a Map's ItemProcessor)."""

    start_at: str
    states: dict[str, CompiledState]
    timeout_seconds: int | None
    partition: str
    processors: dict[str, Machine]  # Map state name -> its ItemProcessor


def check_fields(where: str, value: Any, allowed: set[str]) -> None:
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise DefinitionError(
            f"{where}: field {unknown[0]!r} is not supported by the local executor "
            f"(supported here: {', '.join(sorted(allowed))})"
        )


def load(definition: dict[str, Any], *, partition: str = "aws", where: str = "definition") -> Machine:
    """Check and compile a definition; raises ``DefinitionError`` naming the state and field."""
    check_fields(where, definition, TOP_LEVEL_FIELDS if where == "definition" else PROCESSOR_FIELDS)
    language = definition.get("QueryLanguage", "JSONata" if where != "definition" else None)
    if where == "definition" and language != "JSONata":
        raise DefinitionError(
            f"{where}: field 'QueryLanguage' is {language!r}; the local executor runs JSONata only"
        )
    states = definition.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: field 'States' must be a non-empty object")
    start = definition.get("StartAt")
    if start not in states:
        raise DefinitionError(f"{where}: field 'StartAt' names {start!r}, which is not a state")
    compiled: dict[str, CompiledState] = {}
    processors: dict[str, Machine] = {}
    for name, raw in states.items():
        at = f"state {name!r}"
        if not isinstance(raw, dict):
            raise DefinitionError(f"{at}: expected an object")
        kind = raw.get("Type")
        if kind not in SUPPORTED:
            raise DefinitionError(f"{at}: field 'Type' is {kind!r}; supported: {', '.join(SUPPORTED)}")
        check_fields(f"{at} ({kind})", raw, SUPPORTED[kind] | COMMON_FIELDS)
        if raw.get("QueryLanguage", "JSONata") != "JSONata":
            raise DefinitionError(
                f"{at}: field 'QueryLanguage' is {raw['QueryLanguage']!r}; only JSONata runs locally"
            )
        for target_field in ("Next", "Default"):
            if target_field in raw and raw[target_field] not in states:
                raise DefinitionError(
                    f"{at}: field {target_field!r} names {raw[target_field]!r}, which is not a state"
                )
        if kind not in ("Choice", "Succeed", "Fail") and not (raw.get("End") is True or "Next" in raw):
            raise DefinitionError(f"{at}: needs field 'Next' or 'End'")
        try:
            state = _compile_state(name, kind, raw, states, partition)
        except ExpressionError as exc:
            raise DefinitionError(str(exc)) from None
        if kind == "Map":
            processors[name] = load(raw["ItemProcessor"], partition=partition, where=f"{at}.ItemProcessor")
        compiled[name] = state
    timeout = definition.get("TimeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
        raise DefinitionError(f"{where}: field 'TimeoutSeconds' must be a positive integer, got {timeout!r}")
    return Machine(start, compiled, timeout, partition, processors)


def _compile_state(
    name: str, kind: str, raw: dict[str, Any], states: dict[str, Any], partition: str
) -> CompiledState:
    at = f"state {name!r}"

    def template(key: str) -> Template | None:
        return Template(raw[key], f"{at}, field {key!r}") if key in raw else None

    retry = _retriers(at, raw)
    catch = _catchers(at, raw, states)
    choices = _choices(at, raw, states)
    if kind == "Choice" and not choices:
        raise DefinitionError(f"{at}: field 'Choices' must hold at least one rule")
    extra = _extra(name, kind, raw, partition)
    return CompiledState(
        name=name,
        type=kind,
        raw=raw,
        assign=template("Assign"),
        output=template("Output"),
        arguments=template("Arguments"),
        retry=retry,
        catch=catch,
        choices=choices,
        extra=extra,
    )


def _retriers(at: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
    retry = []
    for i, rule in enumerate(raw.get("Retry", [])):
        check_fields(f"{at}, field 'Retry[{i}]'", rule, RETRY_FIELDS)
        if not rule.get("ErrorEquals"):
            raise DefinitionError(f"{at}, field 'Retry[{i}].ErrorEquals' must list at least one error")
        jitter = rule.get("JitterStrategy", "NONE")
        if jitter not in ("FULL", "NONE"):
            raise DefinitionError(f"{at}, field 'Retry[{i}].JitterStrategy' is {jitter!r}; FULL or NONE")
        retry.append(rule)
    return retry


def _catchers(at: str, raw: dict[str, Any], states: dict[str, Any]) -> list[dict[str, Any]]:
    def optional(rule: dict[str, Any], where: str, key: str) -> Template | None:
        return Template(rule[key], f"{at}, field '{where}.{key}'") if key in rule else None

    return [
        {
            "ErrorEquals": list(rule.get("ErrorEquals") or []),
            "Next": rule["Next"],
            "Output": optional(rule, where, "Output"),
            "Assign": optional(rule, where, "Assign"),
        }
        for where, rule in _rules(at, raw, "Catch", CATCH_FIELDS, states)
    ]


def _choices(at: str, raw: dict[str, Any], states: dict[str, Any]) -> list[tuple[Expression, str]]:
    choices = []
    for where, rule in _rules(at, raw, "Choices", CHOICE_RULE_FIELDS, states):
        cond = rule.get("Condition")
        if not isinstance(cond, str) or not cond.startswith("{%"):
            raise DefinitionError(f"{at}, field '{where}.Condition' must be a JSONata expression")
        choices.append((Expression(cond, f"{at}, field '{where}.Condition'"), rule["Next"]))
    return choices


def _rules(
    at: str, raw: dict[str, Any], key: str, allowed: set[str], states: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A Catch or Choices list's rules, one by one, each with known fields and a ``Next`` that names a
    state: (``Catch[i]``, rule)."""
    for i, rule in enumerate(raw.get(key, [])):
        where = f"{key}[{i}]"
        check_fields(f"{at}, field '{where}'", rule, allowed)
        if rule.get("Next") not in states:
            raise DefinitionError(
                f"{at}, field '{where}.Next' names {rule.get('Next')!r}, which is not a state"
            )
        yield where, rule


def _extra(name: str, kind: str, raw: dict[str, Any], partition: str) -> dict[str, Any]:
    """What only some state types carry: a Task's integration, a Wait's seconds, a Fail's Error and
    Cause, a Map's ``MapSpec``."""
    at = f"state {name!r}"
    extra: dict[str, Any] = {}
    if kind == "Task":
        prefix = INTEGRATION_PREFIX.format(partition=partition)
        resource = raw.get("Resource", "")
        if (
            not isinstance(resource, str)
            or not resource.startswith(prefix)
            or resource[len(prefix) :] not in TASK_RESOURCES
        ):
            raise DefinitionError(
                f"{at}, field 'Resource': {resource!r} is not supported locally; supported: "
                + ", ".join(prefix + r for r in sorted(TASK_RESOURCES))
            )
        extra["integration"] = resource[len(prefix) :]
        timeout = raw.get("TimeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
            raise DefinitionError(f"{at}, field 'TimeoutSeconds' must be a positive integer")
    if kind == "Wait":
        seconds = raw.get("Seconds")
        if isinstance(seconds, str):
            extra["seconds"] = Expression(seconds, f"{at}, field 'Seconds'")
        elif isinstance(seconds, int) and seconds >= 0:
            extra["seconds"] = seconds
        else:
            raise DefinitionError(
                f"{at}, field 'Seconds' must be a non-negative integer or a JSONata expression"
            )
    if kind == "Fail":
        for key in ("Error", "Cause"):
            if key in raw:
                extra[key] = Template(raw[key], f"{at}, field {key!r}")
    if kind == "Map":
        # Imported here: mapspec builds on this module's DefinitionError and check_fields.
        from tools.localrun.mapspec import compile_map

        extra["map"] = compile_map(name, raw, partition)
    return extra
