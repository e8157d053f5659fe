"""The raw table reads as Athena's LazySimpleSerDe does: one bad row never costs the rest of its day.

Sources for the expected values (also cited in tools/localrun/athena/serde.py):
* Trino (Athena's engine) reads LazySimpleSerDe text with trino-hive-formats
  ``line/simple/SimpleDeserializer.java``: every line is a row, missing fields NULL, ``\\N`` NULL; a double
  field goes to ``NumberParser.parseDouble``, "always identical to what the JDK would return", and a
  ``NumberFormatException`` makes it NULL (``encodings/text/DoubleEncoding.java``, ``decodeValueInto``).
* So a double is ``java.lang.Double.parseDouble``: String.trim() of characters <= U+0020, optional sign,
  ``NaN`` / ``Infinity`` (case-sensitive), decimal with optional exponent and f/F/d/D suffix, hex float
  with a mandatory ``p`` exponent (JDK ``Double.valueOf`` grammar, FloatingDecimal.readJavaFormatString).
* Athena's line limits: athena/latest/ug/other-notable-limitations.html (200 MB per text line, 32 MB per row).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tools.localrun import stack
from tools.localrun.athena import AthenaError, AthenaStandIn
from tools.localrun.athena.serde import (
    ATHENA_MAX_ROW_BYTES,
    DUCKDB_MAX_LINE_BYTES,
    java_double,
    java_double_sql,
    needs_text_reader,
)
from tools.localrun.run import LocalPipeline
from tools.localrun.store import ObjectStore
from tools.localrun.summary import day_figures, summary_rows

HEADER = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude\n"
DAY = "2025-06-01"
NAN = float("nan")

# text of a double field -> what Athena reads (None: NULL). Java's Double.parseDouble, per the sources above.
CASTS: list[tuple[str, float | None]] = [
    ("21.5", 21.5),
    ("1_000", None),  # digit separators are not Java syntax (DuckDB's own cast says 1000)
    (" 12.5 ", 12.5),  # trim()
    ("\t7\t", 7.0),  # trim() removes every character <= U+0020
    ("\u00a012", None),  # a no-break space is not trimmed
    ("1e3", 1000.0),
    ("1E+3", 1000.0),
    ("1.5e-3", 0.0015),
    ("NaN", NAN),
    ("-NaN", NAN),
    ("nan", None),  # case-sensitive
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ("+Infinity", math.inf),
    ("inf", None),
    ("infinity", None),
    ("-0", -0.0),
    ("0x10", None),  # a hex float needs its binary exponent
    ("0x1p4", 16.0),
    ("0x1.8p1", 3.0),
    ("-0X.8P1d", -1.0),
    ("", None),
    ("+3", 3.0),
    ("+-3", None),  # DuckDB's cast says -3
    (".5", 0.5),
    ("5.", 5.0),
    (".", None),
    ("e3", None),
    ("1e", None),
    ("1d", 1.0),  # FloatingDecimal accepts a float/double type suffix
    ("2.5F", 2.5),
    ("NaNd", None),  # ... but not after NaN or Infinity
    ("1.2.3", None),
    ("12abc", None),
    ("1e99999", math.inf),
    ("\\N", None),  # the table's NULL sequence
]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.fixture
def athena(tmp_path: Path) -> AthenaStandIn:
    stand_in = AthenaStandIn(stack.rendered("dev"), ObjectStore(tmp_path))
    yield stand_in
    stand_in.close()


def _put(athena: AthenaStandIn, name: str, body: bytes, day: str = DAY) -> None:
    athena.store.put(athena.stack.exports["rawBucket"], f"daily-data/{day}/{name}", body)


def _raw(athena: AthenaStandIn, day: str = DAY) -> list[tuple]:
    return athena.query(
        'SELECT deviceid, "timestamp", temperature, humidity FROM "sensorflow_dev_db"."raw_readings" '
        "WHERE dt = ? ORDER BY deviceid NULLS FIRST",
        [day],
    )[1]


def test_java_reference_parser_matches_the_table() -> None:
    wrong = [(text, java_double(text), want) for text, want in CASTS if text != "\\N"]
    wrong = [w for w in wrong if not _same(w[1], w[2])]
    assert not wrong


@pytest.mark.parametrize("clean", [True, False], ids=["read_csv", "text-reader"])
def test_raw_table_casts_like_athena(athena: AthenaStandIn, clean: bool) -> None:
    lines = [f"d{i:02d},t,{text},{text},1,1,1" for i, (text, _) in enumerate(CASTS)]
    body = HEADER + "\n".join(lines) + "\n"
    if not clean:
        body += "\n"  # a blank line sends the file through the line-by-line reader
    _put(athena, "casts.csv", body.encode())
    rows = {r[0]: r for r in _raw(athena)}
    wrong = [
        (text, rows[f"d{i:02d}"][2:], want)
        for i, (text, want) in enumerate(CASTS)
        if not (_same(rows[f"d{i:02d}"][2], want) and _same(rows[f"d{i:02d}"][3], want))
    ]
    assert not wrong
    assert len(rows) == len(CASTS) + (0 if clean else 1)


def test_sql_cast_agrees_with_java_on_every_short_numeric_string(athena: AthenaStandIn) -> None:
    """Every string of up to 4 characters over digits, dot, sign, e, x, p, d, blank: SQL == reference."""
    texts = ["".join(p) for n in range(1, 5) for p in itertools.product("01.-+exp d", repeat=n)]
    assert len(texts) > 10_000
    athena.con.execute("CREATE TEMP TABLE t (v VARCHAR)")
    athena.con.executemany("INSERT INTO t VALUES (?)", [[t] for t in texts])
    got = dict(athena.con.execute(f"SELECT v, {java_double_sql('v')} FROM t").fetchall())
    wrong = [(t, got[t], java_double(t)) for t in texts if not _same(got[t], java_double(t))]
    assert not wrong[:20]


def test_duckdb_alone_would_be_more_lenient() -> None:
    """Negative control: DuckDB's TRY_CAST reads what Athena does not, so the stand-in cannot use it."""
    assert duckdb.connect().execute("SELECT TRY_CAST('1_000' AS DOUBLE)").fetchone()[0] == 1000.0


