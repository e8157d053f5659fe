"""Advice on a stage's settings: the values to set, and warnings about dangerous or wasted ones.

``recommend`` gives the batch limits that fill a child's 256 KiB input and the smallest MaxConcurrency that
finishes a run within the stage's target window; ``findings`` flags settings that throttle, fail batches,
leave a limit unused or miss the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

from spec import settings
from tools.tune.costs import DesignResult, our_design
from tools.tune.limits import Capacity, Workload
from tools.tune.packing import batch_envelope_bytes, items_per_batch
from tools.tune.prices import Rates
from tools.tune.speed import HandlerSpeed
from tools.tune.units import MIB, format_duration

Severity = Literal["danger", "wasted", "target"]

# Demand above this multiple of a Firehose quota is dangerous, not just wasted: throttling that heavy
# outlasts the detector's bounded delivery retries (deliveryMaxAttempts with backoff).
FIREHOSE_DANGER_RATIO: Final = 2.0


@dataclass(frozen=True)
class Finding:
    """A warning about a setting: dangerous, wasted, or missing the stage's target window."""

    severity: Severity
    setting: str
    message: str


@dataclass(frozen=True)
class Recommendation:
    """A value to set, and why."""

    setting: str
    value: int | None
    reason: str


def smallest_concurrency_within(
    target_seconds: float, capacity: Capacity, workload: Workload, speed: HandlerSpeed, rates: Rates
) -> tuple[int | None, DesignResult]:
    """The smallest MaxConcurrency whose run fits ``target_seconds`` if Lambda concurrency were raised to it.

    Returns ``(None, run at the map limit)`` when no MaxConcurrency is enough (the Firehose quota, fixed
    query time or a single batch's duration is already too long). Wall time never rises with
    concurrency, so a binary search over 1..10,000 finds it.
    """
    limit = int(rates["map_concurrency_limit"])
    best = our_design(capacity, workload, speed, rates, parallel=limit)
    if best.wall.total > target_seconds:
        return None, best
    low, high = 1, limit
    while low < high:
        middle = (low + high) // 2
        if our_design(capacity, workload, speed, rates, parallel=middle).wall.total <= target_seconds:
            high = middle
        else:
            low = middle + 1
    return low, our_design(capacity, workload, speed, rates, parallel=low)


def recommended_batching(capacity: Capacity, workload: Workload, rates: Rates) -> Capacity:
    """``capacity`` with the batch limits the planner recommends: as many items as fit the 256 KiB input.

    The concurrency recommendation is made for these limits, so the recommended values are one coherent
    setting (``--apply`` writes them together) and planning the applied file recommends it again.
    """
    # The child input quota, less the room settings keep for the BatchInput envelope.
    map_input = min(int(rates["map_max_input_bytes"]), settings.MAX_INPUT_BYTES_PER_BATCH)
    fit = items_per_batch(
        workload.item_bytes,
        max_items=100_000,
        max_bytes=map_input,
        batch_input_bytes=workload.batch_input_bytes,
    )
    return replace(capacity, max_items_per_batch=fit, max_input_bytes_per_batch=map_input)


def recommend(
    capacity: Capacity, workload: Workload, speed: HandlerSpeed, rates: Rates, ours: DesignResult
) -> tuple[list[Recommendation], list[str]]:
    recs: list[Recommendation] = []
    notes: list[str] = []
    tuned = recommended_batching(capacity, workload, rates)
    fit = tuned.max_items_per_batch
    at = "" if fit == capacity.max_items_per_batch else f" at maxItemsPerBatch={fit:,}"
    target = capacity.target_window_minutes * 60
    needed, run = smallest_concurrency_within(target, tuned, workload, speed, rates)
    if needed is not None:
        reason = (
            f"the smallest MaxConcurrency that finishes {workload.rows:,} rows within the "
            f"{capacity.target_window_minutes}-minute target ({format_duration(run.wall.total)}{at})"
        )
        if needed > capacity.account_lambda_concurrency:
            reason += f"; needs an account Lambda concurrency quota >= {needed}"
        recs.append(Recommendation("maxConcurrency", needed, reason))
    else:
        fixed = run.wall.unload + run.wall.map_start + run.wall.after_map
        room = target - fixed
        if room > 0 and run.wall.map_firehose > room:
            factor = run.wall.map_firehose / room
            reason = (
                f"no MaxConcurrency finishes within {capacity.target_window_minutes} minutes: the Firehose "
                f"stream's Direct PUT quota alone needs {format_duration(run.wall.map_firehose)}. Raise the stream's "
                f"quota about {factor:.1f}x (to ~{rates['firehose_bytes_per_second'] * factor / MIB:.0f} MiB/s; "
                "the three quotas scale together) or lengthen targetWindowMinutes"
            )
        else:
            reason = (
                f"no MaxConcurrency finishes within {capacity.target_window_minutes} minutes: fixed query time "
                f"and one batch already take {format_duration(run.wall.total)}"
            )
        # The fastest run possible is reached at some concurrency already; more only adds throttling.
        enough, fastest = smallest_concurrency_within(run.wall.total, tuned, workload, speed, rates)
        recs.append(
            Recommendation(
                "maxConcurrency",
                enough,
                reason + f"; until then {enough} children already reach the fastest possible run "
                f"({format_duration(fastest.wall.total)}{at}) and more only wait on throttling",
            )
        )
    concurrency = recs[-1].value
    reserved = capacity.lambda_reserved_concurrency
    if concurrency is not None and reserved is not None and concurrency > reserved:
        recs.append(
            Recommendation(
                "lambdaReservedConcurrency",
                concurrency,
                f"maxConcurrency={concurrency} needs as many concurrent detector invocations (today {reserved})",
            )
        )
    recs.append(
        Recommendation(
            "maxItemsPerBatch",
            fit,
            f"the most {math.ceil(workload.item_bytes):,}-byte items ({workload.sizes_source}) that fit the "
            f"256 KiB child input with the {batch_envelope_bytes(workload.batch_input_bytes):,}-byte envelope",
        )
    )
    recs.append(
        Recommendation(
            "maxInputBytesPerBatch",
            tuned.max_input_bytes_per_batch,
            "the whole 256 KiB child input, so rows larger than measured shrink a batch instead of failing it",
        )
    )
    if fit != capacity.max_items_per_batch:
        notes.append(
            f"At maxItemsPerBatch={fit:,} the detector would take ~"
            f"{speed.handler_ms(fit, 1, memory_mb=capacity.lambda_memory_mb, mb_per_vcpu=rates['lambda_mb_per_vcpu']):.0f} ms "
            f"per batch (timeout {capacity.lambda_timeout_seconds} s)."
        )
    return recs, notes


