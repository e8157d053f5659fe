"""The Firehose stand-in: ``PutRecordBatch`` in, S3 objects under the stream's configured prefix out.

Records are buffered like Firehose's S3 destination: each worker process streams the records it accepts
into a staged object (compressed as the stream's ``compressionFormat`` says) tagged with the simulated
arrival time of its first record; the run's clock delivers a staged object into the bucket once it has
waited the stream's buffer interval (``deliver_due``), under the prefix expanded at that arrival time
(``!{timestamp:yyyy-MM-dd}`` is the UTC arrival time of the oldest record in the object), named
``<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>[.gz]``. Nothing is visible in S3 before then, which is
why the definition waits before reconciling.

Faults for tests: ``lose=True`` accepts records (``FailedPutCount`` 0) and never writes them, the loss
Firehose's at-least-once contract does not allow but reconciliation must catch; ``outage=True`` refuses
every entry of a call (HTTP 200, ``FailedPutCount`` = the entries), as PutRecordBatch does under an outage.

Docs: Firehose API reference (PutRecordBatch limits), firehose/latest/dev/s3-prefixes.html,
firehose/latest/dev/basic-deliver.html (buffering, object names), aws.amazon.com/firehose/pricing.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.localrun.store import ObjectStore

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_000 * 1024
BILLING_INCREMENT = 5_120  # each record is billed rounded up to 5 KB
# GZIP objects are written as stored (uncompressed) deflate blocks in a gzip member (RFC 1952 around
# RFC 1951 section 3.2.4): a valid gzip file that every reader decompresses, CRC and all. Written here
# block by block (``StoredGzip``), that costs a CRC-32 and the copy to the file: several times less
# than zlib's level 0, which copies every byte through its window (0.5 GB/s here against 3 GB/s for
# the CRC), so the workers spend their time on the detector. The ratio is S3's storage, which the
# local run does not bill; the staged objects are as large as the records (about 0.39 GB per million
# readings).
_STORED_BLOCK_BYTES = 65_535  # a stored block's LEN is 16 bits
_GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255))  # deflate, no flags, no mtime, OS unknown
_BLOCK_HEADER = struct.Struct("<BHH")  # BFINAL/BTYPE (byte-aligned after a stored block), LEN, NLEN
_JAVA_FIELDS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_EXPR_RE = re.compile(r"!\{([^}]*)\}")


class StoredGzip:
    """A gzip member written as stored deflate blocks to an open binary file (see ``_GZIP_HEADER``)."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._crc = 0
        self._size = 0
        file.write(_GZIP_HEADER)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self._crc = zlib.crc32(view, self._crc)
        self._size += len(view)
        write, header = self._file.write, _BLOCK_HEADER.pack
        for start in range(0, len(view), _STORED_BLOCK_BYTES):
            block = view[start : start + _STORED_BLOCK_BYTES]
            write(header(0, len(block), len(block) ^ 0xFFFF))
            write(block)

    def close(self) -> None:
        """The final (empty) block and the trailer: CRC-32 and the size modulo 2**32."""
        self._file.write(_BLOCK_HEADER.pack(1, 0, 0xFFFF))
        self._file.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


