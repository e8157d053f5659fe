"""``plan``: the planner's answer for one stage and one day of rows.

The counts, wall time and cost of one run for this project's design and for the reference sample's design
on the same rows (``tools.tune.costs``), with recommendations and warnings (``tools.tune.advice``) and the
floor (the readings' own bytes through Firehose). A plan is arithmetic: it takes the same memory and time
for any number of rows (benchmarks/bench_tune.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from tools.tune import advice, costs
from tools.tune.advice import Finding, Recommendation
from tools.tune.costs import DesignResult
from tools.tune.limits import Capacity, Workload
from tools.tune.prices import Rates
from tools.tune.speed import HandlerSpeed
from tools.tune.units import GIB


@dataclass(frozen=True)
class Floor:
    """What Firehose ingestion costs at the least: the readings' own bytes, each sent once, unrounded.

    A reading's bytes are the map item the detector receives for it (the row as the UNLOAD wrote it, its
    source file and index): whatever an analysis record adds to that (verdict, ids, timestamps) and
    whatever Firehose's 5 KB rounding adds is above the floor. No design ingests less unless it drops
    part of the reading, so the distance between this and the modelled Firehose cost is what slimmer
    records could still win.
    """

    reading_bytes: float
    bytes_per_million: float
    cost_per_million: float

    @classmethod
    def of(cls, workload: Workload, rates: Rates) -> Floor:
        per_million = workload.item_bytes * 1_000_000
        return cls(
            reading_bytes=workload.item_bytes,
            bytes_per_million=per_million,
            cost_per_million=per_million / GIB * rates["firehose_per_gb"],
        )


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one stage and one day of rows."""

    capacity: Capacity
    workload: Workload
    speed: HandlerSpeed
    rates: Rates
    ours: DesignResult
    reference: DesignResult
    recommendations: tuple[Recommendation, ...]
    findings: tuple[Finding, ...]
    floor: Floor
    overlapping_runs: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready data (``--json``)."""

        def design(result: DesignResult) -> dict[str, Any]:
            data = asdict(result)
            data["firehose"]["utilisation"] = result.firehose.utilisation
            data["wall"]["map"] = result.wall.map
            data["wall"]["total"] = result.wall.total
            data["parallelism"]["limits"] = dict(result.parallelism.limits)
            data["costs"] = dict(result.costs)
            data["cost_per_run"] = result.cost_per_run
            data["cost_per_million_rows"] = result.cost_per_million_rows
            return data

        workload = asdict(self.workload)
        workload.pop("item_sizes")
        workload.pop("record_sizes")
        workload["exact"] = self.workload.exact
        return {
            "stage": self.capacity.stage,
            "capacity": asdict(self.capacity),
            "workload": workload,
            "handler_speed": asdict(self.speed),
            "overlapping_runs": self.overlapping_runs,
            "ours": design(self.ours),
            "reference": design(self.reference),
            "floor": asdict(self.floor),
            "ratios": ratios(self.ours, self.reference),
            "recommendations": [asdict(r) for r in self.recommendations],
            "warnings": [asdict(f) for f in self.findings],
            "notes": list(self.notes),
            "rates": {
                name: {"value": rate.value, "unit": rate.unit, "source": rate.source, "read": rate.read}
                for name, rate in self.rates.entries.items()
            },
        }


RATIO_FIELDS: Final = (
    "child_executions",
    "state_transitions",
    "lambda_invocations",
    "lambda_gb_seconds",
    "firehose_records",
    "firehose_calls",
    "firehose_billed_bytes",
    "cost_per_run",
)


def ratios(ours: DesignResult, reference: DesignResult) -> dict[str, float | None]:
    """Reference / ours for the headline figures (how many times more the reference needs)."""
    out: dict[str, float | None] = {}
    for name in (*RATIO_FIELDS, "wall_seconds"):
        mine = ours.wall.total if name == "wall_seconds" else getattr(ours, name)
        theirs = reference.wall.total if name == "wall_seconds" else getattr(reference, name)
        out[name] = theirs / mine if mine else None
    return out


def plan(
    capacity: Capacity,
    workload: Workload,
    *,
    speed: HandlerSpeed,
    rates: Rates,
    overlapping_runs: int = 1,
) -> Plan:
    """Counts, limits, wall time and cost of one run, ours and the reference's, with advice."""
    if overlapping_runs < 1:
        raise ValueError(f"overlapping_runs={overlapping_runs}: at least 1")
    ours = costs.our_design(capacity, workload, speed, rates)
    reference = costs.reference_design(capacity, workload, rates)
    recommendations, notes = advice.recommend(capacity, workload, speed, rates, ours)
    findings = advice.findings(capacity, workload, rates, ours, overlapping_runs)
    return Plan(
        capacity=capacity,
        workload=workload,
        speed=speed,
        rates=rates,
        ours=ours,
        reference=reference,
        recommendations=tuple(recommendations),
        findings=tuple(findings),
        floor=Floor.of(workload, rates),
        overlapping_runs=overlapping_runs,
        notes=tuple(notes),
    )
