"""The Athena stand-in: DuckDB behind the Athena calls the definition makes, over the stage's Glue tables.

* The tables are the catalog's views (``catalog.py``); SQL is the deployed Trino text transpiled with
  sqlglot (``dialect.py``).
* ``UNLOAD (<select>) TO '<s3 uri>' WITH (...)`` writes its data files (``unload.py``) and
  ``<query id>-manifest.csv`` (one ``s3://`` URI per line, no header) goes to the workgroup's result
  location; the result carries ``Statistics.DataManifestLocation``. A SELECT writes ``<query id>.csv``
  (with header) there and ``get_query_results`` pages it as Athena's ``ResultSet`` (every value a
  ``VarCharValue`` string).

Docs: docs.aws.amazon.com/athena/latest/ug/unload.html, querying-finding-output-files.html, and the Step
Functions Athena integration (connect-athena.html).
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

from tools.localrun.athena import unload
from tools.localrun.athena.catalog import GlueCatalog
from tools.localrun.athena.dialect import to_duckdb
from tools.localrun.athena.errors import AthenaError
from tools.localrun.athena.serde import hex_double
from tools.localrun.stack import LocalStack
from tools.localrun.store import ObjectStore, split_uri


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
        rows_per_file: int = unload.ROWS_PER_UNLOAD_FILE,
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
        self.con.create_function("__java_hex_double", hex_double, ["VARCHAR"], "DOUBLE", side_effects=False)
        self.queries: dict[str, QueryRecord] = {}
        self.catalog = GlueCatalog(self.con, stack, store, cache_json=cache_json)
        self._lock = threading.Lock()

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
        self.catalog.refresh()
        results_bucket, results_key = split_uri(self.stack.results_location)
        unload_match = unload.UNLOAD_RE.match(sql)
        statistics: dict[str, Any] = {}
        try:
            if unload_match:
                record = self._unload(query_id, unload_match, results_bucket, results_key)
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
        options = unload.parse_options(m.group("with"))
        target = unload.empty_target(self.store, m.group("to"))
        table = self.con.sql(to_duckdb(m.group("select"), self.catalog.path_tables)).to_arrow_table()
        files = unload.write_files(
            self.con,
            self.store,
            table,
            target=target,
            query_id=query_id,
            options=options,
            rows_per_file=self.rows_per_file,
        )
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
        cursor = self.con.execute(to_duckdb(sql, self.catalog.path_tables), params or [])
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
            self.catalog.refresh()
            cursor = self.con.execute(to_duckdb(sql, self.catalog.path_tables), params or [])
            return [d[0] for d in cursor.description], cursor.fetchall()

    def sql(
        self, duck_sql: str, params: list | None = None, *, tables: dict[str, pa.Table] | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Run DuckDB SQL over the same views (the report's own summaries).

        ``tables`` are Arrow tables the query may read by name for its duration (DuckDB scans them in
        place, without copying them into Python objects).
        """
        with self._lock:
            self.catalog.refresh()
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
