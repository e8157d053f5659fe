"""The planner's inputs, and the limits that bind a run's parallelism.

``Capacity`` (a stage's settings, or a what-if variation of them) and ``Workload`` (a day's rows and their
sizes) are what a plan is made from. ``effective_parallelism`` says which of MaxConcurrency, Lambda
reserved concurrency, the account's Lambda concurrency and the Distributed Map's 10,000 binds;
``firehose_load`` says whether the stream's Direct PUT quota binds at that parallelism.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tools.tune.prices import Rates


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The settings the planner reads: a stage's, or a what-if variation of them.

    Unlike ``Settings`` this accepts values the stack validation refuses (MaxConcurrency 0, above the
    reserved concurrency) so the planner can explain why they are refused.
    """

    stage: str
    max_concurrency: int  # 0 = unlimited (the Distributed Map's 10,000)
    max_items_per_batch: int
    max_input_bytes_per_batch: int
    lambda_reserved_concurrency: int | None  # None = draws on the account's unreserved pool
    account_lambda_concurrency: int
    lambda_memory_mb: int
    lambda_architecture: str
    lambda_timeout_seconds: int
    firehose_buffer_interval_seconds: int
    firehose_buffer_size_mb: int
    firehose_compression: str
    target_window_minutes: int
    unload_format: str
    delivery_wait_seconds: int = 0  # the WaitForDelivery state after the map
    reconcile_attempts: int = 1  # a run that reconciles at the first check

    @classmethod
    def from_settings(cls, settings: Any) -> Capacity:
        """The planner's view of a stage's ``Settings``; the delivery wait as the workflow derives it."""
        from components.workflow import DELIVERY_MARGIN_SECONDS

        derived = {"delivery_wait_seconds", "reconcile_attempts"}
        names = {f for f in cls.__dataclass_fields__ if f not in derived}
        return cls(
            **{name: getattr(settings, name) for name in names},
            delivery_wait_seconds=settings.firehose_buffer_interval_seconds + DELIVERY_MARGIN_SECONDS,
        )


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A day's data: row count and the sizes that drive batching and delivery.

    ``item_sizes``/``record_sizes`` (one per row) switch the planner to exact counts; otherwise every
    item is ``item_bytes`` and every analysis line ``record_bytes`` (averages: an estimate).
    """

    rows: int
    item_bytes: float
    record_bytes: float
    batch_input_bytes: int
    item_sizes: tuple[int, ...] | None = None
    record_sizes: tuple[int, ...] | None = None
    sizes_source: str = "estimate"

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"rows={self.rows}: a run needs at least one row")
        if self.item_bytes <= 0 or self.record_bytes <= 0:
            raise ValueError(
                f"item_bytes={self.item_bytes}, record_bytes={self.record_bytes}: must be positive"
            )
        for name in ("item_sizes", "record_sizes"):
            sizes = getattr(self, name)
            if sizes is not None and len(sizes) != self.rows:
                raise ValueError(f"{name} has {len(sizes)} entries; rows={self.rows}")

    @property
    def exact(self) -> bool:
        return self.item_sizes is not None


@dataclass(frozen=True)
class Parallelism:
    """Children that can run at once, and which limit decides it."""

    limits: tuple[tuple[str, int], ...]
    effective: int
    binding: tuple[str, ...]


MAX_CONCURRENCY: Final = "MaxConcurrency"
RESERVED: Final = "Lambda reserved concurrency"
ACCOUNT: Final = "account Lambda concurrency"
MAP_LIMIT: Final = "Distributed Map limit"


def effective_parallelism(
    *, max_concurrency: int, reserved: int | None, account: int, map_limit: int = 10_000
) -> Parallelism:
    """The smallest of MaxConcurrency, reserved, account and map limits.

    MaxConcurrency 0 means unlimited: it is no limit of its own, so the map's 10,000 stands in for it.
    """
    limits = [(MAX_CONCURRENCY, max_concurrency)] if max_concurrency else []
    if reserved is not None:
        limits.append((RESERVED, reserved))
    limits += [(ACCOUNT, account), (MAP_LIMIT, map_limit)]
    effective = min(value for _name, value in limits)
    binding = tuple(name for name, value in limits if value == effective)
    return Parallelism(limits=tuple(limits), effective=effective, binding=binding)


@dataclass(frozen=True)
class FirehoseLoad:
    """The stream's Direct PUT demand at the effective parallelism against its quotas (per second)."""

    demand: Mapping[str, float]
    quota: Mapping[str, float]
    binds: bool
    binding: str | None  # the quota with the highest demand/quota ratio, when above 1
    sustainable_parallelism: float  # children the stream keeps up with (fractional: a rate)
    seconds_at_quota: float  # the run's Firehose traffic at the quota: the map can't be faster

    @property
    def utilisation(self) -> dict[str, float]:
        return {key: self.demand[key] / self.quota[key] for key in self.quota}


def firehose_load(
    *,
    parallelism: int,
    child_seconds: float,
    per_child: Mapping[str, float],
    totals: Mapping[str, float],
    rates: Rates,
) -> FirehoseLoad:
    """Demand = children at once x per-child traffic / child duration, for requests, records and bytes."""
    quota = {
        "requests": rates["firehose_requests_per_second"],
        "records": rates["firehose_records_per_second"],
        "bytes": rates["firehose_bytes_per_second"],
    }
    demand = {key: parallelism * per_child[key] / child_seconds for key in quota}
    ratios = {key: demand[key] / quota[key] if quota[key] else math.inf for key in quota}
    worst = max(ratios, key=lambda key: ratios[key])
    sustainable = min(
        (quota[key] * child_seconds / per_child[key] for key in quota if per_child[key] > 0), default=math.inf
    )
    seconds = max((totals[key] / quota[key] if quota[key] else math.inf) for key in quota)
    return FirehoseLoad(
        demand=demand,
        quota=quota,
        binds=ratios[worst] > 1,
        binding=worst if ratios[worst] > 1 else None,
        sustainable_parallelism=sustainable,
        seconds_at_quota=seconds,
    )
