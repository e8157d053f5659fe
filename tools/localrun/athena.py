"""The Athena stand-in: DuckDB reading the stage's Glue tables from the object store.

* Tables come from the rendered Glue tables (``stack.TableSpec``): the raw CSV table (header skipped,
  every value read as text; a ``double`` column parsed by Java's ``Double.parseDouble`` grammar, an
  unparseable value NULL (see ``JAVA_DOUBLE_RE``); missing trailing fields are NULL, extra fields
  ignored, ``\\N`` is NULL, no quoting; a blank line is a row; invalid UTF-8 becomes U+FFFD; see
  ``read_text_file``), the analysis table (newline-delimited JSON, gzip by file extension, unknown keys ignored
  like the OpenX JSON SerDe) and the KPI table (Parquet). Partition projection is emulated by listing the
  folders the ``storage.location.template`` names and giving each its literal ``dt``; a filter on ``dt``
  therefore prunes whole folders, as projection does.
* SQL is the deployed Trino text transpiled with sqlglot (``read="trino", write="duckdb"``).
* ``UNLOAD (<select>) TO '<s3 uri>' WITH (...)`` is Athena-only syntax, emulated here: the target prefix
  must be empty (UNLOAD never overwrites), data files are written under it, and ``<query id>-manifest.csv``
  (one ``s3://`` URI per line, no header) goes to the workgroup's result location; the result carries
  ``Statistics.DataManifestLocation``. A SELECT writes ``<query id>.csv`` (with header) there and
  ``get_query_results`` pages it as Athena's ``ResultSet`` (every value a ``VarCharValue`` string).

Docs: docs.aws.amazon.com/athena/latest/ug/unload.html, querying-finding-output-files.html,
partition-projection.html, and the Step Functions Athena integration (connect-athena.html).
"""

from __future__ import annotations

import csv
import io
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from tools.localrun.stack import LocalStack, TableSpec
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
HIVE_SCALARS = {
    "string": "VARCHAR", "varchar": "VARCHAR", "int": "INTEGER", "integer": "INTEGER", "bigint": "BIGINT",
    "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP",
}  # fmt: skip
ROWS_PER_UNLOAD_FILE = 200_000  # Athena writes several files; so does the stand-in, so the map reads many

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
        return _hex_double(hexa)
    return float(special or decimal)


def _hex_double(text: str | None) -> float | None:
    if text is None:
        return None
    core = text.strip("".join(chr(c) for c in range(0x21))).rstrip("fFdD")
    try:
        return float.fromhex(core)
    except OverflowError:  # Java rounds an out-of-range hex float to an infinity, as for decimals
        return float("-inf") if core.startswith("-") else float("inf")


