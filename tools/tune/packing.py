"""Packing, exact and shared with the local run: how one run's rows become batches, records and calls.

``batch_sizes`` is the ItemBatcher's greedy batching (``tools/localrun`` imports it, so both batch alike);
``deliver`` runs one batch's analysis lines through the detector's own packing
(``functions/detector/delivery.py``: records, PutRecordBatch calls and Firehose's 5 KB billing are computed
there, in one place); ``count_run`` counts one run from its per-item sizes. Pure functions of their
inputs: no AWS, no Pulumi, no files.

How bytes are counted: a batch is ``{"Items":[<item>,<item>,...],"BatchInput":<batch input>}`` in compact
JSON (no spaces), UTF-8. Step Functions does not document how it measures MaxInputBytesPerBatch; this
convention is the project's (inference), kept in one place so the planner and the local run agree.
Docs: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from functions.detector import delivery

# {"Items":[]} and ,"BatchInput": in compact JSON.
_ITEMS_ENVELOPE_BYTES: Final = len('{"Items":[]}')
_BATCH_INPUT_KEY_BYTES: Final = len(',"BatchInput":')


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how this project measures items, batches and records."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def batch_envelope_bytes(batch_input_bytes: int) -> int:
    """Bytes of a batch with no items: ``{"Items":[]}``, plus ``,"BatchInput":<...>`` when there is one."""
    return _ITEMS_ENVELOPE_BYTES + (_BATCH_INPUT_KEY_BYTES + batch_input_bytes if batch_input_bytes else 0)


class BatchingError(ValueError):
    """An item cannot be placed in any batch, or the batching limits are impossible."""


def batch_sizes(
    item_bytes: Iterable[int] | np.ndarray, *, max_items: int, max_bytes: int, batch_input_bytes: int = 0
) -> list[int]:
    """Rows per batch, in order, as the ItemBatcher fills them.

    Greedy, like Step Functions: items join the current batch until it holds ``max_items`` or the next
    item would take the batch (envelope, items and the commas between them) above ``max_bytes``; then a
    new batch starts. An item too big for a batch on its own is an error (Step Functions fails the run).
    """
    if max_items < 1 or max_bytes < 1:
        raise BatchingError(f"max_items={max_items}, max_bytes={max_bytes}: both must be at least 1")
    envelope = batch_envelope_bytes(batch_input_bytes)
    items = (
        item_bytes.astype(np.int64, copy=False)
        if isinstance(item_bytes, np.ndarray)
        else np.fromiter(item_bytes, dtype=np.int64)
    )
    too_big = np.flatnonzero(envelope + items > max_bytes)
    if too_big.size:
        index = int(too_big[0])
        raise BatchingError(
            f"item {index} is {int(items[index]):,} bytes; with the {envelope:,}-byte batch envelope it "
            f"exceeds MaxInputBytesPerBatch={max_bytes:,}"
        )
    # Items i..j-1 take envelope + (ends[j] - ends[i]) - 1 bytes, ends[k] being the first k items with a
    # comma after each: so the batch starting at i ends at the last j whose ends[j] is within
    # ends[i] + room + 1, and at most max_items after i. One search per batch, not one step per item.
    ends = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(items + 1, out=ends[1:])
    room = max_bytes - envelope
    sizes: list[int] = []
    start, n = 0, len(items)
    while start < n:
        fits = int(np.searchsorted(ends, ends[start] + room + 1, side="right")) - 1
        end = min(start + max_items, fits, n)
        sizes.append(end - start)
        start = end
    return sizes


def items_per_batch(item_bytes: float, *, max_items: int, max_bytes: int, batch_input_bytes: int = 0) -> int:
    """Rows in a full batch when every item is ``item_bytes`` (rounded up): ``batch_sizes``' first entry."""
    item = math.ceil(item_bytes)
    room = max_bytes - batch_envelope_bytes(batch_input_bytes)
    fit = (room + 1) // (item + 1)  # k items take k*item + (k-1) commas
    if fit < 1:
        raise BatchingError(
            f"a {item:,}-byte item does not fit MaxInputBytesPerBatch={max_bytes:,} "
            f"with a {batch_envelope_bytes(batch_input_bytes):,}-byte envelope"
        )
    return min(max_items, fit)


@dataclass(frozen=True)
class BatchDelivery:
    """What one batch sends to Firehose."""

    rows: int
    firehose_records: int
    put_record_batch_calls: int
    firehose_bytes: int
    firehose_billed_bytes: int


def deliver(line_bytes: Sequence[int]) -> BatchDelivery:
    """One batch's analysis lines (sizes, newline included) packed by the detector's own code.

    The detector packs a batch's lines into records (``delivery.pack``), groups the records into
    PutRecordBatch calls (``delivery.plan_calls``) and Firehose bills each record rounded up to 5 KB
    (``delivery.billed_bytes``). The planner runs exactly those functions, with the detector's limits, on
    ASCII lines of the given sizes: packing looks only at each line's length, so the counts are the
    detector's for any lines of those sizes. Memory is one batch's lines, whatever the run's size.
    """
    if any(size < 1 for size in line_bytes):
        raise BatchingError(f"a {min(line_bytes)}-byte analysis line: every line holds at least its newline")
    try:
        records = delivery.pack(b"x" * (size - 1) for size in line_bytes)
    except ValueError as error:  # a line over the record limit: the detector refuses it the same way
        raise BatchingError(str(error)) from None
    calls = delivery.plan_calls(records)
    sizes = [len(record.data) for record in records]
    return BatchDelivery(
        rows=len(line_bytes),
        firehose_records=len(records),
        put_record_batch_calls=len(calls),
        firehose_bytes=sum(sizes),
        firehose_billed_bytes=delivery.billed_bytes(sizes),
    )


@functools.lru_cache(maxsize=64)
def deliver_uniform(rows: int, line_bytes: int) -> BatchDelivery:
    """``deliver`` for a batch of ``rows`` lines of ``line_bytes`` each (the estimate's batches), cached."""
    return deliver((line_bytes,) * rows)


@dataclass(frozen=True)
class RunCounts:
    """Exact counts of one run from per-item sizes: what the local run must count too."""

    batch_sizes: tuple[int, ...]
    child_executions: int
    lambda_invocations: int
    firehose_records: int
    put_record_batch_calls: int
    firehose_bytes: int

    @property
    def batches(self) -> int:
        return len(self.batch_sizes)


def count_run(
    item_bytes: Sequence[int],
    *,
    max_items: int,
    max_bytes: int,
    batch_input_bytes: int,
    record_bytes: Sequence[int],
) -> RunCounts:
    """Batches, children, invocations and Firehose traffic of a run, from each item's and record's size.

    ``record_bytes[i]`` is row i's analysis line (newline included). One child per batch, one Lambda
    invocation per child (no retries).
    """
    if len(record_bytes) != len(item_bytes):
        raise ValueError(f"{len(item_bytes)} item sizes but {len(record_bytes)} record sizes; one per row")
    sizes = batch_sizes(
        item_bytes, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input_bytes
    )
    records = calls = sent = 0
    start = 0
    for size in sizes:
        batch = deliver(record_bytes[start : start + size])
        records += batch.firehose_records
        calls += batch.put_record_batch_calls
        sent += batch.firehose_bytes
        start += size
    return RunCounts(
        batch_sizes=tuple(sizes),
        child_executions=len(sizes),
        lambda_invocations=len(sizes),
        firehose_records=records,
        put_record_batch_calls=calls,
        firehose_bytes=sent,
    )
