"""Capacity and cost planner: choose MaxConcurrency, batch sizes and Lambda concurrency from numbers.

``make tune STACK=<stage> ROWS=<n>`` (``python -m tools.tune``) or ``plan_stack(stage, rows)`` compute, for a
stage's settings and a day of readings, every billed unit of a run (children, transitions, Express
requests, Lambda GB-seconds, Firehose records/calls/bytes, Athena bytes, S3 requests), the limit that binds
the parallelism, whether the Firehose quota binds, the wall time and the cost, next to the reference
sample's design on the same rows, with recommendations and warnings. ``--apply`` writes the recommended
values into the stack file (``tools.tune.apply``); ``python -m tools.tune.figures`` regenerates the
figures the README and docs/tuning.md show. See docs/tuning.md.

Batching (``batch_sizes``) is exact and shared with the local run; Firehose packing and billing are the
detector's own (``deliver`` runs ``functions/detector/delivery.py``), so the planner, the detector and
``make demo`` count the same way.

The model is pure arithmetic (no AWS, no Pulumi; only ``speed`` reads a file), one module per seam, each
using only those listed before it: ``units`` (byte units, durations), ``packing`` (batching and Firehose
delivery, exact), ``limits`` (the inputs ``Capacity`` and ``Workload``; which limit binds the parallelism;
the Firehose load), ``speed`` (the detector's timing, from the benchmark file or ``prices.yaml``), ``costs``
(counts, wall time and cost of one run, ours and the reference sample's), ``advice`` (recommendations and
warnings) and ``planner`` (``plan`` and the ``Plan`` it returns). Around it: ``prices`` and ``sizes`` (its
numbers), ``stack`` (a stage's files in, a plan out), ``report`` (Markdown), ``apply`` (``--apply``) and
``figures`` (the docs' figures).
"""

from tools.tune.limits import Capacity, Workload, effective_parallelism
from tools.tune.packing import (
    BatchingError,
    RunCounts,
    batch_envelope_bytes,
    batch_sizes,
    count_run,
    deliver,
    items_per_batch,
    json_size,
)
from tools.tune.planner import Plan, plan
from tools.tune.prices import PriceOverrideError, Rates
from tools.tune.prices import load as load_rates
from tools.tune.speed import HandlerSpeed
from tools.tune.stack import plan_stack

__all__ = [
    "BatchingError",
    "Capacity",
    "HandlerSpeed",
    "Plan",
    "PriceOverrideError",
    "Rates",
    "RunCounts",
    "Workload",
    "batch_envelope_bytes",
    "batch_sizes",
    "count_run",
    "deliver",
    "effective_parallelism",
    "items_per_batch",
    "json_size",
    "load_rates",
    "plan",
    "plan_stack",
]
