"""Representative sizes of what the pipeline moves: a map item, a batch's BatchInput, an analysis record.

The planner needs three byte counts. Measured ones are better (``--item-bytes``/``--record-bytes``, or exact
per-item sizes from a local run); without them these functions build one realistic example of each and
measure it the way the batching arithmetic counts bytes: compact JSON, UTF-8 (``packing.json_size``).

- Map item: the ItemSelector output ``{"r": [...8 values...], "i": n}`` (see
  ``functions/detector/schema.py``). With a CSV UNLOAD every value arrives as a string, so numbers carry
  quotes.
- BatchInput: ``{"executionName": <execution name>, "runDate": "YYYY-MM-DD"}``.
- Analysis record: the detector's own JSON line for that item (``functions/detector/analysis.py``), plus
  its newline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from functions.detector import schema
from functions.detector.analysis import Analyzer, batch_context
from functions.detector.config import DetectorConfig, InputFormat
from tools.tune.packing import json_size

_UUID: Final = "6f1c9a0e-3b7d-4e2a-9c51-0d8e7f2a4b63"
_RUN_DATE: Final = "2026-01-15"
_ROW: Final = {
    "deviceid": "sensor-000123",
    "timestamp": "2026-01-15T10:00:00Z",
    "temperature": 22.53,
    "humidity": 45.12,
    "batterylevel": 87.5,
    "latitude": 40.712776,
    "longitude": -74.005974,
}


def example_item(*, unload_format: str = "PARQUET") -> dict[str, Any]:
    """A map item as the ItemSelector emits it; CSV turns every value into a string."""
    row: dict[str, Any] = dict(_ROW) | {schema.TRUNCATED_FIELD: None}  # nothing cut: null
    if unload_format == "CSV":  # UNLOAD's CSV writes SQL NULL as \N
        row = {key: "\\N" if value is None else str(value) for key, value in row.items()}
    return {
        schema.ITEM_ROW: [row[name] for name in schema.ITEM_FIELDS],
        schema.ITEM_INDEX: 123_456,
    }


def example_batch_input() -> dict[str, str]:
    return {schema.BATCH_RUN: _UUID, "runDate": _RUN_DATE}


def item_bytes(*, unload_format: str = "PARQUET") -> int:
    return json_size(example_item(unload_format=unload_format))


def batch_input_bytes() -> int:
    return json_size(example_batch_input())


def record_bytes(*, unload_format: str = "PARQUET") -> int:
    """One newline-delimited analysis record, newline included: the detector's own line for the
    example item."""
    context, _warnings = batch_context(example_batch_input(), now=datetime(2026, 1, 16, 2, 31, 7, tzinfo=UTC))
    analyzer = Analyzer(DetectorConfig(input_format=InputFormat(unload_format)), context)
    return len(analyzer.line(example_item(unload_format=unload_format))) + 1
