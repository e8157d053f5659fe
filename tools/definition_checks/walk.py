"""What our rules walk: every (nested) state machine of a definition, and every JSONata expression in a value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tools import aslcheck


def sub_machines(name: str, state: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
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


def machines(definition: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, machine, is inside a distributed map) for the top level, every ItemProcessor and branch."""
    yield path, definition, False
    for name, state in states_of(definition).items():
        for sub_path, machine, distributed in sub_machines(name, state, path):
            for deeper_path, deeper, child in machines(machine, sub_path):
                yield deeper_path, deeper, distributed or child


def states_of(machine: dict[str, Any]) -> dict[str, Any]:
    states = machine.get("States")
    return {k: v for k, v in states.items() if isinstance(v, dict)} if isinstance(states, dict) else {}


def expressions_at(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``{% %}`` JSONata expression in a value, as (JSON path, source without the markers)."""
    for at, node in aslcheck.walk(value, path):
        if isinstance(node, str):
            stripped = node.strip()
            if stripped.startswith("{%") and stripped.endswith("%}"):
                yield at, stripped[2:-2]


def expressions(value: Any) -> Iterator[str]:
    for _path, source in expressions_at(value, "$"):
        yield source
