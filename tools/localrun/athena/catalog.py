"""The stage's Glue tables as DuckDB views over the object store, the way Athena's catalog sees them.

* Tables come from the rendered Glue tables (``stack.TableSpec``): the raw CSV table (read as
  LazySimpleSerDe does: ``serde.py``), the analysis table (newline-delimited JSON, gzip by file
  extension; as the Hive JSON SerDe reads it, an unknown key is skipped and an absent one is NULL:
  trino-hive-formats line/json/JsonDeserializer.java) and the KPI table (Parquet).
* Partition projection is emulated by listing the folders the ``storage.location.template`` names and
  giving each its literal ``dt``; a filter on ``dt`` therefore prunes whole folders, as projection does.

Docs: docs.aws.amazon.com/athena/latest/ug/partition-projection.html.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from tools.localrun.athena.dialect import PATH_VIEW_SUFFIX, hive_to_duckdb, sql_literal
from tools.localrun.athena.errors import AthenaError
from tools.localrun.athena.serde import TextFileRead, java_double_sql, needs_text_reader, read_text_file
from tools.localrun.stack import LocalStack, TableSpec
from tools.localrun.store import ObjectStore, split_uri


class GlueCatalog:
    """Every table of the stage as a view on ``con``, over the partitions that exist when refreshed."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        stack: LocalStack,
        store: ObjectStore,
        *,
        cache_json: bool = True,
    ):
        self.con = con
        self.stack = stack
        self.store = store
        self.cache_json = cache_json
        self._json_cache: dict[str, dict[str, tuple[int, tuple[int, int]]]] = {}  # path: (id, ident)
        self._text_cache: dict[str, tuple[tuple[int, int], str | None]] = {}  # path: (ident, table or None)
        self.repairs: dict[str, TextFileRead] = {}  # s3 URI: what read_text_file repaired in that object
        self._next_file_id = 0

    def refresh(self) -> None:
        """(Re)define every table as a view over the partitions that exist now.

        A CSV table has Athena's hidden column ``"$path"`` (the S3 URI of each row's object), which
        ``SELECT *`` leaves out: its rows with the column are the view ``<table>$path``, which
        ``dialect.to_duckdb`` reads instead of the table in a query that names ``"$path"``.
        """
        for table in self.stack.tables.values():
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.database}"')
            view = f'"{table.database}"."{table.name}"'
            if table.classification == "csv":
                with_path = f'"{table.database}"."{table.name}{PATH_VIEW_SUFFIX}"'
                self.con.execute(f"CREATE OR REPLACE VIEW {with_path} AS {self._table_sql(table)}")
                self.con.execute(
                    f'CREATE OR REPLACE VIEW {view} AS SELECT * EXCLUDE ("$path") FROM {with_path}'
                )
            else:
                self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {self._table_sql(table)}")

    @property
    def path_tables(self) -> frozenset[tuple[str, str]]:
        """(database, table) of every table with a ``"$path"`` column (``refresh``)."""
        return frozenset(
            (t.database, t.name) for t in self.stack.tables.values() if t.classification == "csv"
        )

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
        spec = "{" + ", ".join(f"{sql_literal(n)}: {sql_literal(t)}" for n, t in cols) + "}"
        names = ", ".join(f'"{n}"' for n, _ in cols)
        parsed = ", ".join(f'j."{n}"' for n, _ in cols)
        for dt, paths in fresh.items():
            first = self._next_file_id
            self._next_file_id += len(paths)
            self.con.execute(
                f"INSERT INTO {files} SELECT unnest(?::INTEGER[]), unnest(?::VARCHAR[])",
                [list(range(first, first + len(paths))), paths],
            )
            file_list = "[" + ", ".join(sql_literal(f) for f in paths) + "]"
            self.con.execute(
                f"INSERT INTO {cache} SELECT {parsed}, {sql_literal(dt)}, "
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
                quoted = ", ".join(chr(34) + n + chr(34) for n in names)
                sources.append(f"SELECT {quoted}, {sql_literal(path)} AS filename FROM {cached}")
        if plain:
            spec = "{" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
            sources.insert(
                0,
                f"SELECT * FROM read_csv([{', '.join(sql_literal(f) for f in plain)}], "
                f"header={'true' if table.skip_header_lines else 'false'}, "
                f"columns={spec}, delim={sql_literal(table.field_delimiter)}, quote='', escape='', "
                "nullstr='\\N', null_padding=true, strict_mode=false, auto_detect=false, filename=true)",
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
            file_list = "[" + ", ".join(sql_literal(f) for f in files) + "]"
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
                # Athena's hidden column "$path": the S3 URI of the object a row came from
                # (athena/latest/ug/select.html, "Getting the file locations for source data in Amazon
                # S3"). Only the raw CSV table is queried for it; a query asking another table for it
                # fails here, as it would not on Athena (stricter, never looser).
                folder = str(self.store.path(*split_uri(uri)))
                select += f', {sql_literal(uri)} || substr(filename, {len(folder) + 2}) AS "$path"'
            elif table.classification == "json":
                spec = "{" + ", ".join(f"{sql_literal(n)}: {sql_literal(t)}" for n, t in cols) + "}"
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
            parts.append(f"SELECT {select}, {sql_literal(dt)} AS dt FROM {source}")
        if not parts:
            nulls = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in cols)
            if table.classification == "csv":
                nulls += ', CAST(NULL AS VARCHAR) AS "$path"'
            return f"SELECT {nulls}, CAST(NULL AS VARCHAR) AS dt WHERE false"
        return " UNION ALL ".join(parts)
