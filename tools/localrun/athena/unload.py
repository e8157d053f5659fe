"""``UNLOAD (<select>) TO '<s3 uri>' WITH (...)``: Athena-only syntax, emulated for the stand-in.

The target prefix must be empty (UNLOAD never overwrites) and the data files are written under it, in
several files as Athena writes them; the stand-in (``standin.py``) writes the manifest and the result.

Docs: docs.aws.amazon.com/athena/latest/ug/unload.html.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tools.localrun.athena.dialect import sql_literal
from tools.localrun.athena.errors import AthenaError
from tools.localrun.store import ObjectStore, split_uri

UNLOAD_RE = re.compile(
    r"^\s*UNLOAD\s*\((?P<select>.*)\)\s*TO\s*'(?P<to>[^']*)'\s*WITH\s*\((?P<with>.*)\)\s*;?\s*$", re.S | re.I
)
WITH_ITEM_RE = re.compile(r"^\s*(?P<key>[a-z_]+)\s*=\s*'(?P<value>[^']*)'\s*$", re.I)
UNLOAD_FORMATS = {"PARQUET", "JSON", "TEXTFILE"}
UNLOAD_COMPRESSION = {
    "PARQUET": {"SNAPPY", "ZSTD", "GZIP", "NONE"},
    "JSON": {"NONE", "GZIP"},
    "TEXTFILE": {"NONE", "GZIP"},
}
ROWS_PER_UNLOAD_FILE = 200_000  # Athena writes several files; so does the stand-in, so the map reads many


@dataclass(frozen=True)
class UnloadOptions:
    """The ``WITH (...)`` properties of an UNLOAD, checked."""

    fmt: str
    compression: str
    field_delimiter: str


def parse_options(with_text: str) -> UnloadOptions:
    """The ``WITH`` properties (``format = 'PARQUET', ...``), with Athena's defaults; others are refused."""
    props: dict[str, str] = {}
    for item in _split_top_level(with_text):
        parsed = WITH_ITEM_RE.match(item)
        if not parsed:
            raise AthenaError("SYNTAX_ERROR", f"UNLOAD WITH property {item.strip()!r} is not key = 'value'")
        props[parsed.group("key").lower()] = parsed.group("value")
    unknown = sorted(set(props) - {"format", "compression", "field_delimiter"})
    if unknown:
        raise AthenaError("NOT_SUPPORTED", f"UNLOAD properties {unknown} are not emulated locally")
    fmt = props.get("format", "PARQUET").upper()
    if fmt not in UNLOAD_FORMATS:
        raise AthenaError("NOT_SUPPORTED", f"UNLOAD format {fmt!r}; emulated: {sorted(UNLOAD_FORMATS)}")
    compression = props.get("compression", "GZIP").upper()  # GZIP: Athena's documented default
    if compression not in UNLOAD_COMPRESSION[fmt]:
        raise AthenaError("NOT_SUPPORTED", f"UNLOAD {fmt} compression {compression!r}")
    return UnloadOptions(fmt, compression, props.get("field_delimiter", ","))


def empty_target(store: ObjectStore, target: str) -> tuple[str, str]:
    """(bucket, prefix ending in ``/``) of the TO location, which must hold no object yet."""
    bucket, prefix = split_uri(target)
    if not prefix.endswith("/"):
        prefix += "/"
    if store.list(bucket, prefix):
        # Athena refuses to UNLOAD into a location that already holds objects.
        raise AthenaError(
            "HIVE_PATH_ALREADY_EXISTS", f"Target directory {target} already exists and is not empty"
        )
    return bucket, prefix


def write_files(
    con: duckdb.DuckDBPyConnection,
    store: ObjectStore,
    table: pa.Table,
    *,
    target: tuple[str, str],
    query_id: str,
    options: UnloadOptions,
    rows_per_file: int,
) -> list[str]:
    """Write the query's rows under ``target`` (bucket, prefix), ``rows_per_file`` per file; their URIs."""
    bucket, prefix = target
    fmt, compression = options.fmt, options.compression
    files = []
    parquet: list[tuple[pa.Table, Path]] = []
    for part, offset in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
        chunk = table.slice(offset, rows_per_file)
        if chunk.num_rows == 0:
            break
        ext = {"PARQUET": "", "JSON": "", "TEXTFILE": ""}[fmt] + (
            ".gz" if compression == "GZIP" and fmt != "PARQUET" else ""
        )
        key = f"{prefix}{query_id}_{part:05d}{ext}"
        path = store.path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.append(store.uri(bucket, key))
        if fmt == "PARQUET":
            parquet.append((chunk, path))
            continue
        con.register("__unload_chunk", chunk)
        try:
            if fmt == "JSON":
                copy_options = "FORMAT json" + (", COMPRESSION 'gzip'" if compression == "GZIP" else "")
            else:
                delim = options.field_delimiter
                copy_options = f"FORMAT csv, HEADER false, DELIMITER {sql_literal(delim)}, QUOTE '', ESCAPE '', NULLSTR '\\N'"
                if compression == "GZIP":
                    copy_options += ", COMPRESSION 'gzip'"
            con.execute(f"COPY (SELECT * FROM __unload_chunk) TO {sql_literal(str(path))} ({copy_options})")
        finally:
            con.unregister("__unload_chunk")
    if parquet:
        # Arrow writes the chunks it already holds about twice as fast as a COPY through DuckDB, and it
        # releases the GIL while it writes: one file per core at a time.
        codec = compression.lower()
        with ThreadPoolExecutor(max_workers=min(len(parquet), os.cpu_count() or 1)) as pool:
            for _written in pool.map(lambda job: pq.write_table(*job, compression=codec), parquet):
                pass  # iterating re-raises a writer's error here
    return files


def _split_top_level(text: str) -> list[str]:
    """Split ``a = 'x', b = 'y,z'`` on commas outside quotes."""
    items, current, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        items.append("".join(current))
    return items