def findings(
    capacity: Capacity, workload: Workload, rates: Rates, ours: DesignResult, overlapping_runs: int
) -> list[Finding]:
    found: list[Finding] = []
    mc, reserved = capacity.max_concurrency, capacity.lambda_reserved_concurrency
    map_limit = int(rates["map_concurrency_limit"])
    if mc == 0:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"0 means unlimited: up to {map_limit:,} children at once, far above what the detector's "
                "reserved concurrency and the Firehose stream take; throttled invocations and deliveries retry "
                "and then fail batches",
            )
        )
    elif reserved is not None and mc > reserved:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"{mc} is above lambdaReservedConcurrency={reserved}: {mc - reserved} children at a time are "
                "throttled (Lambda.TooManyRequestsException), retried, and fail their batch when retries run out",
            )
        )
    if reserved is not None and reserved > capacity.account_lambda_concurrency:
        found.append(
            Finding(
                "danger",
                "lambdaReservedConcurrency",
                f"{reserved} is above the account's Lambda concurrency ({capacity.account_lambda_concurrency}); "
                "the reservation cannot be made",
            )
        )
    load = ours.firehose
    if load.binds:
        over = load.utilisation[load.binding or "bytes"]
        # Mildly over: children only wait on retries. Far over: the detector's bounded retries run out
        # and batches fail, which fails the run unless toleratedFailurePercentage absorbs it.
        found.append(
            Finding(
                "danger" if over > FIREHOSE_DANGER_RATIO else "wasted",
                "maxConcurrency",
                f"the Firehose stream keeps up with only ~{load.sustainable_parallelism:.1f} children "
                f"({load.binding} quota, {over:.1f}x over at {ours.parallelism.effective}); the rest wait on "
                "throttled PutRecordBatch calls (retries, and failed batches once deliveryMaxAttempts run out). "
                "Raise the stream quota or lower MaxConcurrency",
            )
        )
    bytes_fit = items_per_batch(
        workload.item_bytes,
        max_items=10**9,
        max_bytes=capacity.max_input_bytes_per_batch,
        batch_input_bytes=workload.batch_input_bytes,
    )
    if bytes_fit < capacity.max_items_per_batch:
        found.append(
            Finding(
                "wasted",
                "maxItemsPerBatch",
                f"{capacity.max_items_per_batch} is never reached: maxInputBytesPerBatch="
                f"{capacity.max_input_bytes_per_batch:,} fills at {bytes_fit} items of "
                f"{math.ceil(workload.item_bytes)} bytes",
            )
        )
    if ours.handler_ms > capacity.lambda_timeout_seconds * 1000 / 2:
        found.append(
            Finding(
                "danger",
                "lambdaTimeoutSeconds",
                f"a batch takes ~{ours.handler_ms / 1000:.1f} s, more than half the {capacity.lambda_timeout_seconds} s "
                "timeout; Firehose throttling retries could exceed it",
            )
        )
    if ours.child_ms / 1000 > rates["express_max_seconds"]:
        found.append(
            Finding(
                "danger",
                "maxItemsPerBatch",
                f"a child takes ~{ours.child_ms / 1000:.0f} s; Express children stop at {rates['express_max_seconds']:.0f} s",
            )
        )
    period = rates["schedule_period_seconds"]
    runs_open = max(overlapping_runs, math.ceil(ours.wall.total / period))
    if ours.wall.total > period:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"a run takes {format_duration(ours.wall.total)}, longer than the {format_duration(period)} between "
                f"scheduled runs: {runs_open} runs would be open at once and share the Lambda and Firehose limits",
            )
        )
    open_limit = rates["open_map_run_limit"]
    if runs_open >= 0.9 * open_limit:
        found.append(
            Finding(
                "danger",
                "overlapping runs",
                f"{runs_open} runs open at once is near the hard limit of {open_limit:,.0f} open Map Runs per "
                "account and Region; further runs fail to start their map",
            )
        )
    if runs_open > 1 and reserved is not None and runs_open * ours.parallelism.effective > reserved:
        found.append(
            Finding(
                "danger",
                "maxConcurrency",
                f"{runs_open} overlapping runs x {ours.parallelism.effective} children exceed "
                f"lambdaReservedConcurrency={reserved}: the runs throttle each other",
            )
        )
    target = capacity.target_window_minutes * 60
    if ours.wall.total > target:
        found.append(
            Finding(
                "target",
                "targetWindowMinutes",
                f"a run of {workload.rows:,} rows takes {format_duration(ours.wall.total)}, beyond the "
                f"{capacity.target_window_minutes}-minute target",
            )
        )
    return found
