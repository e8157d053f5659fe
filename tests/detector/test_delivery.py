"""Packing within Firehose limits, and retries under injected faults: nothing lost, nothing claimed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.detector import handler as handler_module
from functions.detector.config import DetectorConfig
from functions.detector.delivery import (
    MAX_CALL_BYTES,
    MAX_RECORD_BYTES,
    DeliveryError,
    Packed,
    Packer,
    billed_bytes,
    deliver,
    pack,
    plan_calls,
)
from functions.detector.handler import process_batch

from .helpers import FakeFirehose, counts_add_up, decode, event, item, row, throttling


def big_event(n: int) -> dict:
    return event(
        [item(row(deviceid=f"sensor-{i % 37}", temperature=20.0 + i % 30), index=i) for i in range(n)]
    )


def test_lines_pack_into_records_within_the_limit_and_end_with_newlines() -> None:
    lines = [b"x" * 400_000, b"y" * 400_000, b"z" * 400_000, b"w"]
    records = pack(lines)
    assert [r.readings for r in records] == [2, 2]
    assert all(len(r.data) <= MAX_RECORD_BYTES for r in records)
    assert b"".join(r.data for r in records).split(b"\n")[:-1] == lines
    with pytest.raises(ValueError, match="exceeds the Firehose record limit"):
        pack([b"q" * MAX_RECORD_BYTES])


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 60), max_size=80), max_bytes=st.integers(61, 300))
def test_packing_is_greedy_and_loses_nothing(sizes: list[int], max_bytes: int) -> None:
    lines = [bytes([97 + n % 26]) * size for n, size in enumerate(sizes)]
    records = pack(lines, max_bytes=max_bytes)
    assert b"".join(r.data for r in records) == b"".join(line + b"\n" for line in lines)
    assert sum(r.readings for r in records) == len(lines)
    assert all(len(r.data) <= max_bytes for r in records)
    # Greedy: each record but the last was closed because the next line did not fit.
    starts = [sum(r.readings for r in records[:k]) for k in range(len(records))]
    for record, start in zip(records[:-1], starts[1:], strict=True):
        assert len(record.data) + len(lines[start]) + 1 > max_bytes


def test_calls_respect_500_records_and_4_mib() -> None:
    small = [Packed(data=b"a\n", readings=1)] * 1_201
    assert [len(c) for c in plan_calls(small)] == [500, 500, 201]
    big = [Packed(data=b"b" * MAX_RECORD_BYTES, readings=1)] * 9
    calls = plan_calls(big)
    assert [len(c) for c in calls] == [4, 4, 1]
    assert all(sum(len(r.data) for r in c) <= MAX_CALL_BYTES for c in calls)


def test_billing_rounds_each_record_up_to_5_kb() -> None:
    assert billed_bytes([1, 5_120, 5_121]) == 5_120 + 5_120 + 10_240
    assert billed_bytes([]) == 0


def test_a_batch_is_a_handful_of_records_not_one_per_reading() -> None:
    firehose = FakeFirehose()
    summary = process_batch(
        big_event(500), config=DetectorConfig(stream_name="s"), firehose=firehose, sleep=print
    )
    assert summary["firehoseRecords"] == 1
    assert summary["putRecordBatchCalls"] == 1
    assert summary["firehoseBytes"] / 500 < 1_024  # under 1 billed KB per reading
    assert len(decode(firehose.accepted)) == 500


@pytest.mark.parametrize("seed", range(5))
def test_random_rejections_and_throttling_still_deliver_each_reading_once(seed: int, monkeypatch) -> None:
    firehose = FakeFirehose(reject_share=0.3, throttle_share=0.2, seed=seed)
    sleeps: list[float] = []
    batch = big_event(3_000)
    # Small records (~30 readings each) so the 30% rejections hit many entries per call.
    monkeypatch.setattr(handler_module, "Packer", lambda: Packer(max_bytes=20_000))
    summary = process_batch(
        batch, config=DetectorConfig(stream_name="s", max_attempts=20), firehose=firehose, sleep=sleeps.append
    )
    counts_add_up(summary)
    delivered = decode(firehose.accepted)
    assert len(delivered) == 3_000
    assert sorted(r["sourceindex"] for r in delivered) == list(range(3_000))  # each exactly once
    assert summary["retries"] > 0
    assert summary["putRecordBatchCalls"] == len(firehose.calls)
    assert summary["firehoseRecords"] == len(firehose.accepted)
    assert len(sleeps) >= 1
    assert all(0 <= s <= 2.0 for s in sleeps)
    # Only failed entries are re-sent: every accepted record was sent once more than it was refused.
    sent = [data for call in firehose.calls for data in call]
    assert len(sent) == len(firehose.accepted) + summary["retries"]


def test_a_firehose_that_always_fails_raises_and_claims_nothing() -> None:
    firehose = FakeFirehose(always_fail=True)
    sleeps: list[float] = []
    with pytest.raises(DeliveryError, match=r"still refused by 's' after 4 attempts") as caught:
        process_batch(big_event(50), config=DetectorConfig(stream_name="s", max_attempts=4), firehose=firehose,
                      sleep=sleeps.append)  # fmt: skip
    error = caught.value
    assert (error.delivered_records, error.delivered_readings) == (0, 0)
    assert error.failed_readings == 50
    assert len(firehose.calls) == 4
    assert len(sleeps) == 3  # no wait after the last attempt
    assert firehose.accepted == []


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    firehose = FakeFirehose(always_fail=True)
    sleeps: list[float] = []
    with pytest.raises(DeliveryError):
        deliver(
            [Packed(b"x\n", 1)],
            client=firehose,
            stream="s",
            max_attempts=8,
            sleep=sleeps.append,
            rng=lambda: 1.0,
        )
    assert sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]  # the caps of each round; rng scales 0..1
    jittered: list[float] = []
    with pytest.raises(DeliveryError):
        deliver([Packed(b"x\n", 1)], client=FakeFirehose(always_fail=True), stream="s", max_attempts=3,
                sleep=jittered.append, rng=lambda: 0.25)  # fmt: skip
    assert jittered == [0.0125, 0.025]


def test_partial_success_reports_only_what_landed() -> None:
    # Five records of ~1 MB: four fill the first call (4 MiB), the fifth goes in a second call, which
    # (like every later one) is throttled.
    records = pack([b"r" * 999_000] * 5)
    assert [len(c) for c in plan_calls(records)] == [4, 1]
    firehose = FakeFirehose(call_error=lambda n: throttling("ThrottlingException") if n > 1 else None)
    with pytest.raises(DeliveryError) as caught:
        deliver(records, client=firehose, stream="s", max_attempts=3, sleep=lambda _s: None)
    assert (caught.value.delivered_records, caught.value.failed_records) == (4, 1)
    assert (caught.value.delivered_readings, caught.value.failed_readings) == (4, 1)
    assert len(firehose.accepted) == 4


def test_a_non_retryable_error_fails_at_once() -> None:
    firehose = FakeFirehose(call_error=lambda _n: throttling("ResourceNotFoundException"))
    sleeps: list[float] = []
    with pytest.raises(DeliveryError, match="ResourceNotFoundException"):
        process_batch(
            big_event(3), config=DetectorConfig(stream_name="s"), firehose=firehose, sleep=sleeps.append
        )
    assert (len(firehose.calls), sleeps) == (1, [])


def test_a_response_without_one_entry_per_record_counts_as_failed() -> None:
    class Odd:
        calls = 0

        def put_record_batch(self, **_kw):
            Odd.calls += 1
            return {"FailedPutCount": 0, "RequestResponses": []}

    with pytest.raises(DeliveryError, match="without one entry per record"):
        deliver([Packed(b"x\n", 1)], client=Odd(), stream="s", max_attempts=2, sleep=lambda _s: None)
    assert Odd.calls == 2


def test_retries_stop_before_the_invocation_times_out() -> None:
    firehose = FakeFirehose(always_fail=True)
    with pytest.raises(DeliveryError, match="about to time out"):
        deliver([Packed(b"x\n", 1)], client=firehose, stream="s", max_attempts=8, sleep=lambda _s: None,
                time_left=lambda: 1.0)  # fmt: skip
    assert len(firehose.calls) == 1


def test_an_empty_batch_makes_no_call_and_needs_no_stream() -> None:
    firehose = FakeFirehose()
    summary = process_batch(event([]), config=DetectorConfig(), firehose=firehose, sleep=lambda _s: None)
    assert summary["rowsIn"] == summary["putRecordBatchCalls"] == 0
    assert firehose.calls == []


def test_rows_without_a_stream_name_is_a_configuration_error() -> None:
    from functions.detector.config import ConfigError

    with pytest.raises(ConfigError, match="DELIVERY_STREAM_NAME is not set"):
        process_batch(
            event([item(row())]), config=DetectorConfig(), firehose=FakeFirehose(), sleep=lambda _s: None
        )
