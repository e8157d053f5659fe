"""One bad row never costs a day: a raw value too long for a map batch is cut by the export and marked.

On AWS a row whose item is larger than ``MaxInputBytesPerBatch`` fails the whole Distributed Map with
``States.DataLimitExceeded`` (the local map does the same, see ``tools.tune.packing.batch_sizes``). The
export bounds every text column (``spec.queries.TEXT_COLUMN_MAX_CHARS``) and names the columns it
cut in ``truncated``; the detector turns that into ``<column>:truncated`` invalid reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from functions.detector import schema
from spec import queries
from tools.localrun import ground_truth
from tools.simulate import HEADER

from .conftest import DAY

DEVICE_LIMIT = queries.TEXT_COLUMN_MAX_CHARS["deviceid"]
STAMP_LIMIT = queries.TEXT_COLUMN_MAX_CHARS["timestamp"]

# (device id, timestamp): a 150 KB ASCII id (the dev case), 160 KB of four-byte characters, 150 KB of
# control characters (six bytes each once escaped in JSON), letters with combining accents (cut by code
# point, as Trino's substr counts, not by what a reader sees as one letter) and an overlong timestamp.
OVERSIZED = {
    "ascii": ("d" * 150_000, "2024-02-29T10:00:00Z"),
    "four-byte": ("\U0001f321" * 40_000, "2024-02-29T10:05:00Z"),
    "control": ("c" + "\x01" * 150_000, "2024-02-29T10:10:00Z"),
    "combining": ("e\u0301" * 50_000, "2024-02-29T10:12:00Z"),
    "timestamp": ("device-long-stamp", "2024-02-29T10:15:00Z" + "0" * 100_000),
}


def _write(folder: Path) -> Path:
    path = folder / "oversized.csv"
    lines = [HEADER]
    for device, stamp in OVERSIZED.values():
        lines.append(f"{device},{stamp},21.5,40.0,80.0,52.5,13.4")
    lines.append("device-fine,2024-02-29T10:20:00Z,21.5,40.0,80.0,52.5,13.4")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("unload_format", ["PARQUET", "JSONL", "CSV"])
def test_an_oversized_raw_row_is_cut_marked_and_delivered(
    make_pipeline: Any, tmp_path: Path, unload_format: str
) -> None:
    pipeline = make_pipeline("dev", {"unloadFormat": unload_format})
    pipeline.put_raw_file(_write(tmp_path), DAY)
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["rowsProcessed"] == run.output["rowsDelivered"] == run.rows

    # A usable timestamp is kept as its instant (readingtime), an unusable one as it arrived.
    delivered = ground_truth.delivered_records(pipeline, [run.execution_id])
    records = {(r["readingtimestamp"] or r["readingtime"])[:19]: r for r in delivered}
    by_case = {case: records[stamp[:19]] for case, (_device, stamp) in OVERSIZED.items()}
    for case in ("ascii", "four-byte", "control", "combining"):
        record = by_case[case]
        device = OVERSIZED[case][0]
        assert record["deviceid"] == device[:DEVICE_LIMIT], case
        assert "deviceid:truncated" in record["invalidreasons"], case
        assert record["healthstatus"] == schema.INVALID, case
        # still a device id: it is not reported missing and the metrics are kept
        assert "deviceid:missing" not in record["invalidreasons"], case
        assert record["metrics"]["temperature"] == 21.5, case
    stamp = by_case["timestamp"]
    assert stamp["readingtimestamp"] == OVERSIZED["timestamp"][1][:STAMP_LIMIT]
    assert "timestamp:truncated" in stamp["invalidreasons"]
    assert "deviceid:truncated" not in stamp["invalidreasons"]
    fine = records["2024-02-29T10:20:00"]
    assert not any(reason.endswith(":truncated") for reason in fine["invalidreasons"])
    # nothing else of the day was marked
    cut = [r for r in records.values() if any(x.endswith(":truncated") for x in r["invalidreasons"])]
    assert len(cut) == len(OVERSIZED)