class FirehoseError(RuntimeError):
    """An API error the real service would return (``code`` as in the API reference)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


def expand_prefix(prefix: str, arrival: datetime, *, error_type: str = "processing-failed") -> str:
    """A custom S3 prefix expanded for an object whose oldest record arrived at ``arrival`` (UTC)."""
    if not prefix:
        return arrival.astimezone(UTC).strftime("%Y/%m/%d/%H/")  # Firehose's default prefix

    def one(match: re.Match[str]) -> str:
        namespace, _, arg = match.group(1).partition(":")
        if namespace == "timestamp":
            return _java_time(arg, arrival.astimezone(UTC), match.group(0))
        if namespace == "firehose" and arg == "random-string":
            return secrets.token_hex(6)[:11]
        if namespace == "firehose" and arg == "error-output-type":
            return error_type
        raise FirehoseError(
            "InvalidArgumentException", f"prefix expression {match.group(0)!r} is not supported"
        )

    return _EXPR_RE.sub(one, prefix)


def _java_time(pattern: str, when: datetime, whole: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        for token, fmt in _JAVA_FIELDS.items():
            if pattern.startswith(token, i):
                out.append(when.strftime(fmt))
                i += len(token)
                break
        else:
            if pattern[i].isalpha():
                raise FirehoseError(
                    "InvalidArgumentException", f"date pattern letter {pattern[i]!r} in {whole!r}"
                )
            out.append(pattern[i])
            i += 1
    return "".join(out)


@dataclass
class FirehoseStats:
    """What the stand-in was sent (summed across worker processes)."""

    calls: int = 0
    records: int = 0
    bytes: int = 0
    billed_bytes: int = 0
    lost_records: int = 0
    objects_staged: int = 0

    def add(self, other: FirehoseStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class FirehoseStandIn:
    """One process's Firehose client: ``put_record_batch`` as boto3 calls it; objects staged for delivery.

    ``arrival`` is the simulated time records arrive at (the run's clock when the map started).
    """

    stream_name: str
    staging: Path
    compression: str
    buffer_size_bytes: int
    arrival: datetime
    lose: bool = False
    outage: bool = False  # every entry refused with ServiceUnavailableException (a 200 with FailedPutCount)
    stats: FirehoseStats = field(default_factory=FirehoseStats)
    _file: Any = None
    _gzip: StoredGzip | None = None
    _raw_in_object: int = 0
    _path: Path | None = None

    def put_record_batch(
        self, DeliveryStreamName: str, Records: list[dict[str, Any]], **extra: Any
    ) -> dict[str, Any]:
        if extra:
            raise FirehoseError(
                "InvalidArgumentException", f"unsupported PutRecordBatch fields {sorted(extra)}"
            )
        if DeliveryStreamName != self.stream_name:
            raise FirehoseError(
                "ResourceNotFoundException",
                f"Firehose {DeliveryStreamName} not found (the stage's is {self.stream_name})",
            )
        if not 1 <= len(Records) <= MAX_RECORDS_PER_CALL:
            raise FirehoseError("InvalidArgumentException", f"{len(Records)} records; a call takes 1 to 500")
        sizes = []
        for i, record in enumerate(Records):
            data = record.get("Data") if isinstance(record, dict) else None
            if isinstance(data, str):
                data = data.encode()
            if not isinstance(data, bytes | bytearray | memoryview):
                raise FirehoseError(
                    "InvalidArgumentException", f"Records[{i}].Data is {type(data).__name__}, not bytes"
                )
            if len(data) > MAX_RECORD_BYTES:
                raise FirehoseError(
                    "InvalidArgumentException",
                    f"Records[{i}] is {len(data):,} bytes; max {MAX_RECORD_BYTES:,}",
                )
            sizes.append(len(data))
        if sum(sizes) > MAX_BYTES_PER_CALL:
            raise FirehoseError(
                "InvalidArgumentException", f"{sum(sizes):,} bytes in one call; max {MAX_BYTES_PER_CALL:,}"
            )
        self.stats.calls += 1
        if self.outage:
            refused = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
            return {
                "FailedPutCount": len(Records),
                "Encrypted": True,
                "RequestResponses": [refused] * len(Records),
            }
        self.stats.records += len(Records)
        self.stats.bytes += sum(sizes)
        self.stats.billed_bytes += sum(math.ceil(s / BILLING_INCREMENT) * BILLING_INCREMENT for s in sizes)
        if self.lose:
            self.stats.lost_records += len(Records)
        else:
            for record in Records:
                data = record["Data"]
                self._write(data.encode() if isinstance(data, str) else bytes(data))
        responses = [{"RecordId": uuid.uuid4().hex} for _ in Records]
        return {"FailedPutCount": 0, "Encrypted": True, "RequestResponses": responses}

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self.staging.mkdir(parents=True, exist_ok=True)
            stamp = int(self.arrival.timestamp() * 1000)
            self._path = self.staging / f"{stamp:015d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.part"
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in flush()
            if self.compression == "GZIP":
                self._gzip = StoredGzip(self._file)
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._file.write(data)
        self._raw_in_object += len(data)
        if self._raw_in_object >= self.buffer_size_bytes:
            self.flush()

    def flush(self) -> None:
        """Close the current staged object (buffer full, or the worker's share of the map is done)."""
        if self._file is None:
            return
        if self._gzip is not None:
            self._gzip.close()
        self._file.close()
        assert self._path is not None
        os.replace(self._path, self._path.with_suffix(".ready"))
        self.stats.objects_staged += 1
        self._file = self._gzip = self._path = None
        self._raw_in_object = 0


@dataclass
class FirehoseDelivery:
    """The parent's side: moves staged objects into the bucket once their buffer interval has passed."""

    stream_name: str
    store: ObjectStore
    bucket: str
    prefix: str
    compression: str
    buffer_interval_seconds: int
    staging: Path
    delivered_objects: list[str] = field(default_factory=list)

    def deliver_due(self, now: datetime) -> int:
        """Deliver every staged object whose oldest record arrived at least one buffer interval ago."""
        if not self.staging.is_dir():
            return 0
        delivered = 0
        for staged in sorted(self.staging.glob("*.ready")):
            arrival = datetime.fromtimestamp(int(staged.name.split("-", 1)[0]) / 1000, UTC)
            if (now - arrival).total_seconds() < self.buffer_interval_seconds:
                continue
            key = (
                expand_prefix(self.prefix, arrival)
                + f"{self.stream_name}-1-{arrival.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}"
                + (".gz" if self.compression == "GZIP" else "")
            )
            target = self.store.path(self.bucket, key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            self.delivered_objects.append(key)
            delivered += 1
        return delivered

    def pending(self) -> int:
        return len(list(self.staging.glob("*.ready"))) if self.staging.is_dir() else 0