def test_invalid_utf8_keeps_the_row_and_the_rest_of_the_day(athena: AthenaStandIn) -> None:
    _put(
        athena,
        "a.csv",
        HEADER.encode()
        + b"d1,t1,21.5,40,80,1,2\n"
        + b"d\xff2,t2,21.5,40,80,1,2\n"
        + b"d3,t3,2\xc31.5,40,80,1,2\n"
        + b"d4,t4,22.5,40,80,1,2\n",
    )
    _put(athena, "b.csv", (HEADER + "d5,t5,23.5,40,80,1,2\n").encode())
    assert _raw(athena) == [
        ("d1", "t1", 21.5, 40.0),
        ("d3", "t3", None, 40.0),  # a number with an invalid byte does not parse: NULL
        ("d4", "t4", 22.5, 40.0),
        ("d5", "t5", 23.5, 40.0),
        ("d\ufffd2", "t2", 21.5, 40.0),  # replaced by U+FFFD, as Hadoop's Text.toString() does
    ]
    [(uri, read)] = athena.catalog.repairs.items()
    assert uri.endswith("/daily-data/2025-06-01/a.csv")
    assert read.replaced_bytes == 2


def test_blank_lines_are_rows_of_nulls(athena: AthenaStandIn) -> None:
    _put(athena, "a.csv", (HEADER + "d1,t1,21.5,40,80,1,2\n\nd2,t2,1,1,1,1,1\r\n\r\n").encode())
    # SimpleDeserializer declares a row per line: the blank line's first field is an empty string.
    assert _raw(athena) == [
        ("", None, None, None),
        ("", None, None, None),
        ("d1", "t1", 21.5, 40.0),
        ("d2", "t2", 1.0, 1.0),
    ]


def test_the_text_reader_check_is_its_plain_definition() -> None:
    """Every byte string of up to 5 bytes over LF, CR, a letter, a UTF-8 pair and a lone continuation
    byte: the fast check (ASCII first, CR searched once) says what decoding and the four searches say."""

    def plain(data: bytes) -> bool:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return any(blank in data for blank in (b"\n\n", b"\r\r", b"\r\n\r\n", b"\n\r\n"))

    alphabet = [b"\n", b"\r", b"a", "é".encode(), b"\x80"]
    texts = [b"".join(p) for n in range(6) for p in itertools.product(alphabet, repeat=n)]
    assert len(texts) == 3906
    differ = [t for t in texts if needs_text_reader(t) != plain(t)]
    assert not differ, differ[:5]
    assert sum(map(plain, texts)) > 1000  # both outcomes are exercised


def test_a_line_over_duckdb_limit_is_read_whole(athena: AthenaStandIn) -> None:
    long_id = "x" * (DUCKDB_MAX_LINE_BYTES + 1000)
    _put(athena, "a.csv", (HEADER + f"d1,t1,21.5,40,80,1,2\n{long_id},t2,20,40,80,1,2\n").encode())
    rows = _raw(athena)
    assert rows[0] == ("d1", "t1", 21.5, 40.0)
    assert rows[1][1:] == ("t2", 20.0, 40.0)
    assert rows[1][0] == long_id


