"""What a local run shows: ``report.md``, ``report.html`` and the lines the CLI prints after a run.

* The summary table and each day's figures (``summary.py``): rows, valid/invalid readings, anomalies by
  type and device, child executions, state transitions, Lambda invocations, Firehose calls and billed
  bytes, wall time, rows per second; the day's KPI table (written by the definition's own KPI UNLOAD),
  device health, devices whose battery runs out within a week, invalid readings by reason.
* ``anomalies.png`` and ``battery.png`` (``plots.py``).
* The alarms: every alarm of the stage evaluated over the metrics the run would have published
  (``tools/localrun/metrics.py``, written to ``metrics.json``), with the state each would be in just
  after the run and the notification ops would get (``tools/localrun/alarms.py``); printed as one
  ``alarms:`` line after the run.
* With simulated data, the ground-truth check's verdict (``ground_truth.py``).
* A failed execution: the state that failed and the Fail state it went to.

The SQL is the deployed SQL: the named queries from ``spec.queries.named_queries`` and the KPI
table, transpiled to DuckDB like every other query of the local run.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.detector import schema
from spec import queries
from tools.localrun import alarms
from tools.localrun.ground_truth import GroundTruthCheck
from tools.localrun.plots import battery_series, plot_anomalies, plot_battery
from tools.localrun.run import LocalPipeline, RunSummary
from tools.localrun.summary import anomalies_by_device, day_figures, summary_rows


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
