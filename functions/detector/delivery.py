"""Delivery to Kinesis Data Firehose: pack many JSON lines per record, send in batches, retry what fails.

Why pack: Firehose bills ingestion per record rounded up to 5 KB, and a Direct PUT stream takes 5,000
records/s by default; one ~0.4 KB reading per record bills 5 KB and caps a stream at 5,000 readings/s.
Newline-delimited lines packed into records of up to 1,000 KiB bill what they weigh and carry hundreds of
readings each. Every line ends with a newline, so records concatenated in S3 stay valid JSON Lines
(Firehose adds no delimiter between records).

Limits (Firehose API reference, PutRecordBatch): at most 500 records and 4 MB per call, each record at
most 1,000 KiB before base64 encoding. A call can succeed while some entries fail: those carry an
``ErrorCode`` in ``RequestResponses`` (same order as the request) and only they are re-sent, with
exponential backoff and full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"). Nothing is
reported as delivered unless Firehose returned a ``RecordId`` for it without an ``ErrorCode``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

MAX_RECORD_BYTES: Final = 1_024_000  # 1,000 KiB per Firehose record
MAX_CALL_RECORDS: Final = 500
MAX_CALL_BYTES: Final = 4 * 1024 * 1024  # 4 MiB of record data per PutRecordBatch call
BILLING_INCREMENT_BYTES: Final = 5 * 1024  # ingestion is billed per record in 5 KB increments

# Whole-call errors worth retrying (throttling and transient service faults); any other error, such as
# ResourceNotFoundException or AccessDeniedException, will not heal by waiting and fails at once.
RETRYABLE_CALL_ERRORS: Final = frozenset(
    {
        "ServiceUnavailableException",
        "ThrottlingException",
        "LimitExceededException",
        "InternalFailure",
        "InternalFailureException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

BASE_DELAY_SECONDS: Final = 0.05
MAX_DELAY_SECONDS: Final = 2.0
# Stop retrying when the next wait would leave less than this before the invocation's deadline.
DEADLINE_MARGIN_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class Packed:
    """One Firehose record: newline-terminated JSON lines, and how many readings it carries."""

    data: bytes
    readings: int


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a successful delivery did."""

    records: int  # Firehose records accepted (each exactly once)
    bytes: int  # their total size
    readings: int
    calls: int  # PutRecordBatch calls, including re-sends
    retries: int  # Firehose records re-sent after a failed entry or a refused call


class DeliveryError(RuntimeError):
    """Firehose kept refusing records within the retry budget; the batch must be retried as a whole.

    The class name is the Lambda ``errorType`` the state machine's Retry matches (``DeliveryError``).
    Records already accepted will be sent again by that retry; ``recordid`` lets readers de-duplicate.
    """

    def __init__(
        self,
        message: str,
        *,
        delivered_records: int,
        delivered_readings: int,
        failed_records: int,
        failed_readings: int,
        calls: int,
        retries: int,
    ) -> None:
        super().__init__(message)
        self.delivered_records = delivered_records
        self.delivered_readings = delivered_readings
        self.failed_records = failed_records
        self.failed_readings = failed_readings
        self.calls = calls
        self.retries = retries


