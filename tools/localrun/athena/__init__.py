"""The Athena stand-in: DuckDB reading the stage's Glue tables from the object store.

* ``standin.py``: the Athena calls the definition makes (``StartQueryExecution`` run to completion,
  ``GetQueryResults``) and the report's queries, on one DuckDB connection.
* ``catalog.py``: the Glue tables as views, with partition projection emulated.
* ``serde.py``: the raw text table read as LazySimpleSerDe reads it (Java's double grammar, blank lines,
  invalid UTF-8, Athena's row limit).
* ``dialect.py``: Glue types as DuckDB types, and the deployed Trino SQL transpiled to DuckDB.
* ``unload.py``: ``UNLOAD ... TO ... WITH (...)``, Athena-only syntax.

Docs: docs.aws.amazon.com/athena/latest/ug/unload.html, querying-finding-output-files.html,
partition-projection.html, and the Step Functions Athena integration (connect-athena.html).
"""

from tools.localrun.athena.errors import AthenaError
from tools.localrun.athena.standin import AthenaStandIn

__all__ = ["AthenaError", "AthenaStandIn"]
