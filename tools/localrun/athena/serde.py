"""How Athena reads a text table's bytes: Trino's LazySimpleSerDe reader, emulated for the raw CSV table.

Every value is read as text, a ``double`` column parsed by Java's ``Double.parseDouble`` grammar, an
unparseable value NULL (``JAVA_DOUBLE_RE``, ``java_double_sql``); missing trailing fields are NULL, extra
fields ignored, ``\\N`` is NULL, no quoting; a blank line is a row; invalid UTF-8 becomes U+FFFD
(``read_text_file``, for the files DuckDB's read_csv would read differently: ``needs_text_reader``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.localrun.athena.dialect import sql_literal
from tools.localrun.athena.errors import AthenaError

# How LazySimpleSerDe reads a double field (Athena's engine is Trino; its reader for this SerDe is
# trino-hive-formats line/simple/SimpleDeserializer.java, "bug for bug compatible with LazySimpleSerDe"):
# the field's bytes go to NumberParser.parseDouble, which gives exactly java.lang.Double.parseDouble's
# result, and a NumberFormatException makes the value NULL (encodings/text/DoubleEncoding.java,
# decodeValueInto). Hive's own LazyDouble also calls Double.parseDouble and sets NULL on failure. So the
# accepted text is the grammar of Double.valueOf (FloatingDecimal.readJavaFormatString): surrounding
# characters <= U+0020 trimmed (String.trim), an optional sign, then NaN, Infinity (case-sensitive), a
# decimal with optional exponent and an optional f/F/d/D suffix, or a hex float whose binary exponent
# (p...) is mandatory. No digit separators ("1_000"), no decimal comma, no "inf"/"nan".
_JAVA_BLANK = r"[\x00-\x20]*"
_JAVA_SPECIAL = r"[+-]?(?:NaN|Infinity)"
_JAVA_DECIMAL = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_JAVA_HEX = r"[+-]?0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
JAVA_DOUBLE_RE = (
    f"^{_JAVA_BLANK}(?:({_JAVA_SPECIAL})|({_JAVA_DECIMAL})[fFdD]?|({_JAVA_HEX})[fFdD]?){_JAVA_BLANK}$"
)
_JAVA_HEX_RE = f"^{_JAVA_BLANK}{_JAVA_HEX}[fFdD]?{_JAVA_BLANK}$"
# Athena's limits on a text line (athena/latest/ug/other-notable-limitations.html): a line of a text file
# may be at most 200 MB (TextLineLengthLimitExceededException), and a row or any of its columns at most
# 32 MB, "a hard limit of the service". The stand-in fails the query above the smaller of the two (as
# strict as Athena, never more lenient) and reads every shorter line whole.
ATHENA_MAX_ROW_BYTES = 32 * 1024 * 1024
DUCKDB_MAX_LINE_BYTES = 2_097_152  # read_csv's default max_line_size: longer lines go the Python way
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")  # Hadoop/Trino line readers end a line at LF, CR or CRLF


def java_double(text: str) -> float | None:
    """``Double.parseDouble(text)`` as LazySimpleSerDe applies it: the double, or None where Java throws."""
    m = re.match(JAVA_DOUBLE_RE, text)
    if m is None:
        return None
    special, decimal, hexa = m.groups()
    if hexa is not None:
        return hex_double(hexa)
    return float(special or decimal)


def hex_double(text: str | None) -> float | None:
    """A hex float matched by ``JAVA_DOUBLE_RE`` as Java reads it (DuckDB registers it for ``java_double_sql``)."""
    if text is None:
        return None
    core = text.strip("".join(chr(c) for c in range(0x21))).rstrip("fFdD")
    try:
        return float.fromhex(core)
    except OverflowError:  # Java rounds an out-of-range hex float to an infinity, as for decimals
        return float("-inf") if core.startswith("-") else float("inf")


def java_double_sql(column: str) -> str:
    """DuckDB SQL for ``java_double`` over a VARCHAR column (DuckDB's own cast accepts more: ``1_000``)."""
    pattern = sql_literal(JAVA_DOUBLE_RE)
    # Once the grammar matched, DuckDB's cast gives Java's value for the text itself, except for the
    # blanks Java trims, the f/d suffix and hex floats: only those take the slower ways.
    # First the plain decimals nearly every reading is (one short regex): at most 15 digits each side
    # never overflows, and DuckDB's cast, like Java's parseDouble, rounds them correctly.
    return (
        f"CASE WHEN regexp_full_match({column}, '-?[0-9]{{1,15}}(\\.[0-9]{{1,15}})?') "
        f"THEN TRY_CAST({column} AS DOUBLE) "
        f"WHEN NOT regexp_full_match({column}, {pattern}) THEN NULL "
        f"WHEN NOT regexp_matches({column}, '[xXfFdD\\x00-\\x20]') THEN TRY_CAST({column} AS DOUBLE) "
        f"WHEN regexp_full_match({column}, {sql_literal(_JAVA_HEX_RE)}) THEN __java_hex_double({column}) "
        f"ELSE TRY_CAST(regexp_replace({column}, {pattern}, '\\1\\2') AS DOUBLE) END"
    )


@dataclass(frozen=True)
class TextFileRead:
    """What ``read_text_file`` made of one text file: its rows (all text) and what it had to repair."""

    rows: list[list[str | None]]
    replaced_bytes: int  # invalid UTF-8 sequences now U+FFFD
    blank_lines: int
    longest_line: int


def needs_text_reader(data: bytes) -> bool:
    """Whether DuckDB's read_csv would read ``data`` differently from LazySimpleSerDe (or fail on it).

    read_csv refuses a file with invalid UTF-8 or a line over its max_line_size (losing every row of the
    query), and skips blank lines, which Athena reads as rows.
    """
    # The common file is ASCII with LF line ends: ``isascii`` and a one-byte search for CR are a few
    # milliseconds for a day of raw files, where a UTF-8 decode and four two-byte searches took a
    # quarter of a second of the UNLOAD. The result is the same: ASCII is valid UTF-8, and each blank
    # line but LF LF holds a CR.
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return True
    if b"\n\n" in data:
        return True
    if b"\r" in data and (b"\r\r" in data or b"\r\n\r\n" in data or b"\n\r\n" in data):
        return True
    if len(data) > DUCKDB_MAX_LINE_BYTES:
        return max(len(line) for line in _LINE_BREAK.split(data)) > DUCKDB_MAX_LINE_BYTES // 2
    return False


def read_text_file(data: bytes, *, columns: int, delimiter: str, skip_header: int, uri: str) -> TextFileRead:
    """One text file read line by line as Trino's LazySimpleSerDe reader does.

    * Lines end at LF, CR or CRLF; a terminator at the end of the file does not start another line.
    * Every line is a row (SimpleDeserializer declares a position per line): a blank line is one empty
      first field and NULLs after it; missing trailing fields are NULL, extra fields are ignored, a field
      that is exactly ``\\N`` is NULL.
    * Invalid UTF-8 is replaced by U+FFFD, as Hadoop's ``Text.toString()`` (``decode(..., replace=true)``)
      and Trino's ``Slice.toStringUtf8()`` do when they turn the bytes into characters; a number with such
      a byte does not parse and is NULL, as in Athena.
    * A line longer than ``ATHENA_MAX_ROW_BYTES`` fails the query with HIVE_BAD_DATA, as Athena does.
    """
    lines = _LINE_BREAK.split(data)
    if lines and lines[-1] == b"":
        lines.pop()
    rows: list[list[str | None]] = []
    replaced = blank = longest = 0
    delim = delimiter.encode()
    for number, line in enumerate(lines[skip_header:], skip_header + 1):
        longest = max(longest, len(line))
        if len(line) > ATHENA_MAX_ROW_BYTES:
            raise AthenaError(
                "HIVE_BAD_DATA",
                f"Line too long in text file: {uri} (line {number}: {len(line):,} bytes; Athena's row limit "
                f"is {ATHENA_MAX_ROW_BYTES:,})",
            )
        if not line:
            blank += 1
        fields: list[str | None] = []
        for raw in line.split(delim)[:columns]:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                replaced += text.count("\ufffd") - raw.decode("utf-8", "ignore").count("\ufffd")
            fields.append(None if text == "\\N" else text)
        fields += [None] * (columns - len(fields))
        rows.append(fields)
    return TextFileRead(rows, replaced, blank, longest)
