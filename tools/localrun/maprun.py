"""A map run's record: its counts (what ``describeMapRun`` reports), its verdict, its results in S3.

Docs: state-map-distributed.html, input-output-resultwriter.html; API: DescribeMapRun.
* ``ToleratedFailurePercentage``: more failed items than that share fail the Map state with
  ``States.ExceedToleratedFailureThreshold``; otherwise its result is
  ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``.
* ``ResultWriter`` (``s3:putObject``): ``<Prefix>/<map run id>/manifest.json`` plus ``SUCCEEDED_0.json[l]``
  (COMPACT: each child's output) and ``FAILED_0.json[l]`` (failed children as NONE shapes them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tools.localrun import worker
from tools.localrun.asl import StatesError
from tools.localrun.mapspec import MapSpec
from tools.localrun.store import ObjectStore


@dataclass
class MapRunRecord:
    """A map run, as ``describeMapRun`` reports it, plus local figures."""

    arn: str
    execution_arn: str
    status: str
    start: str
    stop: str
    max_concurrency: int
    tolerated_percentage: float
    items_total: int
    batches: int
    workers: int
    state_name: str
    # What the children did, counted when they are done (and again after each redrive).
    items_succeeded: int = 0
    items_failed: int = 0
    children: int = 0
    children_failed: int = 0
    seconds: float = 0.0
    results_written: int = 0
    redrive_count: int = 0
    # What a redrive needs: the batch plan, each batch's last outcome, the configuration and writer args.
    plan: dict[str, Any] = field(default_factory=dict, repr=False)

    def failed_batches(self) -> list[int]:
        return sorted(b for b, o in self.plan.get("final", {}).items() if o.status == "FAILED")

    def count(
        self, outcomes: list[worker.ChildOutcome], unit_results: list[worker.UnitResult]
    ) -> list[worker.ChildOutcome]:
        """Count the children's outcomes in (of the first run or a redrive) and judge the run against
        ``ToleratedFailurePercentage``; returns the outcomes the ResultWriter writes."""
        plan = self.plan
        # An item counts once, whatever happened to duplicate children: its batch's last outcome decides.
        for outcome in outcomes:
            plan["final"][outcome.batch] = outcome
        plan["outcomes"] = sorted(plan["outcomes"] + outcomes, key=lambda o: o.batch)
        failed_items = sum(o.items for o in plan["final"].values() if o.status == "FAILED")
        self.items_failed = failed_items
        self.items_succeeded = self.items_total - failed_items
        self.children += sum(r.child_executions for r in unit_results)
        self.children_failed = sum(1 for o in plan["outcomes"] if o.status == "FAILED")
        total = self.items_total
        self.status = (
            "FAILED" if total and failed_items * 100.0 / total > self.tolerated_percentage else "SUCCEEDED"
        )
        # A first run writes every child's result (a duplicate child's too); a redrive, each batch's last.
        if self.redrive_count == 0:
            return plan["outcomes"]
        return [plan["final"][b] for b in sorted(plan["final"])]

    def describe(self) -> dict[str, Any]:
        return {
            "MapRunArn": self.arn,
            "ExecutionArn": self.execution_arn,
            "Status": self.status,
            "StartDate": self.start,
            "StopDate": self.stop,
            "MaxConcurrency": self.max_concurrency,
            "ToleratedFailurePercentage": self.tolerated_percentage,
            "ToleratedFailureCount": 0,
            "RedriveCount": self.redrive_count,
            "ItemCounts": {
                "Pending": 0, "Running": 0, "Succeeded": self.items_succeeded, "Failed": self.items_failed,
                "TimedOut": 0, "Aborted": 0, "Total": self.items_total, "ResultsWritten": self.results_written,
                "FailuresNotRedrivable": 0, "PendingRedrive": 0,
            },
            "ExecutionCounts": {
                "Pending": 0, "Running": 0, "Succeeded": self.children - self.children_failed,
                "Failed": self.children_failed, "TimedOut": 0, "Aborted": 0, "Total": self.children,
                "ResultsWritten": self.children, "FailuresNotRedrivable": 0, "PendingRedrive": 0,
            },
        }  # fmt: skip

    def state_result(self) -> dict[str, Any]:
        """The state's result, or the map's error when more items failed than tolerated."""
        if self.status == "FAILED":
            first = next((o for o in self.plan["final"].values() if o.status == "FAILED"), None)
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"map run {self.arn}: {self.items_failed} of {self.items_total} items failed "
                f"(tolerated {self.tolerated_percentage:g}%) in batches {self.failed_batches()}; "
                f"first failure: {first.error if first else ''}: {first.cause if first else ''}",
            )
        result: dict[str, Any] = {"MapRunArn": self.arn}
        if self.plan.get("written") is not None:
            result["ResultWriterDetails"] = self.plan["written"]
        return result


def write_results(  # noqa: PLR0917 - the ResultWriter's every input
    store: ObjectStore, args: dict | None, spec: MapSpec, run_id: str, map_run_arn: str, outcomes: list
) -> dict | None:
    """ResultWriter: the children's results and a manifest under ``<Prefix>/<map run id>/``; returns the
    ``ResultWriterDetails`` (None without a ResultWriter Resource)."""
    if args is None:
        return None
    bucket, prefix = str(args.get("Bucket")), str(args.get("Prefix", "")).rstrip("/")
    base = f"{prefix}/{run_id}" if prefix else run_id
    succeeded = [o.output for o in outcomes if o.status == "SUCCEEDED"]
    failed = [
        {"ExecutionArn": o.execution_arn, "Status": "FAILED", "Error": o.error, "Cause": o.cause}
        for o in outcomes
        if o.status == "FAILED"
    ]
    if spec.transformation == "NONE":
        succeeded = [
            {"ExecutionArn": o.execution_arn, "Status": "SUCCEEDED", "Output": json.dumps(o.output)}
            for o in outcomes
            if o.status == "SUCCEEDED"
        ]
    ext = "jsonl" if spec.output_type == "JSONL" else "json"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for kind, entries in (("SUCCEEDED", succeeded), ("FAILED", failed)):
        if not entries:
            continue
        body = "".join(json.dumps(e) + "\n" for e in entries) if ext == "jsonl" else json.dumps(entries)
        key = f"{base}/{kind}_0.{ext}"
        store.put(bucket, key, body.encode())
        files[kind].append({"Key": key, "Size": len(body.encode())})
    manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
    key = f"{base}/manifest.json"
    store.put(bucket, key, json.dumps(manifest).encode())
    return {"Bucket": bucket, "Key": key}
