"""``express-budget`` and ``map-limits``: the time an EXPRESS child may run, and the Map's limits and values."""

from __future__ import annotations

import json
import re
from typing import Any

from tools.definition_checks import Problem
from tools.definition_checks.walk import machines

EXPRESS_MAX_SECONDS = 300
MAX_INPUT_BYTES_PER_BATCH = 262_144
MAX_CONCURRENCY = 10_000
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


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


# An expression's value is unknown before the run: count each as this many bytes (an execution ARN, the
# longest context value a BatchInput usually carries, is at most 256 characters). A judgment, not an AWS
# rule: the ItemBatcher page does not say whether MaxInputBytesPerBatch counts BatchInput, while a child's
# whole input is capped at 256 KiB (service-quotas.html), so the batch must fit with the envelope on top.
EXPRESSION_BYTES_BOUND = 256


def batch_envelope_bound(batch_input: Any) -> int:
    """An upper bound of ``{"Items":[],"BatchInput":<batch_input>}`` in bytes, expressions at their bound."""

    def bound(value: Any) -> int:
        if isinstance(value, str) and value.startswith("{%") and value.endswith("%}"):
            return EXPRESSION_BYTES_BOUND + 2  # the value and its quotes
        if isinstance(value, dict):
            return (
                2 + sum(len(json.dumps(k)) + 1 + bound(v) for k, v in value.items()) + max(0, len(value) - 1)
            )
        if isinstance(value, list):
            return 2 + sum(bound(v) for v in value) + max(0, len(value) - 1)
        return len(json.dumps(value, separators=(",", ":")).encode())

    return len('{"Items":[],"BatchInput":}') + bound(batch_input)


def map_limits(definition: dict[str, Any]) -> list[Problem]:
    problems = []
    for path, machine, _child in machines(definition):
        for name, state in machine.get("States", {}).items():
            if state.get("Type") != "Map":
                continue
            at = f"{path}.States.{name}"
            batcher = state.get("ItemBatcher") or {}
            limit = batcher.get("MaxInputBytesPerBatch")
            if isinstance(limit, int) and not 1 <= limit <= MAX_INPUT_BYTES_PER_BATCH:
                problems.append(Problem("map-limits", f"{at}.ItemBatcher.MaxInputBytesPerBatch",
                                        f"{limit} not in 1..{MAX_INPUT_BYTES_PER_BATCH}"))  # fmt: skip
            elif isinstance(limit, int) and "BatchInput" in batcher:
                envelope = batch_envelope_bound(batcher["BatchInput"])
                if limit + envelope > MAX_INPUT_BYTES_PER_BATCH:
                    problems.append(Problem("map-limits", f"{at}.ItemBatcher.MaxInputBytesPerBatch",
                                            f"{limit} leaves no room for the BatchInput envelope (up to "
                                            f"{envelope} bytes) in a child's {MAX_INPUT_BYTES_PER_BATCH}-byte "
                                            "input"))  # fmt: skip
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
