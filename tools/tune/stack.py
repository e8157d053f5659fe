"""The planner for a named stack: the stage's settings and prices in, a ``Plan`` out.

``plan_stack("prod", rows=100_000_000)`` is what ``make tune`` runs and what tests call. It assembles the
stack's configuration as the engine does and validates it (``tools.stackfile.load``), loads prices with the stage's ``priceOverrides`` and any extra overrides,
measures a representative item and record for the stage unless sizes are given, and runs ``planner.plan``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from tools import stackfile
from tools.tune import prices, sizes
from tools.tune.limits import Capacity, Workload
from tools.tune.planner import Plan, plan
from tools.tune.speed import BENCHMARK_PATH, handler_speed

# What-if knobs: planner name -> Capacity field. They bypass the stack validation on purpose, so the
# planner can show what a refused value (MaxConcurrency 0, above the reserved concurrency) would do.
WHAT_IF_FIELDS = {
    "maxConcurrency": "max_concurrency",
    "maxItemsPerBatch": "max_items_per_batch",
    "maxInputBytesPerBatch": "max_input_bytes_per_batch",
    "lambdaReservedConcurrency": "lambda_reserved_concurrency",
    "accountLambdaConcurrency": "account_lambda_concurrency",
    "lambdaMemoryMb": "lambda_memory_mb",
    "targetWindowMinutes": "target_window_minutes",
}


def plan_stack(
    stack: str,
    rows: int,
    *,
    item_bytes: float | None = None,
    record_bytes: float | None = None,
    item_sizes: Sequence[int] | None = None,
    record_sizes: Sequence[int] | None = None,
    ms_per_batch: float | None = None,
    price_overrides: Sequence[str] = (),
    what_if: Mapping[str, int] | None = None,
    overlapping_runs: int = 1,
    benchmark: Path | None = BENCHMARK_PATH,
    root: Path | None = None,
) -> Plan:
    """Plan one day of ``rows`` readings for ``stack`` (``dev``, ``prod``).

    ``item_sizes``/``record_sizes`` (one per row, as a local run measures them) give exact counts;
    ``item_bytes``/``record_bytes`` are measured averages; neither: a representative example per stage.
    ``root`` is the folder holding ``Pulumi.yaml`` and the stack files (default: this project).
    """
    loaded = stackfile.load(stack, root=root)
    settings = loaded.settings
    capacity = Capacity.from_settings(settings)
    unknown = sorted(set(what_if or {}) - set(WHAT_IF_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown what-if setting(s) {', '.join(unknown)}; allowed: {', '.join(WHAT_IF_FIELDS)}"
        )
    capacity = replace(capacity, **{WHAT_IF_FIELDS[key]: value for key, value in (what_if or {}).items()})

    rates = prices.load(price_overrides, stage_overrides=settings.price_overrides)
    source = "measured" if item_bytes is not None else "estimated from a representative item"
    if item_sizes is not None:
        rows = len(item_sizes)
        item_bytes = sum(item_sizes) / rows if rows else 1
        source = "exact per-item sizes"
    if record_sizes is not None and rows:
        record_bytes = sum(record_sizes) / rows
    workload = Workload(
        rows=rows,
        item_bytes=item_bytes or sizes.item_bytes(unload_format=capacity.unload_format),
        record_bytes=record_bytes or sizes.record_bytes(unload_format=capacity.unload_format),
        batch_input_bytes=sizes.batch_input_bytes(),
        item_sizes=tuple(item_sizes) if item_sizes is not None else None,
        record_sizes=tuple(record_sizes) if record_sizes is not None else None,
        sizes_source=source,
    )
    speed = handler_speed(
        rates, ms_per_batch=ms_per_batch, benchmark=benchmark, input_format=capacity.unload_format
    )
    return plan(capacity, workload, speed=speed, rates=rates, overlapping_runs=overlapping_runs)
