"""Where the language's reserved names may stand: ``states-all``, ``states-result-scope`` and
``error-output-outside-catch``."""

from __future__ import annotations

import re
from typing import Any

from tools.definition_checks import Problem
from tools.definition_checks.walk import expressions, expressions_at, machines, states_of
from tools.localrun.expressions import _STRING_RE


def states_all(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in machines(definition):
        for name, state in states_of(machine).items():
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


def _code(source: str) -> str:
    """A JSONata expression with its string literals emptied, so only code is searched."""
    return _STRING_RE.sub('""', source)


# Where $states.result exists: the Output and Assign of a Task, Parallel or Map state, after it succeeded
# ("result: API or sub-workflow's result (if successful)"; a Catch has $states.errorOutput instead;
# workflow-variables.html, "Reserved variable: $states"; transforming-data.html). AWS's own language service
# offers it in exactly those fields (amazon-states-language-service, getReservedVariables).
RESULT_STATE_TYPES = frozenset({"Task", "Parallel", "Map"})
RESULT_FIELDS = frozenset({"Output", "Assign"})
_RESULT_RE = re.compile(r"\$states\s*\.\s*result\b")


def states_result_scope(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in machines(definition):
        for name, state in states_of(machine).items():
            for field, value in state.items():
                if field in ("ItemProcessor", "Iterator", "Branches"):
                    continue  # nested machines are visited on their own
                if field in RESULT_FIELDS and state.get("Type") in RESULT_STATE_TYPES:
                    continue
                for at, source in expressions_at(value, f"{path}.States.{name}.{field}"):
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


def error_output(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in machines(definition):
        for name, state in machine.get("States", {}).items():
            outside = {
                k: v for k, v in state.items() if k not in ("Catch", "ItemProcessor", "Iterator", "Branches")
            }
            if any("$states.errorOutput" in source for source in expressions(outside)):
                problems.append(
                    Problem(
                        "error-output-outside-catch",
                        f"{path}.States.{name}",
                        "$states.errorOutput exists only in a Catch's Output and Assign",
                    )
                )
    return problems
