"""Render a ``Plan`` as Markdown (``make tune``) or JSON (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Callable

from tools.tune.costs import DesignResult
from tools.tune.planner import Plan, ratios
from tools.tune.units import GIB, MIB, format_duration


def _int(value: float) -> str:
    return f"{value:,.0f}"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def _usd_per_million(value: float) -> str:
    """Per-million figures are compared in tenths of a cent (the floor, the targets): three decimals."""
    return f"${value:.3f}" if 0 < value < 1 else _usd(value)


def _gb(value: float) -> str:
    return f"{value / GIB:,.2f} GiB"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}x" if value >= 10 else f"{value:,.2f}x"


def _firehose_cell(design: DesignResult) -> str:
    load = design.firehose
    if not load.binds:
        worst = max(load.utilisation.values())
        return f"no ({worst:.0%} of quota)"
    return f"yes: {load.binding} {load.utilisation[load.binding or 'bytes']:.1f}x over"


ROWS: tuple[tuple[str, Callable[[DesignResult], str], str | None], ...] = (
    (
        "child executions (one per batch / row)",
        lambda d: f"{_int(d.child_executions)} {d.child_type}",
        "child_executions",
    ),
    ("rows per child (typical)", lambda d: _int(d.rows / d.batches) if d.batches else "0", None),
    ("Standard state transitions", lambda d: _int(d.state_transitions), "state_transitions"),
    ("Express requests", lambda d: _int(d.express_requests), None),
    ("Express GB-seconds", lambda d: f"{d.express_gb_seconds:,.1f}", None),
    ("Lambda invocations", lambda d: _int(d.lambda_invocations), "lambda_invocations"),
    ("Lambda ms per invocation", lambda d: f"{d.handler_ms:,.0f}", None),
    ("Lambda GB-seconds", lambda d: f"{d.lambda_gb_seconds:,.1f}", "lambda_gb_seconds"),
    ("Firehose records", lambda d: _int(d.firehose_records), "firehose_records"),
    ("Firehose calls", lambda d: _int(d.firehose_calls), "firehose_calls"),
    ("Firehose bytes sent", lambda d: _gb(d.firehose_bytes), None),
    ("Firehose bytes billed (5 KB/record)", lambda d: _gb(d.firehose_billed_bytes), "firehose_billed_bytes"),
    ("Athena queries / bytes scanned", lambda d: f"{d.athena_queries} / {_gb(d.athena_bytes_scanned)}", None),
    ("S3 PUTs / GETs", lambda d: f"{_int(d.s3_puts)} / {_int(d.s3_gets)}", None),
    (
        "effective parallelism (binding limit)",
        lambda d: f"{d.parallelism.effective:,} ({', '.join(d.parallelism.binding)})",
        None,
    ),
    ("Firehose quota binds?", _firehose_cell, None),
    ("expected wall time", lambda d: format_duration(d.wall.total), "wall_seconds"),
    ("cost per run", lambda d: _usd(d.cost_per_run), "cost_per_run"),
    ("cost per million readings", lambda d: _usd_per_million(d.cost_per_million_rows), None),
)


def comparison_table(plan: Plan) -> str:
    """The headline table: ours, the reference's, and reference / ours."""
    ratio = ratios(plan.ours, plan.reference)
    lines = [
        f"| {plan.capacity.stage}, {plan.workload.rows:,} readings | sensorflow | reference sample | reference / ours |",
        "|---|---:|---:|---:|",
    ]
    for label, cell, key in ROWS:
        lines.append(
            f"| {label} | {cell(plan.ours)} | {cell(plan.reference)} | {_ratio(ratio[key]) if key else ''} |"
        )
    floor = _usd_per_million(plan.floor.cost_per_million)
    lines.append(
        f"| floor per million readings: their own {_gb(plan.floor.bytes_per_million)} through Firehose "
        f"| {floor} | {floor} | |"
    )
    return "\n".join(lines)


def to_markdown(plan: Plan) -> str:
    cap, ours, work = plan.capacity, plan.ours, plan.workload
    out = [
        f"# Capacity plan: {cap.stage}, {work.rows:,} readings",
        "",
        f"Settings: MaxConcurrency {cap.max_concurrency}, MaxItemsPerBatch {cap.max_items_per_batch}, "
        f"MaxInputBytesPerBatch {cap.max_input_bytes_per_batch:,}, Lambda {cap.lambda_memory_mb} MB "
        f"{cap.lambda_architecture}, reserved concurrency {cap.lambda_reserved_concurrency}, account Lambda "
        f"concurrency {cap.account_lambda_concurrency}, target window {cap.target_window_minutes} min.",
        f"Sizes: map item {work.item_bytes:,.0f} B, analysis record {work.record_bytes:,.0f} B, BatchInput "
        f"{work.batch_input_bytes} B ({work.sizes_source}). Detector timing: {plan.speed.source}"
        + (f", {plan.speed.ms_per_batch:g} ms per batch." if plan.speed.ms_per_batch is not None else "."),
        "",
        comparison_table(plan),
        "",
        "## Limits",
        "",
        "Parallelism limits: "
        + ", ".join(f"{name} {value:,}" for name, value in ours.parallelism.limits)
        + f" -> **{ours.parallelism.effective:,}**, bound by {', '.join(ours.parallelism.binding)}.",
        "",
        "| Firehose Direct PUT | demand at that parallelism | quota | use |",
        "|---|---:|---:|---:|",
    ]
    for key, unit in (("requests", "calls/s"), ("records", "records/s"), ("bytes", "MiB/s")):
        scale = MIB if key == "bytes" else 1
        out.append(
            f"| {key} | {ours.firehose.demand[key] / scale:,.1f} {unit} | {ours.firehose.quota[key] / scale:,.0f} {unit} "
            f"| {ours.firehose.utilisation[key]:.0%} |"
        )
    wall = ours.wall
    out += [
        "",
        f"The stream keeps up with ~{ours.firehose.sustainable_parallelism:,.1f} children at once. Wall time: UNLOAD "
        f"{format_duration(wall.unload)}, map start {format_duration(wall.map_start)}, children "
        f"{format_duration(wall.map_compute)} of compute vs {format_duration(wall.map_firehose)} of Firehose "
        f"traffic at quota (the longer counts), delivery wait, reconciliation and KPIs {format_duration(wall.after_map)}.",
        "",
        "## Recommendations",
        "",
    ]
    out += [f"- **{r.setting} = {r.value}**: {r.reason}." for r in plan.recommendations]
    out += [f"- {note}" for note in plan.notes]
    out += ["", "## Warnings", ""]
    out += [f"- **{f.severity}** ({f.setting}): {f.message}." for f in plan.findings] or ["- none"]
    out += ["", "## Cost per run", "", "| item | sensorflow | reference sample |", "|---|---:|---:|"]
    for item, value in ours.costs.items():
        out.append(f"| {item} | {_usd(value)} | {_usd(plan.reference.costs[item])} |")
    overridden = plan.rates.overridden()
    out += [
        "",
        "Prices, quotas and assumptions: tools/tune/prices.yaml (each with source and date)"
        + (
            "; overridden: " + ", ".join(f"{r.name}={r.value:g} ({r.source})" for r in overridden)
            if overridden
            else "."
        ),
    ]
    return "\n".join(out) + "\n"


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=False, default=str)
