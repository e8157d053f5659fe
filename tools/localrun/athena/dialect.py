"""Athena's SQL surface in DuckDB's terms: Glue/Hive column types as DuckDB types, and the deployed
Trino SQL transpiled with sqlglot (``read="trino", write="duckdb"``), plus the Trino functions sqlglot
leaves as they are.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from tools.localrun.athena.errors import AthenaError

HIVE_SCALARS = {
    "string": "VARCHAR", "varchar": "VARCHAR", "int": "INTEGER", "integer": "INTEGER", "bigint": "BIGINT",
    "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP",
}  # fmt: skip


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


# The view of a table's rows with Athena's hidden column "$path" (catalog.GlueCatalog.refresh).
PATH_VIEW_SUFFIX = "$path"


def to_duckdb(sql: str, path_tables: frozenset[tuple[str, str]] = frozenset()) -> str:
    """Deployed Trino SQL as DuckDB SQL. A query naming the hidden column ``"$path"`` reads each table of
    ``path_tables`` (database, name) from its view with that column."""
    try:
        tree = sqlglot.parse_one(sql, read="trino")
    except sqlglot.errors.ParseError as exc:
        raise AthenaError("SYNTAX_ERROR", f"{exc} in: {sql[:300]}") from exc
    tree = tree.transform(_trino_functions)
    if any(column.name == "$path" for column in tree.find_all(exp.Column)):
        for table in tree.find_all(exp.Table):
            if (table.db, table.name) in path_tables:
                table.set("this", exp.to_identifier(table.name + PATH_VIEW_SUFFIX, quoted=True))
    return tree.sql(dialect="duckdb")


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
