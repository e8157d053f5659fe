"""Rows of the UNLOAD files as the Distributed Map's ItemReader hands them out, and their JSON sizes.

* PARQUET: one item per row, a JSON object keyed by column name; strings, numbers, booleans and nulls map
  to their JSON equivalents. How Step Functions maps other Parquet types is not documented (aws-facts),
  so a column of any other type stops the map with ``States.ItemReaderFailed`` naming it: cast it in
  the UNLOAD, as the definition's query does for the timestamp.
* CSV (``CSVHeaderLocation: GIVEN``): every value is a string, keys from ``CSVHeaders``; ``FIRST_ROW``
  takes the keys from the first line.
* JSONL: one JSON object per line.

Item sizes are compact UTF-8 JSON, the convention ``tools.tune.packing.json_size`` defines (so the local
run and the capacity planner batch identically). For Parquet and CSV they are computed column-wise
(the JSON text of a number is its shortest repr; a string's is its UTF-8 bytes plus quotes, escapes
computed exactly for the rare strings that need them) and a property test keeps them equal to
``json_size`` of the items themselves.
"""

from __future__ import annotations

import json
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

NEEDS_ESCAPE = r'["\\\x00-\x1f]'


class ItemReaderError(RuntimeError):
    """A data file the ItemReader cannot read (``States.ItemReaderFailed``)."""


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def read_table(path: Path, input_type: str, headers: list[str] | None, header_location: str | None) -> Any:
    """A data file as an Arrow table (PARQUET, CSV) or a list of parsed objects (JSONL)."""
    try:
        if input_type == "PARQUET":
            table = pq.read_table(path)
            for field in table.schema:
                if not (
                    pa.types.is_string(field.type)
                    or pa.types.is_large_string(field.type)
                    or pa.types.is_floating(field.type)
                    or pa.types.is_integer(field.type)
                    or pa.types.is_boolean(field.type)
                    or pa.types.is_null(field.type)
                ):
                    raise ItemReaderError(
                        f"{path.name}: column {field.name!r} has Parquet type {field.type}; cast it to varchar "
                        "in the UNLOAD (how Step Functions maps it to JSON is not documented)"
                    )
            return table
        if input_type == "CSV":
            first_row = header_location == "FIRST_ROW"
            names = None if first_row else list(headers or [])
            read = pacsv.ReadOptions(column_names=names, autogenerate_column_names=False)
            with path.open("rb") as f:
                probe = f.readline()
            if not probe:
                return pa.table({n: pa.array([], pa.string()) for n in names or []})
            width = len(probe.rstrip(b"\r\n").split(b","))
            names_for_types = names or probe.rstrip(b"\r\n").decode().split(",")
            convert = pacsv.ConvertOptions(
                column_types=dict.fromkeys(names_for_types, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            )
            if names is not None and width != len(names):
                raise ItemReaderError(f"{path.name}: {width} fields per row, CSVHeaders names {len(names)}")
            return pacsv.read_csv(path, read_options=read, convert_options=convert)
        if input_type == "JSONL":
            rows = []
            with path.open(encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise ItemReaderError(f"{path.name} line {number}: not JSON ({exc})") from None
            return rows
    except (OSError, pa.ArrowException) as exc:
        raise ItemReaderError(f"{path}: {exc}") from exc
    raise ItemReaderError(f"InputType {input_type!r} is not readable locally")


def row_count(table: Any) -> int:
    return table.num_rows if isinstance(table, pa.Table) else len(table)


def rows(table: Any, start: int, count: int) -> list[dict[str, Any]]:
    """Rows ``start``..``start+count`` as JSON-ready dicts."""
    if isinstance(table, pa.Table):
        return table.slice(start, count).to_pylist()
    return table[start : start + count]


def shaped(
    rows: list[Any] | pa.Table, shape: list[tuple[str, str, Any]], source: str, first_index: int
) -> list[dict[str, Any]]:
    """Items of a simple ItemSelector (each key a row's Value, Source or Index, its positional Values,
    or a literal). Rows are objects (``positional_ok``), or an Arrow table's rows.

    Built column by column: a dict display per item is about a third cheaper than filling each item
    from a per-row lookup table, and this runs once per row of the map.
    """
    table = rows if isinstance(rows, pa.Table) else None
    n = len(rows) if table is None else table.num_rows
    columns: list[Any] = [range(n)]  # bounds the zip: literal and Source columns repeat forever
    for _key, kind, literal in shape:
        if kind == "Value":
            columns.append(rows if table is None else table.to_pylist())
        elif kind == "Values" and table is not None:
            columns.append(positional_values(table, literal))
        elif kind == "Values":
            columns.append([[row.get(name) for name in literal] for row in rows])
        elif kind == "Source":
            columns.append(repeat(source))
        elif kind == "Index":
            columns.append(range(first_index, first_index + n))
        else:
            columns.append(repeat(literal))
    keys = [key for key, _, _ in shape]
    if len(keys) == 2:  # the usual shape (row, index): a display with two keys
        k0, k1 = keys
        return [{k0: a, k1: b} for _, a, b in zip(*columns, strict=False)]
    return [dict(zip(keys, values[1:], strict=True)) for values in zip(*columns, strict=False)]


def positional_values(table: pa.Table, names: list[str]) -> list[list[Any]]:
    """Each row's values in the order of ``names`` (None for a column the table lacks), read column by
    column: what ``[row.get(name) for name in names]`` gives for each of ``table.to_pylist()``."""
    present = table.column_names
    if len(set(present)) != len(present):  # duplicate names: to_pylist keeps the last, as a dict does
        return [[row.get(name) for name in names] for row in table.to_pylist()]
    n = table.num_rows
    columns = [table.column(name).to_pylist() if name in present else [None] * n for name in names]
    return list(map(list, zip(*columns, strict=True)))


def positional_ok(row: Any) -> bool:
    """Whether the positional fast path gives JSONata's result for this row: an object whose values are
    all scalars (JSONata's path steps flatten arrays; the ItemSelector sends a non-object as its text)."""
    return type(row) is dict and all(type(v) not in (list, dict) for v in row.values())


def values_sizes(table: Any, names: list[str]) -> np.ndarray:
    """Compact JSON bytes of each row's values in this order as one array (null for an absent column)."""
    n = table.num_rows
    present = set(table.column_names)
    total = np.full(n, 2 + len(names) - 1, dtype=np.int64)
    for name in names:
        total += value_sizes(table.column(name)) if name in present else 4
    return total


def _lengths_by_repr(values: np.ndarray) -> np.ndarray:
    """len(repr(v)) for each value, computing repr once per distinct value."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    # Floats by bit pattern: -0.0 equals 0.0 but is written "-0.0". Arrow's dictionary encoding finds
    # the distinct values by hashing, several times faster than np.unique's sort.
    keys = values.view(np.int64) if values.dtype == np.float64 else values
    encoded = pc.dictionary_encode(pa.array(keys))
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False)
    inverse = encoded.indices.to_numpy(zero_copy_only=False)
    if values.dtype == np.float64:
        uniques = uniques.view(np.float64)
    # A finite number's JSON text is its repr (json.dumps uses float.__repr__ and int.__repr__), at a
    # tenth of json.dumps' cost per value; NaN and the infinities are written by json.dumps' own rule.
    python = uniques.tolist()
    lengths = np.fromiter(map(len, map(repr, python)), dtype=np.int64, count=len(python))
    if values.dtype == np.float64:
        for i in np.flatnonzero(~np.isfinite(uniques)):
            lengths[i] = _json_len(python[i])
    return lengths[inverse]


def value_sizes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Bytes of each value's compact JSON text."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    kind = array.type
    if pa.types.is_null(kind) or array.null_count == n:
        return np.full(n, 4, dtype=np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        sizes = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) + 2
        if _may_need_escapes(array):
            escape = (
                pc.match_substring_regex(array, NEEDS_ESCAPE).fill_null(False).to_numpy(zero_copy_only=False)
            )
            for i in np.flatnonzero(escape):
                sizes[i] = _json_len(array[int(i)].as_py())
    elif pa.types.is_floating(kind) or pa.types.is_integer(kind):
        numbers = array.fill_null(0).to_numpy(zero_copy_only=False)
        if pa.types.is_floating(kind):
            numbers = numbers.astype(np.float64)
        sizes = _lengths_by_repr(numbers)
    elif pa.types.is_boolean(kind):
        flags = array.fill_null(False).to_numpy(zero_copy_only=False)
        sizes = np.where(flags, 4, 5).astype(np.int64)
    else:
        raise ItemReaderError(f"no JSON size rule for Arrow type {kind}")
    return np.where(valid, sizes, 4)


def _may_need_escapes(array: pa.Array) -> bool:
    """Whether any byte of a string array's data is one JSON escapes (``NEEDS_ESCAPE``): one pass over
    the data buffer, where the regex goes value by value. The buffer may hold bytes no value uses (a
    slice's neighbours): then the answer is only "maybe", and the regex decides."""
    data = array.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool(((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any())


def row_sizes(table: Any) -> np.ndarray:
    """Compact JSON bytes of each row object."""
    if not isinstance(table, pa.Table):
        return np.fromiter((_json_len(r) for r in table), dtype=np.int64, count=len(table))
    n = table.num_rows
    names = table.column_names
    if not names:
        return np.full(n, 2, dtype=np.int64)
    total = np.full(n, 2 + sum(_json_len(c) + 1 for c in names) + len(names) - 1, dtype=np.int64)
    for column in table.columns:
        total += value_sizes(column)
    return total


def index_digits(first: int, count: int) -> np.ndarray:
    """Characters of each index ``first``..``first+count-1`` written as a JSON number."""
    indexes = np.arange(first, first + count, dtype=np.int64)
    digits = np.ones(count, dtype=np.int64)
    power = 10
    while count and power <= indexes[-1]:
        digits += indexes >= power
        power *= 10
    return digits
