"""The figures a local run reports: each run date's from the KPI table and the deployed named queries
(``spec.queries.named_queries``, transpiled to DuckDB like every other query of the run), and the
headline summary (rows, readings, anomalies, child executions, transitions, Lambda, Firehose, wall time).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from functions.detector import schema
from spec import queries
from tools.localrun.run import LocalPipeline, RunSummary


@dataclass
class DayFigures:
    """One run date's figures, from the delivered records and the KPI table."""

    day: str
    kpis: list[dict[str, Any]]
    health: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]  # anomalies-of-a-day rows
    invalid_reasons: Counter
    battery_soon: list[dict[str, Any]]


def _named(pipeline: LocalPipeline, name: str, params: list[Any]) -> list[dict[str, Any]]:
    catalog = queries.TableNames(
        database=pipeline.stack.exports["database"],
        raw_table=pipeline.stack.exports["rawTable"],
        analysis_table=pipeline.stack.exports["analysisTable"],
        kpi_table=pipeline.stack.exports["kpiTable"],
    )
    _description, sql = queries.named_queries(catalog)[name]
    columns, rows = pipeline.athena.query(sql, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def day_figures(pipeline: LocalPipeline, day: str) -> DayFigures:
    kpi = pipeline.stack.tables[pipeline.stack.exports["kpiTable"]]
    columns, rows = pipeline.athena.query(
        f'SELECT * FROM "{kpi.database}"."{kpi.name}" WHERE dt = ? ORDER BY deviceid = \'*\' DESC, deviceid',
        [day],
    )
    invalid = _named(pipeline, "invalid-readings", [day, day])
    reasons: Counter = Counter()
    for row in invalid:
        reasons.update(row["invalidreasons"] or [])
    return DayFigures(
        day=day,
        kpis=[dict(zip(columns, r, strict=True)) for r in rows],
        health=_named(pipeline, "device-health", [day, day]),
        anomalies=_named(pipeline, "anomalies-of-a-day", [day, day]),
        invalid_reasons=reasons,
        battery_soon=_named(pipeline, "battery-empty-within-days", [day, 7]),
    )


def anomalies_by_device(figures: list[DayFigures]) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for day in figures:
        for row in day.anomalies:
            for anomaly in row["anomalies"] or []:
                out[row["deviceid"]][anomaly["type"]] += 1
    return dict(sorted(out.items()))


def _identical_readings(runs: list[RunSummary], figures: list[DayFigures]) -> int:
    """Rows the KPIs count once because they repeat another row exactly (same recordid).

    The KPI table counts distinct record ids, so a day's map items minus its valid and invalid readings
    are the repeats (a rerun day is taken from its last successful execution).
    """
    items = {r.run_date: r.rows for r in runs if r.status == "SUCCEEDED"}
    counted = {
        day.day: sum(
            (row["validreadings"] or 0) + (row["invalidreadings"] or 0)
            for row in day.kpis
            if row["deviceid"] == "*"
        )
        for day in figures
    }
    return sum(max(items.get(day, 0) - n, 0) for day, n in counted.items())


def summary_rows(runs: list[RunSummary], figures: list[DayFigures]) -> list[tuple[str, str]]:
    """The run's headline figures, as (label, value)."""
    fleet = [row for day in figures for row in day.kpis if row["deviceid"] == "*"]
    rows = sum(r.rows for r in runs)
    wall = sum(r.wall_seconds for r in runs)
    by_type = Counter()
    for day in fleet:
        by_type[schema.TEMPERATURE_SPIKE] += day["temperaturespikes"] or 0
        by_type[schema.HUMIDITY_ANOMALY] += day["humidityanomalies"] or 0
        by_type[schema.LOW_BATTERY] += day["lowbatteryreadings"] or 0
    return [
        ("executions", ", ".join(f"{r.run_date}: {r.status}" for r in runs)),
        ("rows (map items)", f"{rows:,}"),
        (
            "valid / invalid readings",
            f"{sum(d['validreadings'] or 0 for d in fleet):,} / {sum(d['invalidreadings'] or 0 for d in fleet):,}",
        ),
        (
            "identical readings counted once",
            f"{_identical_readings(runs, figures):,} (same device, time and values: one recordid, one reading)",
        ),
        ("anomalous readings", f"{sum(d['anomalousreadings'] or 0 for d in fleet):,}"),
        ("anomalies by type", ", ".join(f"{k} {v:,}" for k, v in by_type.items())),
        (
            "child executions (batches)",
            f"{sum(r.child_executions for r in runs):,} ({sum(r.batches for r in runs):,})",
        ),
        (
            "state transitions (parent + children)",
            f"{sum(r.parent_transitions for r in runs):,} + {sum(r.child_transitions for r in runs):,}",
        ),
        ("Lambda invocations", f"{sum(r.lambda_invocations for r in runs):,}"),
        (
            "Firehose PutRecordBatch calls / records",
            f"{sum(r.firehose.calls for r in runs):,} / {sum(r.firehose.records for r in runs):,}",
        ),
        (
            "Firehose bytes / billed bytes",
            f"{sum(r.firehose.bytes for r in runs):,} / {sum(r.firehose.billed_bytes for r in runs):,}",
        ),
        ("worker processes", f"{max((r.workers for r in runs), default=0)}"),
        ("wall time", f"{wall:.2f} s ({rows / wall if wall else 0:,.0f} rows/s end to end)"),
        (
            "simulated time",
            f"{sum(r.simulated_seconds for r in runs):,.0f} s (Waits and retries advance a clock)",
        ),
    ]


def print_summary(runs: list[RunSummary], pipeline: LocalPipeline) -> str:
    """The summary table as text (the CLI prints it)."""
    days = sorted({r.run_date for r in runs if r.status == "SUCCEEDED"})
    figures = [day_figures(pipeline, d) for d in days]
    rows = summary_rows(runs, figures)
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label.ljust(width)}  {value}" for label, value in rows]
    per_device = anomalies_by_device(figures)
    top = sorted(per_device.items(), key=lambda kv: -sum(kv[1].values()))[:10]
    if top:
        lines.append(
            f"  {'top devices by anomalies'.ljust(width)}  "
            + ", ".join(f"{d} {sum(c.values())}" for d, c in top)
        )
    return "\n".join(lines)