def java_double_sql(column: str) -> str:
    """DuckDB SQL for ``java_double`` over a VARCHAR column (DuckDB's own cast accepts more: ``1_000``)."""
    pattern = _lit(JAVA_DOUBLE_RE)
    # Once the grammar matched, DuckDB's cast gives Java's value for the text itself, except for the
    # blanks Java trims, the f/d suffix and hex floats: only those take the slower ways.
    return (
        f"CASE WHEN NOT regexp_full_match({column}, {pattern}) THEN NULL "
        f"WHEN NOT regexp_matches({column}, '[xXfFdD\\x00-\\x20]') THEN TRY_CAST({column} AS DOUBLE) "
        f"WHEN regexp_full_match({column}, {_lit(_JAVA_HEX_RE)}) THEN __java_hex_double({column}) "
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
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    if b"\n\n" in data or b"\r\r" in data or b"\r\n\r\n" in data or b"\n\r\n" in data:
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


class AthenaError(RuntimeError):
    """A query Athena would reject or fail; ``code`` is Athena's error category."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


HiveType = str | tuple  # a scalar's Hive name, ("array", element) or ("struct", [(name, type), ...])


def parse_hive_type(hive: str) -> HiveType:
    """A Glue/Hive column type, parsed once by sqlglot's Hive dialect, as a small tree: a scalar's Hive
    name (``"double"``), ``("array", element)`` or ``("struct", [(field, type), ...])``."""
    try:
        parsed = exp.DataType.build(hive, dialect="hive")
    except (sqlglot.errors.ParseError, ValueError) as error:
        raise AthenaError("HIVE_UNSUPPORTED_TYPE", f"cannot parse Glue type {hive!r}: {error}") from None
    return _hive_tree(parsed, hive)


def _hive_tree(node: exp.DataType, hive: str) -> HiveType:
    if node.this == exp.DataType.Type.ARRAY:
        (element,) = node.expressions
        return ("array", _hive_tree(element, hive))
    if node.this == exp.DataType.Type.STRUCT:
        return ("struct", [(field.name, _hive_tree(field.args["kind"], hive)) for field in node.expressions])
    name = node.sql("hive").lower()
    if name not in HIVE_SCALARS:
        raise AthenaError("HIVE_UNSUPPORTED_TYPE", f"the stand-in cannot map Glue type {hive!r}")
    return name


def hive_to_duckdb(hive: HiveType) -> str:
    """A Glue/Hive column type (text, or its parsed tree) as a DuckDB type: ``struct<a:double>`` ->
    ``STRUCT("a" DOUBLE)``."""
    tree = parse_hive_type(hive) if isinstance(hive, str) else hive
    if isinstance(tree, str):
        return HIVE_SCALARS[tree]
    kind, inner = tree
    if kind == "array":
        return hive_to_duckdb(inner) + "[]"
    return "STRUCT(" + ", ".join(f'"{name}" {hive_to_duckdb(t)}' for name, t in inner) + ")"


def _trino_functions(node: exp.Expression) -> exp.Expression:
    """Trino functions sqlglot leaves as they are but DuckDB lacks, rewritten to DuckDB equivalents."""
    if (
        isinstance(node, exp.Anonymous)
        and str(node.name).upper() == "ANY_MATCH"
        and len(node.expressions) == 2
    ):
        # any_match(array, predicate): true if any element satisfies it; false for an empty array.
        array, predicate = node.expressions
        transformed = exp.Anonymous(this="list_transform", expressions=[array, predicate])
        return exp.Coalesce(
            this=exp.Anonymous(this="list_bool_or", expressions=[transformed]), expressions=[exp.false()]
        )
    return node


def to_duckdb(sql: str) -> str:
    """Deployed Trino SQL as DuckDB SQL."""
    try:
        tree = sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.ParseError as exc:
        raise AthenaError("SYNTAX_ERROR", f"{exc} in: {sql[:300]}") from exc
    return tree.transform(_trino_functions).sql(dialect="duckdb")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class QueryRecord:
    """One query the stand-in ran."""

    query_id: str
    sql: str
    kind: str  # UNLOAD | SELECT
    rows: int
    output_location: str
    manifest_location: str | None
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


class AthenaStandIn:
    """DuckDB behind the two Athena calls the definition makes (and the report's named queries)."""

    def __init__(
        self,
        stack: LocalStack,
        store: ObjectStore,
        *,
        id_factory: Callable[[], str] | None = None,
        threads: int = 2,
        memory_limit: str = "320MB",
        rows_per_file: int = ROWS_PER_UNLOAD_FILE,
        cache_json: bool = True,
        temp_directory: Path | None = None,
        database: Path | None = None,
    ):
        self.stack = stack
        self.store = store
        self.id_factory = id_factory or (lambda: str(uuid.uuid4()))
        self.rows_per_file = rows_per_file
        config = {"threads": threads, "memory_limit": memory_limit}
        if temp_directory is not None:
            config["temp_directory"] = str(temp_directory)  # lets big sorts spill instead of growing
        # A database file (when given) lets DuckDB keep the parsed-object cache on disk and within
        # memory_limit instead of in the process's memory.
        self.con = duckdb.connect(str(database) if database else ":memory:", config=config)
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute("SET TimeZone = 'UTC'")  # Athena works in UTC
        # DuckDB's type_pushdown turns TRY_CAST over a CSV column into a strict typed read that fails on
        # the first unparseable value; the raw table must turn such a value into NULL instead.
        self.con.execute("SET disabled_optimizers = 'type_pushdown'")
        self.con.create_function("__java_hex_double", _hex_double, ["VARCHAR"], "DOUBLE", side_effects=False)
        self.queries: dict[str, QueryRecord] = {}
        self.cache_json = cache_json
        self._json_cache: dict[str, dict[str, tuple[int, tuple[int, int]]]] = {}  # path: (id, ident)
        self._text_cache: dict[str, tuple[tuple[int, int], str | None]] = {}  # path: (ident, table or None)
        self.repairs: dict[str, TextFileRead] = {}  # s3 URI: what read_text_file repaired in that object
        self._next_file_id = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ catalog
    def _partitions(self, table: TableSpec) -> list[tuple[str, str]]:
        """(dt value, folder URI) of every partition folder that exists (partition projection)."""
        template = table.location_template or (table.location + "${dt}/")
        if "${dt}" not in template:
            raise AthenaError("HIVE_METASTORE_ERROR", f"{table.name}: location template without ${{dt}}")
        before, after = template.split("${dt}", 1)
        parent_uri, _, name_prefix = before.rpartition("/")
        bucket, parent_key = split_uri(parent_uri + "/")
        folder = self.store.path(bucket, parent_key)
        if not folder.is_dir():
            return []
        found = []
        suffix_dir = after.strip("/")
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or not child.name.startswith(name_prefix):
                continue
            value = child.name[len(name_prefix) :]
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                continue  # projection type date, format yyyy-MM-dd: anything else is not a partition
            found.append((value, f"{parent_uri}/{child.name}/{suffix_dir + '/' if suffix_dir else ''}"))
        return found

    def _files(self, uri: str) -> list[str]:
        bucket, key = split_uri(uri)
        return [
            str(self.store.path(bucket, k))
            for k, size in self.store.list(bucket, key)
            if size > 0 and not k.rsplit("/", 1)[-1].startswith((".", "_"))
        ]

    def _cached_json_sql(self, table: TableSpec, cols: list[tuple[str, str]]) -> str:
        """The JSON table from a cache of parsed objects: each S3 object is parsed once.

        Objects are immutable (a key is rewritten only as a new object), so a cache keyed by path, size
        and modification time returns what a fresh scan would; objects that disappeared leave the cache.
        Rows carry a small integer naming their object (paths live once, in ``__files``): a path per row
        would be the largest column of the cache and push it past ``memory_limit`` into spilling.
        """
        cache = f'"__cache"."{table.name}"'
        files = f'"__cache"."{table.name}__files"'
        if table.name not in self._json_cache:
            self.con.execute("ATTACH IF NOT EXISTS ':memory:' AS __cache (COMPRESS)")
            columns = ", ".join(f'"{n}" {t}' for n, t in cols)
            self.con.execute(f"CREATE OR REPLACE TABLE {cache} ({columns}, dt VARCHAR, __file INTEGER)")
            self.con.execute(f"CREATE OR REPLACE TABLE {files} (id INTEGER, path VARCHAR)")
            self._json_cache[table.name] = {}
        known = self._json_cache[table.name]
        current: dict[str, tuple[str, tuple[int, int]]] = {}
        for dt, uri in self._partitions(table):
            for path in self._files(uri):
                stat = Path(path).stat()
                current[path] = (dt, (stat.st_size, stat.st_mtime_ns))
        stale = [p for p, (_id, ident) in known.items() if p not in current or current[p][1] != ident]
        if stale:
            ids = [known.pop(path)[0] for path in stale]
            self.con.execute(f"DELETE FROM {cache} WHERE __file IN (SELECT unnest(?))", [ids])
            self.con.execute(f"DELETE FROM {files} WHERE id IN (SELECT unnest(?))", [ids])
        fresh: dict[str, list[str]] = {}
        for path, (dt, _ident) in current.items():
            if path not in known:
                fresh.setdefault(dt, []).append(path)
        spec = "{" + ", ".join(f"{_lit(n)}: {_lit(t)}" for n, t in cols) + "}"
        names = ", ".join(f'"{n}"' for n, _ in cols)
        parsed = ", ".join(f'j."{n}"' for n, _ in cols)
        for dt, paths in fresh.items():
            first = self._next_file_id
            self._next_file_id += len(paths)
            self.con.execute(
                f"INSERT INTO {files} SELECT unnest(?::INTEGER[]), unnest(?::VARCHAR[])",
                [list(range(first, first + len(paths))), paths],
            )
            file_list = "[" + ", ".join(_lit(f) for f in paths) + "]"
            self.con.execute(
                f"INSERT INTO {cache} SELECT {parsed}, {_lit(dt)}, "
                f"f.id FROM read_json({file_list}, format='newline_delimited', columns={spec}, "
                f"compression='auto', filename=true) AS j JOIN {files} AS f ON j.filename = f.path"
            )
            for number, path in enumerate(paths, first):
                known[path] = (number, current[path][1])
        return f"SELECT {names}, dt FROM {cache}"

    def _text_source(self, table: TableSpec, cols: list[tuple[str, str]], files: list[str], uri: str) -> str:
        """The text files of one partition as VARCHAR columns, every line read as LazySimpleSerDe does.

        Files DuckDB's read_csv reads exactly as Athena does go to read_csv (fast); the others (invalid
        UTF-8, a line over read_csv's limit, blank lines) are read by ``read_text_file`` once per object
        version into a cached table, so one bad line costs neither its file nor the rest of the day.
        """
        names = [n for n, _ in cols]
        plain, sources = [], []
        for path in files:
            cached = self._text_cache_table(table, names, path, uri)
            if cached is None:
                plain.append(path)
            else:
                sources.append(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM {cached}")
        if plain:
            spec = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
            sources.insert(
                0,
                f"SELECT * FROM read_csv([{', '.join(_lit(f) for f in plain)}], "
                f"header={'true' if table.skip_header_lines else 'false'}, "
                f"columns={spec}, delim={_lit(table.field_delimiter)}, quote='', escape='', "
                "nullstr='\\N', null_padding=true, strict_mode=false, auto_detect=false)",
            )
        return "(" + " UNION ALL ".join(sources) + ")"

    def _text_cache_table(self, table: TableSpec, names: list[str], path: str, uri: str) -> str | None:
        """The cached table holding ``path`` read by ``read_text_file``, or None when read_csv reads it."""
        stat = Path(path).stat()
        ident = (stat.st_size, stat.st_mtime_ns)
        known = self._text_cache.get(path)
        if known is not None and known[0] == ident:
            return known[1]
        if known is not None and known[1] is not None:
            self.con.execute(f"DROP TABLE IF EXISTS {known[1]}")
        data = Path(path).read_bytes()
        name = None
        if needs_text_reader(data):
            key = path.rsplit("/", 1)[-1]
            read = read_text_file(
                data,
                columns=len(names),
                delimiter=table.field_delimiter,
                skip_header=table.skip_header_lines,
                uri=uri + key,
            )
            self.con.execute("ATTACH IF NOT EXISTS ':memory:' AS __cache (COMPRESS)")
            self._next_file_id += 1
            name = f'"__cache"."{table.name}__text{self._next_file_id}"'
            columns = {n: pa.array([row[i] for row in read.rows], pa.string()) for i, n in enumerate(names)}
            self.con.register("__text_rows", pa.table(columns))
            try:
                self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM __text_rows")
            finally:
                self.con.unregister("__text_rows")
            self.repairs[uri + key] = read
        self._text_cache[path] = (ident, name)
        return name

    def _table_sql(self, table: TableSpec) -> str:
        cols = [(n, hive_to_duckdb(t)) for n, t in table.columns]
        if table.classification == "json" and self.cache_json:
            return self._cached_json_sql(table, cols)
        parts = []
        for dt, uri in self._partitions(table):
            files = self._files(uri)
            if not files:
                continue
            file_list = "[" + ", ".join(_lit(f) for f in files) + "]"
            if table.classification == "csv":
                source = self._text_source(table, cols, files, uri)
                select = ", ".join(
                    f'"{n}"'
                    if t == "VARCHAR"
                    else f'{java_double_sql(chr(34) + n + chr(34))} AS "{n}"'
                    if t in ("DOUBLE", "FLOAT")
                    else f'TRY_CAST(trim("{n}") AS {t}) AS "{n}"'
                    for n, t in cols
                )
            elif table.classification == "json":
                spec = "{" + ", ".join(f"{_lit(n)}: {_lit(t)}" for n, t in cols) + "}"
                source = (
                    f"read_json({file_list}, format='newline_delimited', columns={spec}, compression='auto')"
                )
                select = ", ".join(f'"{n}"' for n, _ in cols)
            elif table.classification == "parquet":
                source = f"read_parquet({file_list}, union_by_name=true)"
                select = ", ".join(f'CAST("{n}" AS {t}) AS "{n}"' for n, t in cols)
            else:
                raise AthenaError(
                    "HIVE_UNSUPPORTED_FORMAT", f"{table.name}: classification {table.classification!r}"
                )
            parts.append(f"SELECT {select}, {_lit(dt)} AS dt FROM {source}")
        if not parts:
            nulls = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in cols)
            return f"SELECT {nulls}, CAST(NULL AS VARCHAR) AS dt WHERE false"
        return " UNION ALL ".join(parts)

    def refresh_catalog(self) -> None:
        """(Re)define every table as a view over the partitions that exist now."""
        for table in self.stack.tables.values():
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.database}"')
            self.con.execute(
                f'CREATE OR REPLACE VIEW "{table.database}"."{table.name}" AS {self._table_sql(table)}'
            )

    # ------------------------------------------------------------------------------------------ queries
    def start_query_execution(
        self,
        QueryString: str,
        WorkGroup: str | None = None,
        QueryExecutionContext: dict | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Run a query to completion (the ``.sync`` integration) and return ``GetQueryExecution``'s shape."""
        if extra:
            raise AthenaError(
                "InvalidRequestException", f"unsupported StartQueryExecution fields {sorted(extra)}"
            )
        expected = self.stack.exports["workgroup"]
        if WorkGroup != expected:
            raise AthenaError(
                "InvalidRequestException",
                f"WorkGroup {WorkGroup!r} does not exist (the stage's is {expected!r})",
            )
        context = QueryExecutionContext or {}
        database = context.get("Database")
        if database and database != self.stack.exports["database"]:
            raise AthenaError("SCHEMA_NOT_FOUND", f"database {database!r} does not exist")
        with self._lock:
            return self._run(QueryString, context)

    def _run(self, sql: str, context: dict[str, Any]) -> dict[str, Any]:
        query_id = self.id_factory()
        started = datetime.now(UTC)
        self.refresh_catalog()
        results_bucket, results_key = split_uri(self.stack.results_location)
        unload = UNLOAD_RE.match(sql)
        statistics: dict[str, Any] = {}
        try:
            if unload:
                record = self._unload(query_id, unload, results_bucket, results_key)
                statistics["DataManifestLocation"] = record.manifest_location
            else:
                record = self._select(query_id, sql, results_bucket, results_key)
        except duckdb.Error as exc:
            raise AthenaError(
                "GENERIC_INTERNAL_ERROR", f"query {query_id} failed: {exc}\nSQL: {sql[:500]}"
            ) from exc
        record.sql = sql
        finished = datetime.now(UTC)
        record.seconds = (finished - started).total_seconds()
        self.queries[query_id] = record
        statistics["EngineExecutionTimeInMillis"] = int(record.seconds * 1000)
        return {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "Query": sql,
                "StatementType": "DML",
                "ResultConfiguration": {"OutputLocation": record.output_location},
                "QueryExecutionContext": context,
                "Status": {
                    "State": "SUCCEEDED",
                    "SubmissionDateTime": started.isoformat(),
                    "CompletionDateTime": finished.isoformat(),
                },
                "Statistics": statistics,
                "WorkGroup": self.stack.exports["workgroup"],
            }
        }

    def _unload(self, query_id: str, m: re.Match[str], results_bucket: str, results_key: str) -> QueryRecord:
        props: dict[str, str] = {}
        for item in _split_top_level(m.group("with")):
            parsed = WITH_ITEM_RE.match(item)
            if not parsed:
                raise AthenaError(
                    "SYNTAX_ERROR", f"UNLOAD WITH property {item.strip()!r} is not key = 'value'"
                )
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
        target = m.group("to")
        bucket, prefix = split_uri(target)
        if not prefix.endswith("/"):
            prefix += "/"
        if self.store.list(bucket, prefix):
            # Athena refuses to UNLOAD into a location that already holds objects.
            raise AthenaError(
                "HIVE_PATH_ALREADY_EXISTS", f"Target directory {target} already exists and is not empty"
            )
        table = self.con.sql(to_duckdb(m.group("select"))).to_arrow_table()
        files = []
        for part, offset in enumerate(range(0, max(table.num_rows, 1), self.rows_per_file)):
            chunk = table.slice(offset, self.rows_per_file)
            if chunk.num_rows == 0:
                break
            ext = {"PARQUET": "", "JSON": "", "TEXTFILE": ""}[fmt] + (
                ".gz" if compression == "GZIP" and fmt != "PARQUET" else ""
            )
            key = f"{prefix}{query_id}_{part:05d}{ext}"
            path = self.store.path(bucket, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            files.append(self.store.uri(bucket, key))
            if fmt == "PARQUET":
                # Arrow writes the chunk it already holds about twice as fast as a COPY through DuckDB.
                pq.write_table(chunk, path, compression=compression.lower())
                continue
            self.con.register("__unload_chunk", chunk)
            try:
                if fmt == "JSON":
                    options = "FORMAT json" + (", COMPRESSION 'gzip'" if compression == "GZIP" else "")
                else:
                    delim = props.get("field_delimiter", ",")
                    options = f"FORMAT csv, HEADER false, DELIMITER {_lit(delim)}, QUOTE '', ESCAPE '', NULLSTR '\\N'"
                    if compression == "GZIP":
                        options += ", COMPRESSION 'gzip'"
                self.con.execute(f"COPY (SELECT * FROM __unload_chunk) TO {_lit(str(path))} ({options})")
            finally:
                self.con.unregister("__unload_chunk")
        manifest_key = f"{results_key}{query_id}-manifest.csv"
        self.store.put(results_bucket, manifest_key, "".join(f + "\n" for f in files).encode())
        return QueryRecord(
            query_id=query_id,
            sql="",
            kind="UNLOAD",
            rows=table.num_rows,
            output_location=self.store.uri(results_bucket, f"{results_key}{query_id}"),
            manifest_location=self.store.uri(results_bucket, manifest_key),
            files=files,
        )

    def _select(
        self, query_id: str, sql: str, results_bucket: str, results_key: str, params: list | None = None
    ) -> QueryRecord:
        cursor = self.con.execute(to_duckdb(sql), params or [])
        header = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else _athena_text(v) for v in row])
        key = f"{results_key}{query_id}.csv"
        self.store.put(results_bucket, key, buffer.getvalue().encode())
        return QueryRecord(query_id, "", "SELECT", len(rows), self.store.uri(results_bucket, key), None)

    def get_query_results(
        self, QueryExecutionId: str, MaxResults: int | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A SELECT's result as Athena pages it: the header row first, then data rows, values as text."""
        if extra:
            raise AthenaError(
                "InvalidRequestException", f"unsupported GetQueryResults fields {sorted(extra)}"
            )
        record = self.queries.get(QueryExecutionId)
        if record is None:
            raise AthenaError("InvalidRequestException", f"QueryExecution {QueryExecutionId} was not found")
        if record.kind != "SELECT":
            raise AthenaError(
                "InvalidRequestException", f"query {QueryExecutionId} is an UNLOAD: it has no result set"
            )
        body = self.store.get(*split_uri(record.output_location)).decode()
        table = list(csv.reader(io.StringIO(body)))
        if MaxResults is not None:
            table = table[: int(MaxResults)]
        return {
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": v} if v != "" else {} for v in row]} for row in table],
                "ResultSetMetadata": {
                    "ColumnInfo": [
                        {"Name": n, "Label": n, "Type": "varchar"} for n in (table[0] if table else [])
                    ]
                },
            },
            "UpdateCount": 0,
        }

    # ------------------------------------------------------------------------------------------ reading
    def query(self, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        """Run deployed SQL (with ``?`` parameters, as a named query) and return (columns, rows)."""
        with self._lock:
            self.refresh_catalog()
            cursor = self.con.execute(to_duckdb(sql), params or [])
            return [d[0] for d in cursor.description], cursor.fetchall()

    def sql(
        self, duck_sql: str, params: list | None = None, *, tables: dict[str, pa.Table] | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Run DuckDB SQL over the same views (the report's own summaries).

        ``tables`` are Arrow tables the query may read by name for its duration (DuckDB scans them in
        place, without copying them into Python objects).
        """
        with self._lock:
            self.refresh_catalog()
            for name, table in (tables or {}).items():
                self.con.register(name, table)
            try:
                cursor = self.con.execute(duck_sql, params or [])
                return [d[0] for d in cursor.description], cursor.fetchall()
            finally:
                for name in tables or {}:
                    self.con.unregister(name)

    def close(self) -> None:
        self.con.close()


def _athena_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
