"""A plan is arithmetic: the same memory for a hundred billion readings as for ten thousand (issue 16).

Not timed (the machine is shared); memory is measured with ``tracemalloc``, which counts every Python
allocation, so a per-batch or per-row list at 1e11 rows (~140 million batches) could not stay under the
bound. benchmarks/bench_tune.py prints the time and the peak of the whole command.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tools.tune import costs, limits, packing, plan_stack, planner

from .test_plan import CAPACITY, RATES, SPEED

BOUND_MIB = 4.0


def peak_mib(run: Callable[[], Any]) -> float:
    costs.clear_caches()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_plan_for_1e11_rows_takes_what_one_for_1e4_takes():
    plan_stack("prod", 10_000, benchmark=None)  # imports and caches outside the measurement
    small = peak_mib(lambda: plan_stack("prod", 10_000, benchmark=None))
    huge = peak_mib(lambda: plan_stack("prod", 100_000_000_000, benchmark=None))
    assert huge < BOUND_MIB
    # Both are full batches plus a remainder (prod's batches are about 2,600 rows), each kind packed
    # once: a constant, whatever ROWS.
    assert huge < small + 0.5


def test_the_model_alone_at_1e11_rows():
    workload = limits.Workload(rows=100_000_000_000, item_bytes=369, record_bytes=820, batch_input_bytes=150)
    capacity = replace(CAPACITY, max_items_per_batch=700, max_input_bytes_per_batch=262_144)
    plan = planner.plan(capacity, workload, speed=SPEED, rates=RATES)  # warm
    # One batch's lines (700 x 820 bytes) are packed once: about three times 574 KB at the peak.
    assert peak_mib(lambda: planner.plan(capacity, workload, speed=SPEED, rates=RATES)) < BOUND_MIB
    assert plan.ours.batches == math.ceil(100_000_000_000 / 700)
    assert plan.ours.firehose_bytes == 100_000_000_000 * 820
    assert plan.ours.lambda_invocations == plan.ours.batches


def test_the_memory_bound_can_fail():
    """Negative control: one object per batch, as the planner once kept, is seen by the same measurement."""
    batches = math.ceil(1_000_000_000 / 700)  # a list of references only, for a mere 1e9 rows
    assert peak_mib(lambda: [packing.deliver_uniform(700, 820)] * batches) > BOUND_MIB
