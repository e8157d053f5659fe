"""The planner packs Firehose records and calls exactly as the detector does, with the same limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.tune import model, prices

delivery = pytest.importorskip("functions.detector.delivery")
RATES = prices.load()


def test_limits_are_the_detectors():
    assert RATES["firehose_max_record_bytes"] == delivery.MAX_RECORD_BYTES
    assert RATES["firehose_max_records_per_call"] == delivery.MAX_CALL_RECORDS
    assert RATES["firehose_max_call_bytes"] == delivery.MAX_CALL_BYTES
    assert RATES["firehose_billing_increment_bytes"] == delivery.BILLING_INCREMENT_BYTES


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300_000), max_size=60),
    max_record=st.sampled_from([1_024_000, 600_000]),
    max_call=st.sampled_from([4 * 1024 * 1024, 1_500_000]),
)
def test_records_calls_and_billed_bytes_match_the_detector(lengths, max_record, max_call):
    lines = [b"x" * n for n in lengths]
    records = delivery.pack(lines, max_bytes=max_record)
    calls = delivery.plan_calls(records, max_bytes=max_call)
    ours = model.pack_records([n + 1 for n in lengths], max_record_bytes=max_record)
    assert ours == [len(r.data) for r in records]
    assert model.put_record_batch_calls(ours, max_call_bytes=max_call) == [len(c) for c in calls]
    assert model.billed_bytes(ours) == delivery.billed_bytes(len(r.data) for r in records)
    if lengths:
        assert records, "lines always make at least one record"
