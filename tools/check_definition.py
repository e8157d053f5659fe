"""``make check-definition FILE=<path>``: every independent validator and our own rules on a definition.

Validators (each independent of this project's understanding of AWS):

* ``asl-validator`` (npm, package.json): the ASL JSON schema.
* ``statelint`` (PyPI, requirements-dev.txt): the ASL spec's rules, among them "States.ALL can only appear
  in the last element, and by itself", which asl-validator does not check.
* ``asl-language-service`` (npm ``amazon-states-language-service``, the service behind the AWS Toolkit's
  ASL editor, through tools/asl_language_service.js): JSONata-aware schema (the fields each state type
  allows, enum values), transitions and reachability.

They lag behind AWS on newer fields; each lag is one entry of ``KNOWN_LAGS`` (validator, the message it
matches, optionally the JSON path and value it is limited to, why it is a lag, the AWS page documenting the
field). A message no entry matches is a problem; an entry that matches no message of the stage definitions
is stale (``stale_lags``, checked by a test), so the list cannot rot.

Our rules, for what no validator checks (each cites its source beside its code):

* ``states-all``: ``States.ALL`` alone in its ``ErrorEquals`` and only in the last retrier or catcher
  (ASL spec, "Error names"; AWS rejects it at create time: "States.ALL must appear alone and at end of
  list", aws/aws-cdk#10530).
* ``unassigned-variable``: every ``$variable`` a state reads is assigned on every path that reaches it,
  a Catch edge carrying only the catcher's ``Assign`` (a failed state's own ``Assign`` does not happen);
  Parallel branches and inline Map iterations see the variables assigned when their state is entered;
  an unassigned variable is ``States.QueryEvaluationError`` at run time
  (step-functions/latest/dg/workflow-variables.html).
* ``child-reads-parent-variable``: a Distributed Map's child workflow cannot read the parent's variables
  (workflow-variables.html, "Variable scope").
* ``error-output-outside-catch``: ``$states.errorOutput`` exists only in a Catch (workflow-variables.html,
  transforming-data.html, "Reserved variable: $states").
* ``states-result-scope``: ``$states.result`` only in the ``Output``/``Assign`` of a Task, Parallel or Map
  (workflow-variables.html, "Reserved variable: $states").
* ``state-fields``: the fields each state type allows in its query language, and those of retriers,
  catchers and JSONata choice rules (the developer guide's page for each state type).
* ``reachability``: every state reachable from its machine's ``StartAt``, every transition to a state of
  the same machine (AWS: "MISSING_TRANSITION_TARGET: State ... is not reachable").
* ``express-budget``: in an EXPRESS child, every attempt of a Task at its ``TimeoutSeconds`` plus every
  retry wait fits the 5 minutes an EXPRESS execution may run (choosing-workflow-type.html). Judgment:
  every attempt is counted at the full timeout, the worst case.
* ``map-limits``: ``MaxInputBytesPerBatch`` at most 262,144, ``ToleratedFailurePercentage`` 0-100,
  ``MaxConcurrency`` 0-10,000, ``Label`` at most 40 characters without whitespace or special characters,
  ``ReaderConfig``/``WriterConfig`` values (input-output-itembatcher.html, state-map-distributed.html,
  input-output-itemreader.html, input-output-resultwriter.html).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import aslcheck
from tools.localrun.expressions import _STRING_RE, workflow_variables

EXPRESS_MAX_SECONDS = 300
MAX_INPUT_BYTES_PER_BATCH = 262_144
MAX_CONCURRENCY = 10_000
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class Problem:
    source: str  # a validator's name or one of our rule ids
    path: str
    message: str

    def line(self) -> str:
        return f"{self.source}: {self.path}: {self.message}"


@dataclass(frozen=True)
class Lag:
    """A validator message about a field AWS accepts but the validator does not know yet."""

    validator: str
    pattern: str  # a regular expression the whole message must match
    why: str
    doc: str
    # Where the message is generic (a schema's enum message names no value), the entry is scoped further:
    # the problem's JSON path must match ``path`` and the definition's value there must be one of ``values``,
    # so the lag never hides a value AWS itself rejects.
    path: str | None = None
    values: tuple[Any, ...] | None = None

    def matches(self, problem: Problem, definition: dict[str, Any] | None = None) -> bool:
        if problem.source != self.validator or re.fullmatch(self.pattern, problem.message) is None:
            return False
        if self.path is not None and re.fullmatch(self.path, problem.path) is None:
            return False
        return self.values is None or _value_at(definition, problem.path) in self.values


_MISSING = object()


def _value_at(document: Any, path: str) -> Any:
    """The value at a JSON path written ``$.a.b[0].c`` (object keys without dots), or a sentinel."""
    node = document
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


KNOWN_LAGS: tuple[Lag, ...] = (
    Lag(
        "statelint",
        r"State Machine\..*\.Retry\[\d+\]\.BackoffRate is \d+ but should be a Float",
        "statelint wants a float; the ASL spec and AWS take any number >= 1.0 (an integer included)",
        "docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (BackoffRate)",
    ),
    Lag(
        "statelint",
        r'Field "Label" not allowed in State Machine\.States\.[A-Za-z]+',
        "Label names a Distributed Map's child executions; statelint predates it",
        "docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html (Label)",
    ),
    Lag(
        "statelint",
        r'Field "(InputType|ManifestType)" not allowed in State Machine\.States\.[A-Za-z]+\.ItemReader\.ReaderConfig',
        "ReaderConfig.InputType/ManifestType (Athena manifests, Parquet) are newer than statelint",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig)",
    ),
    Lag(
        "statelint",
        r'Field "WriterConfig" not allowed in State Machine\.States\.[A-Za-z]+\.ResultWriter',
        "ResultWriter.WriterConfig (Transformation, OutputType) is newer than statelint",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html (WriterConfig)",
    ),
    Lag(
        "asl-language-service",
        re.escape('Value is not accepted. Valid values: "CSV", "JSON", "JSONL", "MANIFEST".'),
        "the language service's ReaderConfig.InputType enum predates PARQUET, which AWS documents for "
        "Athena manifests (ManifestType ATHENA_DATA with InputType CSV, JSONL or PARQUET); the message is "
        "the schema's generic enum message, so the entry is scoped to that one field",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig, InputType)",
        path=r"\$\.States\..+\.ItemReader\.ReaderConfig\.InputType",
        values=("PARQUET",),
    ),
)


# ------------------------------------------------------------------------------------------ validators
def statelint(definition: dict[str, Any]) -> list[Problem]:
    from statelint.config import Config
    from statelint.linter import Linter

    # Config(ignore, yaml, evaluate_jsonata). With evaluation on, statelint evaluates a Choice's Condition
    # without the workflow's variables and reports its value's type ("Condition is true but should be a
    # String"); our executor and tests evaluate every expression with realistic values instead.
    messages = Linter.validate(json.dumps(definition), Config([], False, False))
    return [Problem("statelint", _statelint_path(m), m) for m in messages]


def _statelint_path(message: str) -> str:
    found = re.search(r"State Machine((?:\.[A-Za-z0-9_]+|\[\d+\])*)", message)
    return "$" + found.group(1) if found else "$"


def asl_validator(definition: dict[str, Any]) -> list[Problem]:
    """Its messages, without its "definition ... is invalid" header (which names a temporary file), each at
    the JSON path of the JSON pointer it names ("/States/A/Next" is "$.States.A.Next"), else at "$"."""
    problems = []
    messages = aslcheck.asl_validator(definition)
    for raw in messages:
        message = raw.strip()
        if re.fullmatch(r"\S* ?State machine definition .* is invalid:?", message):
            continue
        pointer = re.search(r"(?<![\w/])(/States(?:/[^\s/]+)*)", message)
        path = (
            "$"
            if pointer is None
            else "$"
            + "".join(
                f"[{part}]" if part.isdigit() else f".{part}" for part in pointer.group(1).split("/")[1:]
            )
        )
        problems.append(Problem("asl-validator", path, message))
    if messages and not problems:  # it failed without saying why: still a problem
        problems.append(Problem("asl-validator", "$", " ".join(m.strip() for m in messages)))
    return problems


def asl_language_service(definition: dict[str, Any]) -> list[Problem]:
    """npm ``amazon-states-language-service`` (AWS Toolkit's ASL editor), through tools/asl_language_service.js."""
    return [
        Problem("asl-language-service", d["path"], d["message"])
        for d in aslcheck.asl_language_service(definition)
    ]


# ------------------------------------------------------------------------------------------ our rules
def _sub_machines(name: str, state: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, machine, is distributed) for a state's ItemProcessor (or its old name Iterator) and branches."""
    at = f"{path}.States.{name}"
    for key in ("ItemProcessor", "Iterator"):
        processor = state.get(key)
        if isinstance(processor, dict):
            config = processor.get("ProcessorConfig") or {}
            yield f"{at}.{key}", processor, config.get("Mode") == "DISTRIBUTED"
    for i, branch in enumerate(state.get("Branches") or []):
        if isinstance(branch, dict):
            yield f"{at}.Branches[{i}]", branch, False


def _machines(definition: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, machine, is inside a distributed map) for the top level, every ItemProcessor and branch."""
    yield path, definition, False
    for name, state in _states(definition).items():
        for sub_path, machine, distributed in _sub_machines(name, state, path):
            for deeper_path, deeper, child in _machines(machine, sub_path):
                yield deeper_path, deeper, distributed or child


def _states(machine: dict[str, Any]) -> dict[str, Any]:
    states = machine.get("States")
    return {k: v for k, v in states.items() if isinstance(v, dict)} if isinstance(states, dict) else {}


def states_all(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in _states(machine).items():
            for field in ("Retry", "Catch"):
                rules = state.get(field, [])
                for i, rule in enumerate(rules):
                    errors = rule.get("ErrorEquals", [])
                    if "States.ALL" in errors and (errors != ["States.ALL"] or i != len(rules) - 1):
                        problems.append(
                            Problem(
                                "states-all",
                                f"{path}.States.{name}.{field}[{i}].ErrorEquals",
                                "States.ALL must appear alone in ErrorEquals and only in the last "
                                f"{'retrier' if field == 'Retry' else 'catcher'}: {errors}",
                            )
                        )
    return problems


def _expressions_at(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``{% %}`` JSONata expression in a value, as (JSON path, source without the markers)."""
    for at, node in aslcheck.walk(value, path):
        if isinstance(node, str):
            stripped = node.strip()
            if stripped.startswith("{%") and stripped.endswith("%}"):
                yield at, stripped[2:-2]


def _expressions(value: Any) -> Iterator[str]:
    for _path, source in _expressions_at(value, "$"):
        yield source


def _code(source: str) -> str:
    """A JSONata expression with its string literals emptied, so only code is searched."""
    return _STRING_RE.sub('""', source)


def _reads(value: Any) -> set[str]:
    return {v for source in _expressions(value) for v in workflow_variables(source)}


def _state_reads(state: dict[str, Any]) -> set[str]:
    """Variables a state reads when it runs (its catchers' fields are read on the Catch edge)."""
    fields = ("Arguments", "Output", "Assign", "Cause", "Error", "Seconds", "Timestamp", "Choices", "Items",
              "ItemSelector", "ItemBatcher", "ItemReader", "ResultWriter", "MaxConcurrency",
              "ToleratedFailurePercentage", "ToleratedFailureCount", "TimeoutSeconds", "HeartbeatSeconds")  # fmt: skip
    return set().union(*(_reads(state[f]) for f in fields if f in state))


def _assigns(value: Any) -> set[str]:
    return set(value) if isinstance(value, dict) else set()


def _edges(state: dict[str, Any], before: set[str]) -> list[tuple[str, set[str]]]:
    """(target, variables definitely assigned on arrival) for each transition out of a state.

    A state's own ``Assign`` happens only when it succeeds (its Next; a Choice's Default and every rule);
    a Catch edge carries only the catcher's ``Assign`` (workflow-variables.html)."""
    own = before | _assigns(state.get("Assign"))
    edges: list[tuple[str, set[str]]] = []
    if isinstance(state.get("Next"), str):
        edges.append((state["Next"], own))
    if isinstance(state.get("Default"), str):
        edges.append((state["Default"], own))
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            edges.append((rule["Next"], own | _assigns(rule.get("Assign"))))
    for rule in state.get("Catch") or []:
        if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
            edges.append((rule["Next"], before | _assigns(rule.get("Assign"))))
    return edges


def _definitely_assigned(states: dict[str, Any], start: str, inherited: set[str]) -> dict[str, set[str]]:
    """Forward "definitely assigned" dataflow: the intersection over every edge reaching a state."""
    everything = set(inherited)
    for state in states.values():
        everything |= _assigns(state.get("Assign"))
        for rule in (state.get("Catch") or []) + (state.get("Choices") or []):
            everything |= _assigns(rule.get("Assign")) if isinstance(rule, dict) else set()
    assigned: dict[str, set[str]] = {name: set(everything) for name in states}
    assigned[start] = set(inherited)
    changed = True
    while changed:
        changed = False
        for name, state in states.items():
            for target, carried in _edges(state, assigned[name]):
                if target in assigned and not assigned[target] <= carried:
                    assigned[target] &= carried
                    changed = True
    return assigned


def variables(definition: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    _variables_in(definition, "$", set(), False, problems)
    return problems


def _variables_in(
    machine: dict[str, Any], path: str, inherited: set[str], child: bool, problems: list[Problem]
) -> None:
    """One machine; Parallel branches and inline Map iterations see the variables assigned when their
    state is entered, a Distributed Map's child workflow none (workflow-variables.html, "Variable scope")."""
    states = _states(machine)
    start = machine.get("StartAt")
    if start not in states:
        return
    assigned = _definitely_assigned(states, start, inherited)
    reachable = _reachable(states, start)
    for name, state in states.items():
        if name not in reachable:
            continue
        missing = _state_reads(state) - assigned[name]
        for rule in state.get("Catch") or []:
            if isinstance(rule, dict):
                missing |= _reads({k: rule[k] for k in ("Output", "Assign") if k in rule}) - assigned[name]
        for variable in sorted(missing):
            problems.append(
                Problem(
                    "child-reads-parent-variable" if child else "unassigned-variable",
                    f"{path}.States.{name}",
                    f"reads ${variable}, which is not assigned on every path reaching {name}"
                    + (" (a distributed map's children cannot read the parent's variables)" if child else ""),
                )
            )
        for sub_path, sub, distributed in _sub_machines(name, state, path):
            _variables_in(
                sub, sub_path, set() if distributed else assigned[name], child or distributed, problems
            )


def _targets(state: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, target) for every transition a state names."""
    found = [(k, state[k]) for k in ("Next", "Default") if k in state]
    for field in ("Choices", "Catch"):
        for i, rule in enumerate(state.get(field) or []):
            if isinstance(rule, dict) and "Next" in rule:
                found.append((f"{field}[{i}].Next", rule["Next"]))
    return found


def _reachable(states: dict[str, Any], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if not isinstance(name, str) or name in seen or name not in states:
            continue
        seen.add(name)
        todo += [target for _field, target in _targets(states[name])]
    return seen


def reachability(definition: dict[str, Any]) -> list[Problem]:
    """Every state reachable from its machine's StartAt; every transition names a state of that machine.

    AWS rejects both at create time ("MISSING_TRANSITION_TARGET: State "pass2" is not reachable." and
    "Missing 'Next' target", CreateStateMachine's answer quoted in localstack/localstack#12487); a
    branch's or ItemProcessor's states can only transition within it (states-language.net/spec.html,
    "Parallel State"). Stricter reading (judgment): reachable from StartAt, so a loop of states that only
    name each other fails too."""
    problems = []
    for path, machine, _child in _machines(definition):
        states = _states(machine)
        start = machine.get("StartAt")
        if start not in states:
            problems.append(
                Problem("reachability", f"{path}.StartAt", f"{start!r} names no state of this machine")
            )
            continue
        for name, state in states.items():
            for field, target in _targets(state):
                if target not in states:
                    problems.append(
                        Problem(
                            "reachability",
                            f"{path}.States.{name}.{field}",
                            f"{target!r} names no state of this machine",
                        )
                    )
        reachable = _reachable(states, start)
        for name in states:
            if name not in reachable:
                problems.append(
                    Problem("reachability", f"{path}.States.{name}", f"not reachable from StartAt {start!r}")
                )
    return problems


# Where $states.result exists: the Output and Assign of a Task, Parallel or Map state, after it succeeded
# ("result: API or sub-workflow's result (if successful)"; a Catch has $states.errorOutput instead;
# workflow-variables.html, "Reserved variable: $states"; transforming-data.html). AWS's own language service
# offers it in exactly those fields (amazon-states-language-service, getReservedVariables).
RESULT_STATE_TYPES = frozenset({"Task", "Parallel", "Map"})
RESULT_FIELDS = frozenset({"Output", "Assign"})
_RESULT_RE = re.compile(r"\$states\s*\.\s*result\b")


def states_result_scope(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in _states(machine).items():
            for field, value in state.items():
                if field in ("ItemProcessor", "Iterator", "Branches"):
                    continue  # nested machines are visited on their own
                if field in RESULT_FIELDS and state.get("Type") in RESULT_STATE_TYPES:
                    continue
                for at, source in _expressions_at(value, f"{path}.States.{name}.{field}"):
                    if _RESULT_RE.search(_code(source)):
                        problems.append(
                            Problem(
                                "states-result-scope",
                                at,
                                "$states.result exists only in the Output and Assign of a Task, Parallel or "
                                f"Map state (not in a {state.get('Type')} state's {field})",
                            )
                        )
    return problems


# The fields each state type allows, per query language (ASL spec "State Types"; the developer guide's
# state pages: step-functions/latest/dg/state-task.html, state-parallel.html, state-map.html,
# state-pass.html, state-wait.html, state-choice.html, state-succeed.html, state-fail.html; common fields:
# statemachine-structure.html; Assign on Pass, Task, Map, Parallel, Choice and Wait only:
# workflow-variables.html; JSONata replaces InputPath/Parameters/ResultSelector/ResultPath/OutputPath and
# every *Path field with Arguments and Output: transforming-data.html).
_COMMON = frozenset({"Type", "Comment", "QueryLanguage"})
_FLOW = frozenset({"Next", "End"})
_ERRORS = frozenset({"Retry", "Catch"})
_MAP = frozenset({"ItemProcessor", "Iterator", "ItemSelector", "ItemReader", "ItemBatcher", "ResultWriter",
                  "MaxConcurrency", "ToleratedFailurePercentage", "ToleratedFailureCount", "Label"})  # fmt: skip
_JSONPATH_IO = frozenset({"InputPath", "OutputPath"})
_JSONPATH_RESULT = frozenset({"Parameters", "ResultSelector", "ResultPath"})
STATE_FIELDS: dict[str, dict[str, frozenset[str]]] = {
    "JSONata": {
        "Task": _COMMON
        | _FLOW
        | _ERRORS
        | {"Resource", "Arguments", "Output", "Assign", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
        "Parallel": _COMMON | _FLOW | _ERRORS | {"Branches", "Arguments", "Output", "Assign"},
        "Map": _COMMON | _FLOW | _ERRORS | _MAP | {"Items", "Output", "Assign"},
        "Pass": _COMMON | _FLOW | {"Output", "Assign"},
        "Wait": _COMMON | _FLOW | {"Seconds", "Timestamp", "Output", "Assign"},
        "Choice": _COMMON | {"Choices", "Default", "Output", "Assign"},
        "Succeed": _COMMON | {"Output"},
        "Fail": _COMMON | {"Error", "Cause"},
    },
    "JSONPath": {
        "Task": _COMMON
        | _FLOW
        | _ERRORS
        | _JSONPATH_IO
        | _JSONPATH_RESULT
        | {
            "Resource",
            "Assign",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        },
        "Parallel": _COMMON | _FLOW | _ERRORS | _JSONPATH_IO | _JSONPATH_RESULT | {"Branches", "Assign"},
        "Map": _COMMON
        | _FLOW
        | _ERRORS
        | _MAP
        | _JSONPATH_IO
        | _JSONPATH_RESULT
        | {
            "ItemsPath",
            "Assign",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCountPath",
        },
        "Pass": _COMMON | _FLOW | _JSONPATH_IO | {"Parameters", "Result", "ResultPath", "Assign"},
        "Wait": _COMMON
        | _FLOW
        | _JSONPATH_IO
        | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Assign"},
        "Choice": _COMMON | _JSONPATH_IO | {"Choices", "Default", "Assign"},
        "Succeed": _COMMON | _JSONPATH_IO,
        "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    },
}
# Retriers and catchers (concepts-error-handling.html); JSONata choice rules (state-choice.html, "Choice
# Rule (JSONata)": Condition, Next and an optional Assign). JSONPath choice rules (Variable and the
# comparison operators, And/Or/Not) are left to the validators.
RETRIER_FIELDS = frozenset({"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
                            "JitterStrategy", "Comment"})  # fmt: skip
CATCHER_FIELDS = {
    "JSONata": frozenset({"ErrorEquals", "Next", "Comment", "Output", "Assign"}),
    "JSONPath": frozenset({"ErrorEquals", "Next", "Comment", "ResultPath", "Assign"}),
}
JSONATA_CHOICE_RULE_FIELDS = frozenset({"Condition", "Next", "Assign", "Comment"})


def state_fields(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    top = definition.get("QueryLanguage", "JSONPath")
    for path, machine, _child in _machines(definition):
        for name, state in _states(machine).items():
            at = f"{path}.States.{name}"
            language = state.get("QueryLanguage", top)
            if top == "JSONata" and language != "JSONata":
                # statemachine-structure.html: a JSONata state machine cannot hold JSONPath states.
                problems.append(Problem("state-fields", f"{at}.QueryLanguage",
                                        f"{language!r} in a JSONata state machine"))  # fmt: skip
                continue
            allowed = STATE_FIELDS.get(language, {}).get(state.get("Type"))
            if allowed is None:
                problems.append(
                    Problem("state-fields", f"{at}.Type", f"unknown state type {state.get('Type')!r}")
                )
                continue
            for field in sorted(set(state) - allowed):
                problems.append(
                    Problem(
                        "state-fields", f"{at}.{field}", f"a {language} {state['Type']} state has no {field}"
                    )
                )
            for i, rule in enumerate(state.get("Retry") or [] if "Retry" in allowed else []):
                for field in sorted(set(rule) - RETRIER_FIELDS) if isinstance(rule, dict) else []:
                    problems.append(
                        Problem("state-fields", f"{at}.Retry[{i}].{field}", f"a retrier has no {field}")
                    )
            for i, rule in enumerate(state.get("Catch") or [] if "Catch" in allowed else []):
                for field in sorted(set(rule) - CATCHER_FIELDS[language]) if isinstance(rule, dict) else []:
                    problems.append(
                        Problem(
                            "state-fields", f"{at}.Catch[{i}].{field}", f"a {language} catcher has no {field}"
                        )
                    )
            if language == "JSONata" and state.get("Type") == "Choice":
                for i, rule in enumerate(state.get("Choices") or []):
                    for field in (
                        sorted(set(rule) - JSONATA_CHOICE_RULE_FIELDS) if isinstance(rule, dict) else []
                    ):
                        problems.append(
                            Problem(
                                "state-fields",
                                f"{at}.Choices[{i}].{field}",
                                f"a JSONata choice rule has no {field}",
                            )
                        )
    return problems


def error_output(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in machine.get("States", {}).items():
            outside = {
                k: v for k, v in state.items() if k not in ("Catch", "ItemProcessor", "Iterator", "Branches")
            }
            if any("$states.errorOutput" in source for source in _expressions(outside)):
                problems.append(
                    Problem(
                        "error-output-outside-catch",
                        f"{path}.States.{name}",
                        "$states.errorOutput exists only in a Catch's Output and Assign",
                    )
                )
    return problems


def express_budget(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for name, state in definition.get("States", {}).items():
        processor = state.get("ItemProcessor") or {}
        if processor.get("ProcessorConfig", {}).get("ExecutionType") != "EXPRESS":
            continue
        for task_name, task in processor.get("States", {}).items():
            if task.get("Type") != "Task":
                continue
            worst = express_worst_case_seconds(task)
            if worst is None or worst > EXPRESS_MAX_SECONDS:
                problems.append(
                    Problem(
                        "express-budget",
                        f"$.States.{name}.ItemProcessor.States.{task_name}",
                        f"worst case {worst if worst is not None else 'unbounded (no TimeoutSeconds)'} s of "
                        f"attempts and retry waits exceeds the {EXPRESS_MAX_SECONDS} s an EXPRESS child may run",
                    )
                )
    return problems


def express_worst_case_seconds(task: dict[str, Any]) -> float | None:
    """Every attempt (the first and every retry) at the task's timeout plus every backoff wait."""
    timeout = task.get("TimeoutSeconds")
    if not isinstance(timeout, int | float):
        return None
    retries = task.get("Retry", [])
    attempts = 1 + sum(rule.get("MaxAttempts", 3) for rule in retries)
    waits = sum(
        rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** k
        for rule in retries
        for k in range(rule.get("MaxAttempts", 3))
    )
    return attempts * timeout + waits


def map_limits(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in machine.get("States", {}).items():
            if state.get("Type") != "Map":
                continue
            at = f"{path}.States.{name}"
            batcher = state.get("ItemBatcher") or {}
            limit = batcher.get("MaxInputBytesPerBatch")
            if isinstance(limit, int) and not 1 <= limit <= MAX_INPUT_BYTES_PER_BATCH:
                problems.append(Problem("map-limits", f"{at}.ItemBatcher.MaxInputBytesPerBatch",
                                        f"{limit} not in 1..{MAX_INPUT_BYTES_PER_BATCH}"))  # fmt: skip
            items = batcher.get("MaxItemsPerBatch")
            if isinstance(items, int) and items < 1:
                problems.append(Problem("map-limits", f"{at}.ItemBatcher.MaxItemsPerBatch", f"{items} < 1"))
            tolerated = state.get("ToleratedFailurePercentage")
            if isinstance(tolerated, int | float) and not 0 <= tolerated <= 100:
                problems.append(
                    Problem("map-limits", f"{at}.ToleratedFailurePercentage", f"{tolerated} not in 0..100")
                )
            concurrency = state.get("MaxConcurrency")
            if isinstance(concurrency, int) and not 0 <= concurrency <= MAX_CONCURRENCY:
                problems.append(
                    Problem(
                        "map-limits", f"{at}.MaxConcurrency", f"{concurrency} not in 0..{MAX_CONCURRENCY}"
                    )
                )
            label = state.get("Label")
            if label is not None and not (isinstance(label, str) and _LABEL_RE.match(label)):
                problems.append(Problem("map-limits", f"{at}.Label",
                                        f"{label!r}: at most 40 letters, digits, '-' or '_'"))  # fmt: skip
            problems += _reader_writer_values(state, at)
    return problems


# ReaderConfig and WriterConfig values (input-output-itemreader.html: InputType CSV, JSON, JSONL, PARQUET or
# MANIFEST, an ATHENA_DATA manifest's files CSV, JSONL or PARQUET, CSVHeaderLocation FIRST_ROW or GIVEN;
# input-output-resultwriter.html: Transformation NONE, COMPACT or FLATTEN, OutputType JSON or JSONL).
_CONFIG_VALUES = {
    ("ItemReader", "ReaderConfig", "InputType"): frozenset({"CSV", "JSON", "JSONL", "PARQUET", "MANIFEST"}),
    ("ItemReader", "ReaderConfig", "CSVHeaderLocation"): frozenset({"FIRST_ROW", "GIVEN"}),
    ("ResultWriter", "WriterConfig", "Transformation"): frozenset({"NONE", "COMPACT", "FLATTEN"}),
    ("ResultWriter", "WriterConfig", "OutputType"): frozenset({"JSON", "JSONL"}),
}
ATHENA_DATA_INPUT_TYPES = frozenset({"CSV", "JSONL", "PARQUET"})


def _reader_writer_values(state: dict[str, Any], at: str) -> list[Problem]:
    problems = []
    for (outer, inner, key), allowed in _CONFIG_VALUES.items():
        config = (state.get(outer) or {}).get(inner) or {}
        if key in config and config[key] not in allowed:
            problems.append(
                Problem(
                    "map-limits",
                    f"{at}.{outer}.{inner}.{key}",
                    f"{config[key]!r} not one of {sorted(allowed)}",
                )
            )
    reader = (state.get("ItemReader") or {}).get("ReaderConfig") or {}
    if reader.get("ManifestType") == "ATHENA_DATA" and reader.get("InputType") not in ATHENA_DATA_INPUT_TYPES:
        problems.append(
            Problem(
                "map-limits",
                f"{at}.ItemReader.ReaderConfig.InputType",
                f"an ATHENA_DATA manifest's files are {sorted(ATHENA_DATA_INPUT_TYPES)}, not {reader.get('InputType')!r}",
            )
        )
    return problems


RULES = (
    states_all,
    variables,
    error_output,
    states_result_scope,
    state_fields,
    reachability,
    express_budget,
    map_limits,
)


def rule_problems(definition: dict[str, Any]) -> list[Problem]:
    """Our own rules only (no subprocess): what the local executor checks before it runs a definition."""
    return [p for rule in RULES for p in rule(definition)]


def check(definition: dict[str, Any]) -> tuple[list[Problem], set[Lag]]:
    """Every problem outside the known lags, and the lags that matched something."""
    found = [*asl_validator(definition), *statelint(definition), *asl_language_service(definition)]
    used: set[Lag] = set()
    problems = []
    for problem in found:
        lag = next((lag for lag in KNOWN_LAGS if lag.matches(problem, definition)), None)
        if lag is None:
            problems.append(problem)
        else:
            used.add(lag)
    problems += rule_problems(definition)
    return problems, used


def stale_lags(definitions: list[dict[str, Any]]) -> list[Lag]:
    """Known lags that match no validator message on any of these definitions."""
    used: set[Lag] = set()
    for definition in definitions:
        used |= check(definition)[1]
    return [lag for lag in KNOWN_LAGS if lag not in used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make check-definition FILE=<path>", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        definition = json.loads(args.file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"check-definition: {args.file}: {exc}", file=sys.stderr)
        return 2
    problems, _used = check(definition)
    for problem in problems:
        print(problem.line())
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
