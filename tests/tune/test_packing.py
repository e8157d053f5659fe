"""The exact packing arithmetic: batches, Firehose records, PutRecordBatch calls, billed bytes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.tune import packing


def test_envelope_bytes_are_the_compact_json_of_an_empty_batch():
    assert packing.batch_envelope_bytes(0) == packing.json_size({"Items": []}) == 12
    batch_input = {"executionId": "arn", "runDate": "2026-01-15"}
    size = packing.json_size(batch_input)
    assert packing.batch_envelope_bytes(size) == packing.json_size({"Items": [], "BatchInput": batch_input})


def test_batch_bytes_match_the_serialised_batch():
    # Three 10-byte items cost 12 + 30 + 2 commas = 44 bytes: exactly what json.dumps gives.
    items = ["12345678"] * 3  # '"12345678"' is 10 bytes
    assert packing.json_size(items[0]) == 10
    assert packing.json_size({"Items": items}) == 44
    assert packing.batch_sizes([10] * 3, max_items=100, max_bytes=44) == [3]
    assert packing.batch_sizes([10] * 3, max_items=100, max_bytes=43) == [2, 1]


@pytest.mark.parametrize(
    ("items", "max_items", "max_bytes", "batch_input", "expected"),
    [
        ([10] * 3, 2, 10_000, 0, [2, 1]),  # the item limit
        ([10] * 7, 100, 45, 0, [3, 3, 1]),  # the byte limit: 4 items would be 55 bytes
        ([10] * 4, 100, 12 + 14 + 20 + 21, 20, [2, 2]),  # BatchInput counts: 46-byte envelope + 21
        ([30, 10, 10, 30], 100, 12 + 30 + 1 + 10, 0, [2, 2]),  # greedy, in order
        ([], 10, 1_000, 0, []),
    ],
)
def test_batch_sizes_hand_computed(items, max_items, max_bytes, batch_input, expected):
    assert (
        packing.batch_sizes(items, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input)
        == expected
    )


def _greedy(items: list[int], max_items: int, max_bytes: int, envelope: int) -> list[int]:
    """The ItemBatcher's rule, one item at a time: the oracle for the vectorized batch_sizes."""
    sizes: list[int] = []
    count, size = 0, envelope
    for item in items:
        if count and (count == max_items or size + 1 + item > max_bytes):
            sizes.append(count)
            count, size = 0, envelope
        size += item + (1 if count else 0)
        count += 1
    return [*sizes, count] if count else sizes


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.integers(1, 400), max_size=300),
    max_items=st.integers(1, 50),
    max_bytes=st.integers(450, 3_000),  # above the largest item with the largest envelope
    batch_input=st.integers(0, 20),
)
def test_batch_sizes_is_the_greedy_rule_item_by_item(items, max_items, max_bytes, batch_input):
    envelope = packing.batch_envelope_bytes(batch_input)
    got = packing.batch_sizes(items, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input)
    assert got == _greedy(items, max_items, max_bytes, envelope)
    assert sum(got) == len(items)


def test_an_item_too_big_for_any_batch_is_named():
    with pytest.raises(packing.BatchingError, match=r"item 1 is 990 bytes.*MaxInputBytesPerBatch=1,000"):
        packing.batch_sizes([10, 990], max_items=5, max_bytes=1_000)
    with pytest.raises(packing.BatchingError, match="at least 1"):
        packing.batch_sizes([10], max_items=0, max_bytes=1_000)


@settings(max_examples=200, deadline=None)
@given(
    item=st.integers(1, 5_000),
    rows=st.integers(1, 3_000),
    max_items=st.integers(1, 1_000),
    max_bytes=st.integers(6_000, 262_144),
    batch_input=st.integers(0, 400),
)
def test_estimate_equals_exact_batching_for_uniform_items(item, rows, max_items, max_bytes, batch_input):
    exact = packing.batch_sizes(
        [item] * rows, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input
    )
    full = packing.items_per_batch(
        item, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=batch_input
    )
    assert exact, "a run with rows has batches"
    assert exact[0] == min(full, rows)
    assert len(exact) == math.ceil(rows / full)
    assert all(size == full for size in exact[:-1])


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.integers(1, 2_000), max_size=400), max_items=st.integers(1, 50))
def test_every_batch_respects_both_limits_and_keeps_every_item(items, max_items):
    max_bytes = 8_000
    sizes = packing.batch_sizes(items, max_items=max_items, max_bytes=max_bytes, batch_input_bytes=100)
    assert sum(sizes) == len(items)
    start = 0
    for size in sizes:
        chunk = items[start : start + size]
        assert 1 <= size <= max_items
        assert packing.batch_envelope_bytes(100) + sum(chunk) + size - 1 <= max_bytes
        start += size


def test_delivery_hand_computed():
    # 1,024,000 // 600 = 1,706 lines per record; both records fit one call; each billed in 5,120-byte steps.
    batch = packing.deliver([600] * 2_000)
    assert (batch.rows, batch.firehose_records, batch.put_record_batch_calls) == (2_000, 2, 1)
    assert batch.firehose_bytes == 2_000 * 600
    assert (
        batch.firehose_billed_bytes
        == math.ceil(1_706 * 600 / 5_120) * 5_120 + math.ceil(294 * 600 / 5_120) * 5_120
    )
    # Full 1,000 KiB records: four fit a 4 MiB call.
    assert packing.deliver([1_024_000] * 9).put_record_batch_calls == 3
    assert packing.deliver([]).firehose_records == 0


def test_a_line_too_long_for_a_record_is_named():
    with pytest.raises(packing.BatchingError, match="1,024,001 bytes exceeds the Firehose record limit"):
        packing.deliver([1_024_001])
    with pytest.raises(packing.BatchingError, match="at least its newline"):
        packing.deliver([0])


def test_the_planner_packs_with_the_detectors_own_functions(monkeypatch):
    """One place: the planner's counts change when the detector's packing does (no copy of its own)."""
    from functions.detector import delivery

    calls = []
    real_pack, real_plan_calls, real_billed = delivery.pack, delivery.plan_calls, delivery.billed_bytes

    def spy(name, real):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(delivery, "pack", spy("pack", real_pack))
    monkeypatch.setattr(delivery, "plan_calls", spy("plan_calls", real_plan_calls))
    monkeypatch.setattr(delivery, "billed_bytes", spy("billed_bytes", real_billed))
    packing.deliver([400] * 10)
    assert calls == ["pack", "plan_calls", "billed_bytes"]
    # A detector that packed one line per record would change the planner's count: nothing else decides it.
    monkeypatch.setattr(delivery, "pack", lambda lines: [p for line in lines for p in real_pack([line])])
    assert packing.deliver([400] * 10).firehose_records == 10
