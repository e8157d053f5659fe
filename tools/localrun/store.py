"""The object store stand-in: one folder per bucket, one file per object.

``s3://<bucket>/<key>`` lives at ``<root>/<bucket>/<key>``. Keys ending in ``/`` are folder markers and
never stored. Listing is lexicographic by key, like S3's ListObjectsV2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class StoreError(ValueError):
    """An S3 URI or key that the stand-in cannot map to a file (malformed, or escaping its bucket)."""


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key). Accepts ``S3://`` too (the Map docs spell Source that way)."""
    if not isinstance(uri, str) or uri[:5].lower() != "s3://":
        raise StoreError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise StoreError(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


@dataclass(frozen=True)
class ObjectStore:
    """Buckets as folders under ``root``."""

    root: Path

    def path(self, bucket: str, key: str = "") -> Path:
        """The file (or folder, for a prefix) standing for ``s3://bucket/key``."""
        if not bucket or "/" in bucket or bucket in (".", ".."):
            raise StoreError(f"invalid bucket name {bucket!r}")
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StoreError(f"key {key!r} would leave bucket {bucket!r}")
        return self.root.joinpath(bucket, *parts)

    def path_of_uri(self, uri: str) -> Path:
        return self.path(*split_uri(uri))

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def put(self, bucket: str, key: str, body: bytes) -> Path:
        """Write an object atomically (a reader never sees half an object)."""
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, target)
        return target

    def get(self, bucket: str, key: str) -> bytes:
        target = self.path(bucket, key)
        if not target.is_file():
            raise StoreError(f"NoSuchKey: s3://{bucket}/{key} (looked at {target})")
        return target.read_bytes()

    def list(self, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
        """(key, size) of every object whose key starts with ``prefix``, in key order."""
        base = self.path(bucket)
        if not base.is_dir():
            return []
        # Walk only the folder the prefix names, then filter by the rest of the prefix.
        folder = prefix.rpartition("/")[0]
        start = self.path(bucket, folder)
        if not start.is_dir():
            return []
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                full = Path(dirpath, name)
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append((key, full.stat().st_size))
        return sorted(found)

    def delete(self, bucket: str, key: str) -> bool:
        target = self.path(bucket, key)
        if target.is_file():
            target.unlink()
            return True
        return False
