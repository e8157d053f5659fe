"""The report's images: ``anomalies.png`` (anomalies per device over the day) and ``battery.png``
(battery level per device over time, and each device's drain from the KPI table)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from functions.detector import schema
from tools.localrun.run import LocalPipeline
from tools.localrun.summary import DayFigures


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
