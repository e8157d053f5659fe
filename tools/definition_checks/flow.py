"""Rules along the transitions: ``unassigned-variable``, ``child-reads-parent-variable`` and ``reachability``."""

from __future__ import annotations

from typing import Any

from tools.definition_checks import Problem
from tools.definition_checks.walk import expressions, machines, states_of, sub_machines
from tools.localrun.expressions import workflow_variables


def _reads(value: Any) -> set[str]:
    return {v for source in expressions(value) for v in workflow_variables(source)}


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
    states = states_of(machine)
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
        for sub_path, sub, distributed in sub_machines(name, state, path):
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
    for path, machine, _child in machines(definition):
        states = states_of(machine)
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
