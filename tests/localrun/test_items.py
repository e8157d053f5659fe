"""Item sizes computed column-wise equal the compact JSON size of the items themselves."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.localrun import items
from tools.tune.packing import json_size

texts = st.one_of(st.none(), st.text(max_size=12))
floats = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6).map(lambda x: round(x, 2))
)
ints = st.one_of(st.none(), st.integers(-(2**62), 2**62))
bools = st.one_of(st.none(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(texts, floats, ints, bools), min_size=1, max_size=30))
def test_row_sizes_equal_json_size(rows: list[tuple]) -> None:
    table = pa.table(
        {
            "deviceid": pa.array([r[0] for r in rows], pa.string()),
            "temperature": pa.array([r[1] for r in rows], pa.float64()),
            "count": pa.array([r[2] for r in rows], pa.int64()),
            "flag": pa.array([r[3] for r in rows], pa.bool_()),
        }
    )
    expected = [json_size(row) for row in table.to_pylist()]
    assert expected
    assert items.row_sizes(table).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, floats, ints), max_size=20))
def test_positional_values_are_each_rows_values_in_order(rows: list[tuple]) -> None:
    table = pa.table(
        {
            "deviceid": pa.array([r[0] for r in rows], pa.string()),
            "temperature": pa.array([r[1] for r in rows], pa.float64()),
            "count": pa.array([r[2] for r in rows], pa.int64()),
        }
    )
    names = ["count", "absent", "deviceid", "temperature"]
    expected = [[row.get(name) for name in names] for row in table.to_pylist()]
    got = items.positional_values(table, names)
    assert len(got) == len(rows)
    assert repr(got) == repr(expected)  # repr: NaN equals itself, and -0.0 stays -0.0


def test_escapes_and_unicode_are_counted_exactly() -> None:
    values = ['a"b', "back\\slash", "tab\there", "nul\x00", "ünï", "日本", ""]
    table = pa.table({"s": pa.array(values)})
    assert items.row_sizes(table).tolist() == [json_size({"s": v}) for v in values]


def test_a_slice_and_an_all_null_column_are_counted_exactly() -> None:
    # A slice shares its parent's data buffer: an escape outside the slice may send it the slow way,
    # which must give the same sizes; one inside must be counted.
    table = pa.table(
        {"s": pa.array(["plain", 'quo"te', "tab\there", None]), "n": pa.array([None] * 4, pa.float64())}
    )
    for start, length in [(0, 1), (1, 1), (0, 2), (2, 2), (3, 1)]:
        part = table.slice(start, length)
        assert items.row_sizes(part).tolist() == [json_size(row) for row in part.to_pylist()]


def test_the_buffer_check_flags_exactly_the_bytes_the_escape_regex_matches() -> None:
    # _may_need_escapes restates NEEDS_ESCAPE as byte tests: they must not drift apart.
    flagged = [b for b in range(256) if items._may_need_escapes(pa.array([bytes([b]).decode("latin-1")]))]
    matched = [b for b in range(128) if re.search(items.NEEDS_ESCAPE, chr(b))]
    assert matched == flagged
    assert len(flagged) == 34  # the 32 control characters, the quote and the backslash


def test_numbers_that_compare_equal_keep_their_own_text() -> None:
    # 0.0 == -0.0, but JSON writes "0.0" and "-0.0": distinct values are found by bit pattern.
    values = [0.0, -0.0, 1.0, 1.5, -0.0, float("inf"), float("nan"), 1e16, 123456.789]
    table = pa.table({"x": pa.array(values, pa.float64()), "n": pa.array([0, -1, 2**62, 7, 0, 1, 1, 2, 3])})
    assert items.row_sizes(table).tolist() == [json_size(row) for row in table.to_pylist()]


def test_index_digits() -> None:
    got = items.index_digits(8, 4).tolist()
    assert got == [len(str(i)) for i in range(8, 12)]
    assert items.index_digits(0, 1).tolist() == [1]
    assert items.index_digits(99_999, 2).tolist() == [5, 6]


def test_non_json_parquet_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"ts": pa.array([datetime.datetime(2025, 1, 1)])}), path)
    with pytest.raises(items.ItemReaderError, match=r"column 'ts'.*varchar"):
        items.read_table(path, "PARQUET", None, None)