def test_a_line_over_athena_row_limit_fails_the_query_as_athena_does(athena: AthenaStandIn) -> None:
    _put(athena, "a.csv", HEADER.encode() + b"d1," + b"9" * ATHENA_MAX_ROW_BYTES + b"\n")
    with pytest.raises(AthenaError, match=r"HIVE_BAD_DATA: Line too long in text file: s3://.*/a\.csv"):
        _raw(athena)


# ------------------------------------------------------------------------------------- through the pipeline
def _run(tmp_path: Path, files: dict[str, bytes]) -> tuple[LocalPipeline, Any, dict[str, dict]]:
    source = tmp_path / "in"
    for rel, body in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(body)
    pipeline = LocalPipeline(stack.rendered("dev"), tmp_path / "run", processes=0)
    pipeline.put_raw(source)
    run = pipeline.execute(DAY)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    columns, rows = pipeline.athena.sql(
        "SELECT deviceid, coalesce(substr(readingtime, 1, 19) || 'Z', readingtimestamp) AS readingtimestamp, "
        f'healthstatus, invalidreasons, anomalies FROM "{table.database}"."{table.name}"'
    )
    records = {r[1]: dict(zip(columns, r, strict=True)) for r in rows}
    return pipeline, run, records


def test_bad_rows_come_out_marked_and_the_day_survives(tmp_path: Path) -> None:
    body = (
        HEADER.encode()
        + b"d1,2025-06-01T00:00:00Z,21.5,40,80,1,2\n"
        + b"d1,2025-06-01T00:05:00Z,1_000,40,80,1,2\n"  # NULL for Athena: not a 1000-degree spike
        + b"d1,2025-06-01T00:10:00Z,2\xff1.5,40,80,1,2\n"
        + b"d1,2025-06-01T00:15:00Z,21.5,40,80,1,2,"
        + b"y" * (DUCKDB_MAX_LINE_BYTES + 10)
        + b"\n"
        + b"\n"
    )
    other = (HEADER + "d2,2025-06-01T00:20:00Z,21.5,40,80,1,2\n").encode()
    pipeline, run, records = _run(tmp_path, {f"{DAY}/a.csv": body, f"{DAY}/b.csv": other})
    try:
        assert run.rows == 6
        assert records["2025-06-01T00:05:00Z"]["healthstatus"] == "invalid"
        assert not records["2025-06-01T00:05:00Z"]["anomalies"]
        assert any("temperature" in r for r in records["2025-06-01T00:05:00Z"]["invalidreasons"])
        assert records["2025-06-01T00:10:00Z"]["healthstatus"] == "invalid"
        # the over-long line's extra field is ignored, as LazySimpleSerDe ignores extra fields
        assert records["2025-06-01T00:15:00Z"]["healthstatus"] == "healthy"
        assert records["2025-06-01T00:00:00Z"]["healthstatus"] == "healthy"
        assert [r["deviceid"] for r in records.values()].count("d2") == 1
        blank = [r for r in records.values() if r["readingtimestamp"] is None]
        assert len(blank) == 1
        assert blank[0]["healthstatus"] == "invalid"
    finally:
        pipeline.close()


def test_skipped_inputs_are_listed_with_reasons(tmp_path: Path) -> None:
    ok = (HEADER + "d1,2025-06-01T00:00:00Z,21.5,40,80,1,2\n").encode()
    files = {
        f"{DAY}/a.csv": ok,
        f"{DAY}/UPPER.CSV": ok,
        f"{DAY}/x.csv.gz": b"",
        "notes/a.csv": ok,
        "readme.txt": b"",
    }
    pipeline, run, _ = _run(tmp_path, files)
    try:
        skipped = {Path(p).name: why for p, why in pipeline.skipped_inputs}
        assert set(skipped) == {"UPPER.CSV", "x.csv.gz", "notes", "readme.txt"}
        assert "case-sensitive" in skipped["UPPER.CSV"]
        assert "'.csv.gz'" in skipped["x.csv.gz"]
        assert "day folder" in skipped["notes"]
        assert run.rows == 1
    finally:
        pipeline.close()


def test_identical_readings_are_reported_as_counted_once(tmp_path: Path) -> None:
    row = "d1,2025-06-01T00:00:00Z,21.5,40,80,1,2\n"
    pipeline, run, _ = _run(tmp_path, {f"{DAY}/a.csv": (HEADER + row * 4).encode()})
    try:
        summary = dict(summary_rows([run], [day_figures(pipeline, DAY)]))
        assert summary["valid / invalid readings"] == "1 / 0"
        assert summary["identical readings counted once"].startswith("3 ")
    finally:
        pipeline.close()