class Packer:
    """Greedily packs JSON lines (UTF-8 bytes, no newline) into records of at most ``max_bytes`` bytes,
    line by line: each line is copied into the record being filled as it comes, so no line object
    outlives its ``add``. (Kept as objects until the batch ends, a 2,500-row batch's lines took a
    megabyte of fresh small-object memory per invocation and made analysis a third slower.)"""

    __slots__ = ("_buffer", "_readings", "_size", "_write", "max_bytes", "records")

    def __init__(self, *, max_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_bytes = max_bytes
        self.records: list[Packed] = []
        self._start()

    def add(self, line: bytes) -> None:
        size = self._size + len(line) + 1  # +1 for the newline
        if size > self.max_bytes:
            if len(line) + 1 > self.max_bytes:
                raise ValueError(
                    f"a JSON line of {len(line) + 1:,} bytes exceeds the Firehose record limit of "
                    f"{self.max_bytes:,}"
                )
            self._flush()
            size = len(line) + 1
        self._size = size
        write = self._write
        write(line)
        write(b"\n")
        self._readings += 1

    def finish(self) -> list[Packed]:
        """The records, the last one included."""
        if self._readings:
            self._flush()
        return self.records

    def _start(self) -> None:
        self._buffer = io.BytesIO()
        self._write = self._buffer.write
        self._size = self._readings = 0

    def _flush(self) -> None:
        self.records.append(Packed(data=self._buffer.getvalue(), readings=self._readings))
        self._start()


def pack(lines: Iterable[bytes], *, max_bytes: int = MAX_RECORD_BYTES) -> list[Packed]:
    """Greedily pack JSON lines (UTF-8 bytes, no newline) into records of at most ``max_bytes`` bytes."""
    packer = Packer(max_bytes=max_bytes)
    for line in lines:
        packer.add(line)
    return packer.finish()


def plan_calls(
    records: Sequence[Packed], *, max_records: int = MAX_CALL_RECORDS, max_bytes: int = MAX_CALL_BYTES
) -> list[list[Packed]]:
    """Split records into PutRecordBatch calls within the per-call record and byte limits."""
    calls: list[list[Packed]] = []
    current: list[Packed] = []
    size = 0
    for record in records:
        n = len(record.data)
        if current and (len(current) >= max_records or size + n > max_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(record)
        size += n
    if current:
        calls.append(current)
    return calls


def billed_bytes(sizes: Iterable[int]) -> int:
    """Ingestion bytes Firehose bills for records of these sizes (each rounded up to 5 KB)."""
    inc = BILLING_INCREMENT_BYTES
    return sum(-(-size // inc) * inc for size in sizes)


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None


def _is_connection_error(exc: Exception) -> bool:
    # botocore's connection-level failures (after botocore's own small retry budget) are transient.
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - botocore ships with the Lambda runtime and the dev env
        return False
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def deliver(
    records: Sequence[Packed],
    *,
    client: Any,
    stream: str,
    max_attempts: int,
    sleep: Callable[[float], None],
    rng: Callable[[], float] = random.random,
    time_left: Callable[[], float] | None = None,
) -> DeliveryReport:
    """Send every record exactly once as far as Firehose confirms it; raise ``DeliveryError`` otherwise.

    ``max_attempts`` counts every attempt of a record, the first included. Between rounds the loop waits
    ``rng() * min(MAX_DELAY, BASE * 2**round)`` seconds (full jitter), and only failed records are re-sent.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts={max_attempts}: expected at least 1")
    pending = list(records)
    total_readings = sum(r.readings for r in records)
    delivered_records = delivered_readings = calls = retries = 0
    last_problem = ""
    attempt = 1
    while True:
        failed: list[Packed] = []
        for batch in plan_calls(pending):
            calls += 1
            try:
                response = client.put_record_batch(
                    DeliveryStreamName=stream, Records=[{"Data": r.data} for r in batch]
                )
            except Exception as exc:
                code = _error_code(exc)
                if code in RETRYABLE_CALL_ERRORS or (code is None and _is_connection_error(exc)):
                    failed.extend(batch)
                    last_problem = code or type(exc).__name__
                    continue
                raise DeliveryError(
                    f"Firehose refused PutRecordBatch on {stream!r} with {code or type(exc).__name__}: {exc}",
                    delivered_records=delivered_records,
                    delivered_readings=delivered_readings,
                    failed_records=len(records) - delivered_records,
                    failed_readings=total_readings - delivered_readings,
                    calls=calls,
                    retries=retries,
                ) from exc
            entries = response.get("RequestResponses") if isinstance(response, dict) else None
            if not isinstance(entries, list) or len(entries) != len(batch):
                # Cannot tell which entries landed: treat all as not delivered (a re-send may duplicate,
                # which recordid de-duplicates; a loss could not be undone).
                failed.extend(batch)
                last_problem = "a PutRecordBatch response without one entry per record"
                continue
            for record, entry in zip(batch, entries, strict=True):
                if isinstance(entry, dict) and entry.get("RecordId") and not entry.get("ErrorCode"):
                    delivered_records += 1
                    delivered_readings += record.readings
                else:
                    failed.append(record)
                    if isinstance(entry, dict):
                        last_problem = f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage', '')}".strip()
        if not failed:
            return DeliveryReport(
                records=delivered_records,
                bytes=sum(len(r.data) for r in records),
                readings=delivered_readings,
                calls=calls,
                retries=retries,
            )
        delay = rng() * min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
        out_of_time = time_left is not None and time_left() - delay < DEADLINE_MARGIN_SECONDS
        if attempt >= max_attempts or out_of_time:
            why = "the invocation is about to time out" if out_of_time else f"{attempt} attempts"
            raise DeliveryError(
                f"{len(failed)} of {len(records)} Firehose records ({sum(r.readings for r in failed)} readings) "
                f"still refused by {stream!r} after {why}; last problem: {last_problem}",
                delivered_records=delivered_records,
                delivered_readings=delivered_readings,
                failed_records=len(records) - delivered_records,
                failed_readings=total_readings - delivered_readings,
                calls=calls,
                retries=retries,
            )
        sleep(delay)
        retries += len(failed)
        pending = failed
        attempt += 1
