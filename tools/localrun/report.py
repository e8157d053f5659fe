"""What a local run shows: the delivered records queried as the Athena named queries query them.

* The summary table: rows, valid/invalid readings, anomalies by type and device, child executions, state
  transitions, Lambda invocations, Firehose calls and billed bytes, wall time, rows per second.
* ``report.md`` and ``report.html`` with the day's KPI table (written by the definition's own KPI
  UNLOAD), device health, devices whose battery runs out within a week, invalid readings by reason.
* ``anomalies.png`` (anomalies per device over the day) and ``battery.png`` (battery level per device
  over time, and each device's drain from the KPI table).
* The alarms: every alarm of the stage evaluated over the metrics the run would have published
  (``tools/localrun/metrics.py``, written to ``metrics.json``), with the state each would be in just
  after the run and the notification ops would get (``tools/localrun/alarms.py``); printed as one
  ``alarms:`` line after the run.
* With simulated data, the ground-truth check: every reading delivered exactly once (duplicates from
  at-least-once delivery are counted once, by source file and item index, as reconciliation counts) and
  every reading given the verdict its values call for, so every injected anomaly is found.

The SQL is the deployed SQL: the named queries from ``spec.queries.named_queries`` and the KPI
table, transpiled to DuckDB like every other query of the local run.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pa_dataset

from functions.detector import schema
from functions.detector.analysis import parse_timestamp, run_name
from spec import queries
from tools.localrun import alarms
from tools.localrun.run import LocalPipeline, RunSummary

NUMERIC = ("temperature", "humidity", "batterylevel", "latitude", "longitude")


# ---------------------------------------------------------------------------------------- ground truth
@dataclass
class GroundTruthCheck:
    """How the delivered records compare with what the simulator wrote."""

    expected_rows: int
    delivered_records: int  # every record Firehose wrote for these runs, duplicates included
    distinct_rows: int  # distinct (runid, sourceindex, recordid): processed rows, each once
    missing: list[tuple] = field(default_factory=list)
    unexpected: list[tuple] = field(default_factory=list)
    wrong_verdicts: list[tuple] = field(default_factory=list)
    injected: int = 0
    injected_found: int = 0
    malformed: int = 0
    malformed_invalid: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.expected_rows > 0
            and not self.missing
            and not self.unexpected
            and not self.wrong_verdicts
            and self.distinct_rows == self.expected_rows
            and self.injected_found == self.injected
            and self.malformed_invalid == self.malformed
        )

    def describe(self) -> str:
        if self.ok:
            return (
                f"ground truth: all {self.expected_rows:,} readings delivered exactly once "
                f"({self.delivered_records - self.distinct_rows:,} duplicate deliveries counted once); "
                f"{self.injected_found}/{self.injected} injected anomalies found; "
                f"{self.malformed_invalid}/{self.malformed} malformed rows marked invalid"
            )
        return (
            f"ground truth MISMATCH: expected {self.expected_rows:,} readings, {self.distinct_rows:,} distinct "
            f"delivered; {len(self.missing)} missing (e.g. {self.missing[:2]}), {len(self.unexpected)} unexpected "
            f"(e.g. {self.unexpected[:2]}), {len(self.wrong_verdicts)} wrong verdicts (e.g. {self.wrong_verdicts[:2]}); "
            f"injected anomalies found {self.injected_found}/{self.injected}; "
            f"malformed marked invalid {self.malformed_invalid}/{self.malformed}"
        )


def _key(deviceid: Any, stamp: Any, values: list[Any]) -> tuple:
    return (deviceid or "", stamp or "", *(None if v is None else float(v) for v in values))


def delivered_records(pipeline: LocalPipeline, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every analysis record the given runs (execution ARNs or names) delivered, as Athena reads them."""
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    names = [run_name(run) for run in run_ids]
    placeholders = ", ".join("?" for _ in names)
    columns, rows = pipeline.athena.sql(
        f'SELECT * FROM "{table.database}"."{table.name}" WHERE runid IN ({placeholders})', names
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _instant(stamp: Any) -> Any:
    """A raw timestamp as the record keeps it: its UTC instant (readingtime) if usable, else the text."""
    parsed = parse_timestamp(stamp) if type(stamp) is str else None
    return parsed[2] if parsed is not None else stamp


TRUTH_COLUMNS = ("deviceid", "timestamp", *NUMERIC, "status", "anomalies", "malformed", "injected")


def _truth_with_instants(truth: pa.Table | Path) -> pa.Table:
    """The ground truth's columns the check reads, plus ``instant``: each timestamp as the record keeps it
    (``_instant``). Read batch by batch; only these columns are held (an Arrow table, not Python rows)."""
    source = pa_dataset.dataset(truth, format="parquet") if isinstance(truth, Path) else truth
    batches = (
        source.to_batches(columns=list(TRUTH_COLUMNS)) if isinstance(truth, Path) else source.to_batches()
    )
    out = []
    for whole in batches:
        batch = whole.select(list(TRUTH_COLUMNS))
        instants = pa.array([_instant(v) for v in batch.column("timestamp").to_pylist()], pa.string())
        out.append(pa.RecordBatch.from_arrays([*batch.columns, instants], [*TRUTH_COLUMNS, "instant"]))
    if not out:
        schema_ = source.schema
        return pa.table(
            {name: pa.array([], schema_.field(name).type) for name in TRUTH_COLUMNS}
            | {"instant": pa.array([], pa.string())}
        )
    return pa.Table.from_batches(out)


def check_ground_truth(
    pipeline: LocalPipeline, truth: pa.Table | Path, run_ids: list[str]
) -> GroundTruthCheck:
    """Compare the simulator's ground truth (a table, or its Parquet file) with what the runs delivered.

    Computed in DuckDB over the analysis table and the ground truth (an Arrow table DuckDB scans in
    place), so memory stays within the stand-in's limit whatever the number of readings; only the
    readings that do not match come back to Python. A reading is its key (device id, its instant as the
    record keeps it, the five values); each processed row (run, item index, reading) counts once, however often
    delivered.
    """
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    names = [run_name(run) for run in run_ids]
    marks = ", ".join("?" for _ in names)
    key = ("d", "s", "t", "h", "b", "la", "lo")
    same_key = " AND ".join(f"e.{k} IS NOT DISTINCT FROM g.{k}" for k in key)
    rows = f"""
        delivered AS (
            SELECT runid, sourceindex, recordid, coalesce(deviceid, '') AS d,
                   coalesce(readingtime, readingtimestamp, '') AS s,
                   metrics.temperature AS t, metrics.humidity AS h, metrics.batterylevel AS b,
                   metrics.latitude AS la, metrics.longitude AS lo, healthstatus AS status,
                   list_sort(list_transform(coalesce(anomalies, []), lambda a: a.type)) AS types,
                   coalesce(len(invalidreasons), 0) > 0 AS invalid
            FROM "{table.database}"."{table.name}" WHERE runid IN ({marks})
        ),
        processed AS (SELECT DISTINCT ON (runid, sourceindex, recordid) * FROM delivered),
        g AS (
            SELECT {", ".join(key)}, count(*) AS n, any_value(status) AS status, any_value(types) AS types,
                   any_value(invalid) AS invalid
            FROM processed GROUP BY {", ".join(key)}
        ),
        truth_rows AS (
            SELECT coalesce(deviceid, '') AS d, coalesce(instant, '') AS s, temperature AS t,
                   humidity AS h, batterylevel AS b, latitude AS la, longitude AS lo, status,
                   list_sort(coalesce(anomalies, [])) AS types, coalesce(malformed, '') <> '' AS malformed,
                   coalesce(injected, '') <> '' AS injected, coalesce(anomalies, []) AS wanted_types
            FROM __truth
        ),
        e AS (
            SELECT {", ".join(key)}, count(*) AS n, any_value(status) AS status, any_value(types) AS types,
                   any_value(malformed) AS malformed
            FROM truth_rows GROUP BY {", ".join(key)}
        )"""
    params = names
    athena = pipeline.athena
    truth = _truth_with_instants(truth)
    expected_rows = truth.num_rows
    # The counts, every injected anomaly found (its kinds among the record's) and every malformed row
    # marked invalid.
    _c, ((records, distinct, injected, found, malformed, marked),) = athena.sql(
        f"""WITH {rows}
        SELECT (SELECT count(*) FROM delivered), (SELECT count(*) FROM processed), count_if(e.injected),
               count_if(e.injected AND g.status = '{schema.ANOMALIES_DETECTED}'
                        AND list_has_all(g.types, e.wanted_types)),
               count_if(e.malformed), count_if(e.malformed AND g.invalid)
        FROM truth_rows e LEFT JOIN g ON {same_key}""",
        params,
        tables={"__truth": truth},
    )
    check = GroundTruthCheck(
        expected_rows=expected_rows,
        delivered_records=records,
        distinct_rows=distinct,
        injected=injected,
        injected_found=found,
        malformed=malformed,
        malformed_invalid=marked,
    )
    # Readings whose count or verdict differs: the only rows that come back.
    _c, mismatched = athena.sql(
        f"""WITH {rows}
        SELECT {", ".join(f"coalesce(e.{k}, g.{k})" for k in key)}, coalesce(e.n, 0), coalesce(g.n, 0),
               e.status, e.types, e.malformed, g.status, g.types, g.invalid
        FROM e FULL OUTER JOIN g ON {same_key}
        WHERE coalesce(e.n, 0) <> coalesce(g.n, 0)
           OR (e.n IS NOT NULL AND g.n IS NOT NULL
               AND (e.status IS DISTINCT FROM g.status OR e.types <> g.types OR e.malformed <> g.invalid))""",
        params,
        tables={"__truth": truth},
    )
    for *values, expected, delivered, w_status, w_types, w_bad, g_status, g_types, g_bad in mismatched:
        reading = _key(values[0], values[1], values[2:])
        check.missing += [reading] * max(0, expected - delivered)
        check.unexpected += [reading] * max(0, delivered - expected)
        wanted = (w_status, tuple(w_types), w_bad) if expected else None
        got = (g_status, tuple(g_types), g_bad) if delivered else None
        if wanted is not None and got is not None and wanted != got:
            check.wrong_verdicts.append((reading, wanted, got))
    check.missing.sort(key=str)
    check.unexpected.sort(key=str)
    return check


# ---------------------------------------------------------------------------------------------- report
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


def _ts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


PLOTTED_DEVICES = (
    40  # rows of the anomalies plot: a row per device of a large fleet made a 100,000-pixel image
)


def plot_anomalies(figures: list[DayFigures], path: Path, limit: int = PLOTTED_DEVICES) -> None:
    """Anomalies over time for the ``limit`` devices with the most (all devices: the report's table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        schema.TEMPERATURE_SPIKE: "tab:red",
        schema.HUMIDITY_ANOMALY: "tab:blue",
        schema.LOW_BATTERY: "tab:orange",
    }
    points: dict[str, tuple[list, list]] = {k: ([], []) for k in colours}
    counts = Counter(
        row["deviceid"]
        for day in figures
        for row in day.anomalies
        if row["deviceid"]
        for _ in row["anomalies"] or []
    )
    devices = sorted(d for d, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])
    position = {d: i for i, d in enumerate(devices)}
    for day in figures:
        for row in day.anomalies:
            when = _ts(row["readingtime"])
            if when is None or row["deviceid"] not in position:
                continue
            for anomaly in row["anomalies"] or []:
                xs, ys = points.setdefault(anomaly["type"], ([], []))
                xs.append(when)
                ys.append(
                    position[row["deviceid"]]
                    + {"temperature_spike": -0.2, "humidity_anomaly": 0, "low_battery": 0.2}.get(
                        anomaly["type"], 0
                    )
                )
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.28 * len(devices) + 1.5)))
    for kind, (xs, ys) in points.items():
        if xs:
            ax.scatter(xs, ys, s=10, label=f"{kind} ({len(xs)})", color=colours.get(kind))
    ax.set_yticks(range(len(devices)))
    ax.set_yticklabels(devices, fontsize=7 if len(devices) < 60 else 4)
    ax.set_xlabel("reading time (UTC)")
    shown = "" if len(counts) <= limit else f" ({limit} of {len(counts):,} devices: those with the most)"
    ax.set_title("Anomalies per device over time" + shown)
    if any(xs for xs, _ in points.values()):
        ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def battery_series(
    pipeline: LocalPipeline, run_dates: list[str], limit: int = 12
) -> dict[str, list[tuple[datetime, float]]]:
    """Hourly mean battery level of the ``limit`` devices that drained most (valid readings only)."""
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    marks = ", ".join("?" for _ in run_dates)
    _cols, rows = pipeline.athena.sql(
        f"""
        WITH r AS (
            SELECT deviceid, CAST(date_trunc('hour', TRY_CAST(readingtime AS TIMESTAMPTZ)) AS TIMESTAMP) AS hour,
                   metrics.batterylevel AS battery
            FROM "{table.database}"."{table.name}"
            WHERE len(invalidreasons) = 0 AND analysisdate IN ({marks}) AND deviceid IS NOT NULL
        ), top AS (
            SELECT deviceid FROM r GROUP BY deviceid ORDER BY arg_min(battery, hour) - arg_max(battery, hour) DESC, deviceid LIMIT {int(limit)}
        )
        SELECT deviceid, hour, avg(battery) FROM r WHERE deviceid IN (SELECT deviceid FROM top) AND hour IS NOT NULL
        GROUP BY deviceid, hour ORDER BY deviceid, hour
        """,
        list(run_dates),
    )
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for device, hour, battery in rows:
        series[device].append((hour, battery))
    return dict(series)


def plot_battery(
    series: dict[str, list[tuple[datetime, float]]], figures: list[DayFigures], threshold: float, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for device, points in series.items():
        left.plot([p[0] for p in points], [p[1] for p in points], label=device, linewidth=1)
    left.axhline(
        threshold, color="tab:red", linestyle="--", linewidth=1, label=f"low_battery < {threshold:g}"
    )
    left.set_title("Battery level per device (hourly mean; the devices that drained most)")
    left.set_ylabel("battery %")
    left.legend(fontsize=6, ncol=2)
    drains: dict[str, list[float]] = defaultdict(list)
    for day in figures:
        for row in day.kpis:
            if row["deviceid"] != "*" and row.get("batterydrain") is not None:
                drains[row["deviceid"]].append(row["batterydrain"])
    worst = sorted(drains.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))[:25]
    right.barh([d for d, _ in worst][::-1], [sum(v) / len(v) for _, v in worst][::-1], color="tab:orange")
    right.set_title("Battery drain per day (KPI table, points)")
    right.tick_params(axis="y", labelsize=6)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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


# ----------------------------------------------------------------------------------------------- alarms
INVALID_ROWS_ALARM = "detector-invalid-rows"


def alarm_notes(report: alarms.AlarmReport, truth_check: GroundTruthCheck | None) -> list[str]:
    """Why a notification is expected, where the run caused it on purpose."""
    notes = []
    fired = {o.spec.key for o in report.notifying}
    if INVALID_ROWS_ALARM in fired and truth_check is not None and truth_check.malformed:
        notes.append(
            f"{INVALID_ROWS_ALARM} is expected: the generator injected {truth_check.malformed:,} malformed "
            "rows (--malformed-share) and the detector marked them invalid, as it must; pass "
            "--malformed-share 0 for a clean run"
        )
    for outcome in report.notifying:
        if outcome.spec.notify_insufficient_data and not outcome.pages:
            notes.append(
                f"{outcome.spec.key} (OK) is the heartbeat's first success after a deploy with no earlier "
                "run (a new alarm starts in INSUFFICIENT_DATA, and INSUFFICIENT_DATA -> OK notifies); on a "
                "stage that already succeeded within the window it stays OK and sends nothing"
            )
    return notes


def alarm_lines(pipeline: LocalPipeline, truth_check: GroundTruthCheck | None = None) -> list[str]:
    """The ``alarms:`` summary line the CLI prints after a run, then the notes that explain it."""
    report = alarms.for_pipeline(pipeline)
    return [report.summary_line(), *(f"  {note}" for note in alarm_notes(report, truth_check))]


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else ""


def alarm_section(
    pipeline: LocalPipeline, truth_check: GroundTruthCheck | None
) -> tuple[str, str, list[str], list[list[Any]]]:
    report = alarms.for_pipeline(pipeline)
    note = (
        "Every alarm of the stage (spec/alarms.py) evaluated with CloudWatch's semantics "
        "(tools/alarmsim.py) over the metrics in metrics.json, each at its first evaluation after the "
        "run (the end of its period holding the run's last datapoint). The alarms are taken to exist "
        "before the run; notifications are the transitions since the first recorded datapoint (after a "
        "redrive: since the run it continues): a page is ALARM (or INSUFFICIENT_DATA for the heartbeat), "
        "a notice an OK. " + report.summary_line() + "."
    )
    for extra in alarm_notes(report, truth_check):
        note += f" Note: {extra}."
    rows = [
        [o.spec.key, o.state, _when(o.evaluated_at), o.datapoints, o.notification_text(report.topic)]
        for o in report.outcomes
    ]
    return "Alarms", note, ["alarm", "state", "evaluated at", "datapoints", "notification"], rows


def write_report(
    pipeline: LocalPipeline,
    runs: list[RunSummary],
    out_dir: Path,
    *,
    truth_check: GroundTruthCheck | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html, anomalies.png, battery.png and metrics.json; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    days = sorted({r.run_date for r in runs if r.status == "SUCCEEDED"})
    figures = [day_figures(pipeline, d) for d in days]
    paths = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "anomalies": out_dir / "anomalies.png",
        "battery": out_dir / "battery.png",
        "metrics": out_dir / "metrics.json",
    }
    pipeline.metrics.write(paths["metrics"])
    plot_anomalies(figures, paths["anomalies"])
    threshold = float(pipeline.stack.lambda_env.get("BATTERY_LOW", 20))
    plot_battery(battery_series(pipeline, days), figures, threshold, paths["battery"])

    sections: list[tuple[str, str, list[str], list[list[Any]]]] = []
    sections.append(("Summary", "", ["figure", "value"], [list(r) for r in summary_rows(runs, figures)]))
    sections.append(alarm_section(pipeline, truth_check))
    per_device = anomalies_by_device(figures)
    sections.append((
        "Anomalies by device and type", "",
        ["device", *schema.ANOMALY_TYPES, "total"],
        [[d, *(c[t] for t in schema.ANOMALY_TYPES), sum(c.values())] for d, c in per_device.items()],
    ))  # fmt: skip
    for day in figures:
        kpi_cols = [c for c, _t, _d in queries.KPI_COLUMNS]
        sections.append(
            (
                f"KPIs {day.day}",
                "The KPI table the definition's WriteKpis UNLOAD wrote.",
                kpi_cols,
                [[row.get(c) for c in kpi_cols] for row in day.kpis],
            )
        )
        sections.append((
            f"Invalid readings {day.day}", "Reasons, from the `invalid-readings` named query.",
            ["reason", "readings"], [[k, v] for k, v in day.invalid_reasons.most_common()],
        ))  # fmt: skip
        sections.append((
            f"Batteries empty within 7 days ({day.day})", "The `battery-empty-within-days` named query.",
            ["device", "min battery", "drain per day", "days left"],
            [[r["deviceid"], r["minbattery"], r["batterydrain"], r["daysleft"]] for r in day.battery_soon],
        ))  # fmt: skip
    for run in runs:
        if run.status != "SUCCEEDED":
            origin, fail_state = failure_states(run)
            sections.append(
                (
                    f"Execution {run.run_date} FAILED",
                    failure_line(run),
                    ["failed state", "went to", "error", "cause"],
                    [[origin, fail_state or "", run.error, run.cause]],
                )
            )
    title = f"sensorflow {pipeline.stack.stage}: local run"
    intro = f"Definition from `{pipeline.stack.source}`; run folder `{pipeline.root}`."
    if truth_check is not None:
        intro += "\n\n" + truth_check.describe()
    md = [f"# {title}", "", intro, "", "![anomalies](anomalies.png)", "", "![battery](battery.png)", ""]
    for name, note, header, rows in sections:
        md += [f"## {name}", "", *([note, ""] if note else []), _md_table(header, rows), ""]
    paths["markdown"].write_text("\n".join(md))
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>",
        '<img src="anomalies.png" alt="anomalies">',
        '<img src="battery.png" alt="battery">',
    ]
    for name, note, header, rows in sections:
        body.append(f"<h2>{html.escape(name)}</h2>")
        if note:
            body.append(f"<p>{html.escape(note)}</p>")
        body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        body += ["<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows]
        body.append("</table>")
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
    paths["html"].write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    return paths


def failure_states(run: RunSummary) -> tuple[str | None, str | None]:
    """(the state whose error ended the run, the Fail state a Catch or Choice sent it to, if any).

    The executor reports the state it stopped in; after a Catch that is the ``Fail`` state (say
    ``ExportFailed``), which tells a reader nothing about what failed. The execution history it records
    (time, state, type) has the state entered just before the ``Fail``: the one that failed.
    """
    history = run.history
    if len(history) >= 2 and history[-1][1] == run.failed_state and history[-1][2] == "Fail":
        return history[-2][1], run.failed_state
    return run.failed_state, None


def failure_line(run: RunSummary) -> str:
    """``failed in ExportDay → ExportFailed: <error>: <cause>`` for a failed execution."""
    origin, fail_state = failure_states(run)
    where = f"{origin} → {fail_state}" if fail_state else str(origin)
    return f"failed in {where}: {run.error}: {run.cause}"


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
