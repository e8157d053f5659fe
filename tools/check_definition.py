"""``make check-definition FILE=<path>``: every independent validator and our own rules on a definition.

Validators (each independent of this project's understanding of AWS):

* ``asl-validator`` (npm, package.json): the ASL JSON schema.
* ``statelint`` (PyPI, requirements-dev.txt): the ASL spec's rules, among them "States.ALL can only appear
  in the last element, and by itself", which asl-validator does not check.

Both lag behind AWS on newer fields; each lag is one entry of ``KNOWN_LAGS`` (validator, the message it
matches, why it is a lag, the AWS page documenting the field). A message no entry matches is a problem;
an entry that matches no message of the stage definitions is stale (``stale_lags``, checked by a test),
so the list cannot rot.

Our rules, for what no validator checks (each cites its source):

* ``states-all``: ``States.ALL`` alone in its ``ErrorEquals`` and only in the last retrier or catcher
  (ASL spec, "Error names"; AWS rejects it at create time: "States.ALL must appear alone and at end of
  list", aws/aws-cdk#10530).
* ``unassigned-variable``: every ``$variable`` a state reads is assigned on every path that reaches it,
  a Catch edge carrying only the catcher's ``Assign`` (a failed state's own ``Assign`` does not happen);
  an unassigned variable is ``States.QueryEvaluationError`` at run time
  (step-functions/latest/dg/workflow-variables.html).
* ``child-reads-parent-variable``: a Distributed Map's child workflow cannot read the parent's variables
  (workflow-variables.html, "Variable scope").
* ``error-output-outside-catch``: ``$states.errorOutput`` exists only in a Catch (workflow-variables.html,
  transforming-data.html, "Reserved variable: $states").
* ``express-budget``: in an EXPRESS child, every attempt of a Task at its ``TimeoutSeconds`` plus every
  retry wait fits the 5 minutes an EXPRESS execution may run (choosing-workflow-type.html). Judgment:
  every attempt is counted at the full timeout, the worst case.
* ``map-limits``: ``MaxInputBytesPerBatch`` at most 262,144, ``ToleratedFailurePercentage`` 0-100,
  ``MaxConcurrency`` 0-10,000, ``Label`` at most 40 characters without whitespace or special characters
  (input-output-itembatcher.html, state-map-distributed.html).
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
from tools.localrun.expressions import workflow_variables

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
    return [Problem("asl-validator", "$", m) for m in aslcheck.asl_validator(definition)]


def asl_language_service(definition: dict[str, Any]) -> list[Problem]:
    """npm ``amazon-states-language-service`` (AWS Toolkit's ASL editor), through tools/asl_language_service.js."""
    return [
        Problem("asl-language-service", d["path"], d["message"])
        for d in aslcheck.asl_language_service(definition)
    ]


# ------------------------------------------------------------------------------------------ our rules
def _machines(definition: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, machine, is a distributed child) for the top level and every ItemProcessor/branch."""
    yield path, definition, False
    for name, state in definition.get("States", {}).items():
        processor = state.get("ItemProcessor")
        if processor:
            distributed = processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
            for sub_path, machine, _child in _machines(processor, f"{path}.States.{name}.ItemProcessor"):
                yield sub_path, machine, distributed or _child


def states_all(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in machine.get("States", {}).items():
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


def _expressions(value: Any) -> Iterator[str]:
    for _path, source in aslcheck.expressions(value) if isinstance(value, dict | list) else []:
        yield source
    if isinstance(value, str) and value.strip().startswith("{%"):
        yield value.strip()[2:-2]


def _reads(value: Any) -> set[str]:
    return {v for source in _expressions(value) for v in workflow_variables(source)}


def _state_reads(state: dict[str, Any]) -> set[str]:
    """Variables a state reads when it runs (its catchers' fields are read on the Catch edge)."""
    fields = ("Arguments", "Output", "Assign", "Cause", "Error", "Seconds", "Choices", "ItemSelector",
              "ItemBatcher", "ItemReader", "ResultWriter", "MaxConcurrency", "ToleratedFailurePercentage")  # fmt: skip
    return set().union(*(_reads(state[f]) for f in fields if f in state))


def variables(definition: dict[str, Any]) -> list[Problem]:
    """Forward "definitely assigned" dataflow per machine (intersection over the edges reaching a state)."""
    problems = []
    for path, machine, child in _machines(definition):
        # Each machine starts empty: a distributed map's child has none of the parent's variables.
        states = machine.get("States", {})
        everything = set().union(*(set(s.get("Assign", {}) or {}) for s in states.values()), set())
        for s in states.values():
            for rule in s.get("Catch", []):
                everything |= set(rule.get("Assign", {}) or {})
        assigned: dict[str, set[str]] = {name: set(everything) for name in states}
        start = machine.get("StartAt")
        if start not in states:
            continue
        assigned[start] = set()
        changed = True
        while changed:
            changed = False
            for name, state in states.items():
                before = assigned[name]
                edges: list[tuple[str, set[str]]] = []
                after = before | set(state.get("Assign", {}) or {})
                for key in ("Next", "Default"):
                    if key in state:
                        edges.append((state[key], after if key == "Next" else before))
                for choice in state.get("Choices", []):
                    edges.append((choice["Next"], before))
                for rule in state.get("Catch", []):
                    edges.append((rule["Next"], before | set(rule.get("Assign", {}) or {})))
                for target, carried in edges:
                    if target in assigned and target != start and not assigned[target] <= carried:
                        assigned[target] &= carried
                        changed = True
                    elif target == start and not assigned[start] <= carried:
                        assigned[start] &= carried
                        changed = True
        reachable = _reachable(states, start)
        for name, state in states.items():
            if name not in reachable:
                continue
            missing = sorted(_state_reads(state) - assigned[name])
            for rule in state.get("Catch", []):
                missing += sorted(
                    v
                    for v in _reads({k: rule[k] for k in ("Output", "Assign") if k in rule})
                    if v not in assigned[name]
                )
            for variable in sorted(set(missing)):
                rule_id = "child-reads-parent-variable" if child else "unassigned-variable"
                problems.append(
                    Problem(
                        rule_id,
                        f"{path}.States.{name}",
                        f"reads ${variable}, which is not assigned on every path reaching {name}"
                        + (
                            " (a distributed map's children cannot read the parent's variables)"
                            if child
                            else ""
                        ),
                    )
                )
    return problems


def _reachable(states: dict[str, Any], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        todo += [state[k] for k in ("Next", "Default") if k in state]
        todo += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
    return seen


def error_output(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in _machines(definition):
        for name, state in machine.get("States", {}).items():
            outside = {k: v for k, v in state.items() if k not in ("Catch", "ItemProcessor")}
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
    return problems


RULES = (states_all, variables, error_output, express_budget, map_limits)


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
