"""``state-fields``: the fields each state type has in its query language, and those of retriers, catchers
and JSONata choice rules."""

from __future__ import annotations

from typing import Any

from tools.definition_checks import Problem
from tools.definition_checks.walk import machines, states_of

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
    for path, machine, _child in machines(definition):
        for name, state in states_of(machine).items():
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
