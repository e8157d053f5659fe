"""The ground-truth check of a run on simulated data: every reading delivered exactly once (duplicates
from at-least-once delivery are counted once, by source file and item index, as reconciliation counts)
and every reading given the verdict its values call for, so every injected anomaly is found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pa_dataset

from functions.detector import schema
from functions.detector.values import parse_timestamp, run_name
from tools.localrun.run import LocalPipeline

NUMERIC = ("temperature", "humidity", "batterylevel", "latitude", "longitude")


@dataclass
class GroundTruthCheck:
    """How the delivered records compare with what the simulator wrote."""

    expected_rows: int
    delivered_records: int  # every record Firehose wrote for these runs, duplicates included
    distinct_rows: int  # distinct (runid, sourceindex, recordid): processed rows, each once
    missing: list[tuple] = field(default_factory=list)
    unexpected: list[tuple] = field(default_factory=list)
    wrong_verdicts: list[tuple] = field(default_factory=list)
    injected: int = 0
    injected_found: int = 0
    malformed: int = 0
    malformed_invalid: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.expected_rows > 0
            and not self.missing
            and not self.unexpected
            and not self.wrong_verdicts
            and self.distinct_rows == self.expected_rows
            and self.injected_found == self.injected
            and self.malformed_invalid == self.malformed
        )

    def describe(self) -> str:
        if self.ok:
            return (
                f"ground truth: all {self.expected_rows:,} readings delivered exactly once "
                f"({self.delivered_records - self.distinct_rows:,} duplicate deliveries counted once); "
                f"{self.injected_found}/{self.injected} injected anomalies found; "
                f"{self.malformed_invalid}/{self.malformed} malformed rows marked invalid"
            )
        return (
            f"ground truth MISMATCH: expected {self.expected_rows:,} readings, {self.distinct_rows:,} distinct "
            f"delivered; {len(self.missing)} missing (e.g. {self.missing[:2]}), {len(self.unexpected)} unexpected "
            f"(e.g. {self.unexpected[:2]}), {len(self.wrong_verdicts)} wrong verdicts (e.g. {self.wrong_verdicts[:2]}); "
            f"injected anomalies found {self.injected_found}/{self.injected}; "
            f"malformed marked invalid {self.malformed_invalid}/{self.malformed}"
        )


def _key(deviceid: Any, stamp: Any, values: list[Any]) -> tuple:
    return (deviceid or "", stamp or "", *(None if v is None else float(v) for v in values))


def delivered_records(pipeline: LocalPipeline, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every analysis record the given runs (execution ARNs or names) delivered, as Athena reads them."""
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    names = [run_name(run) for run in run_ids]
    placeholders = ", ".join("?" for _ in names)
    columns, rows = pipeline.athena.sql(
        f'SELECT * FROM "{table.database}"."{table.name}" WHERE runid IN ({placeholders})', names
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _instant(stamp: Any) -> Any:
    """A raw timestamp as the record keeps it: its UTC instant (readingtime) if usable, else the text."""
    parsed = parse_timestamp(stamp) if type(stamp) is str else None
    return parsed[1] if parsed is not None else stamp


TRUTH_COLUMNS = ("deviceid", "timestamp", *NUMERIC, "status", "anomalies", "malformed", "injected")


def _truth_with_instants(truth: pa.Table | Path) -> pa.Table:
    """The ground truth's columns the check reads, plus ``instant``: each timestamp as the record keeps it
    (``_instant``). Read batch by batch; only these columns are held (an Arrow table, not Python rows)."""
    source = pa_dataset.dataset(truth, format="parquet") if isinstance(truth, Path) else truth
    batches = (
        source.to_batches(columns=list(TRUTH_COLUMNS)) if isinstance(truth, Path) else source.to_batches()
    )
    out = []
    for whole in batches:
        batch = whole.select(list(TRUTH_COLUMNS))
        instants = pa.array([_instant(v) for v in batch.column("timestamp").to_pylist()], pa.string())
        out.append(pa.RecordBatch.from_arrays([*batch.columns, instants], [*TRUTH_COLUMNS, "instant"]))
    if not out:
        schema_ = source.schema
        return pa.table(
            {name: pa.array([], schema_.field(name).type) for name in TRUTH_COLUMNS}
            | {"instant": pa.array([], pa.string())}
        )
    return pa.Table.from_batches(out)


def check_ground_truth(
    pipeline: LocalPipeline, truth: pa.Table | Path, run_ids: list[str]
) -> GroundTruthCheck:
    """Compare the simulator's ground truth (a table, or its Parquet file) with what the runs delivered.

    Computed in DuckDB over the analysis table and the ground truth (an Arrow table DuckDB scans in
    place), so memory stays within the stand-in's limit whatever the number of readings; only the
    readings that do not match come back to Python. A reading is its key (device id, its instant as the
    record keeps it, the five values); each processed row (run, item index, reading) counts once, however often
    delivered.
    """
    table = pipeline.stack.tables[pipeline.stack.exports["analysisTable"]]
    names = [run_name(run) for run in run_ids]
    marks = ", ".join("?" for _ in names)
    key = ("d", "s", "t", "h", "b", "la", "lo")
    same_key = " AND ".join(f"e.{k} IS NOT DISTINCT FROM g.{k}" for k in key)
    rows = f"""
        delivered AS (
            SELECT runid, sourceindex, recordid, coalesce(deviceid, '') AS d,
                   coalesce(readingtime, readingtimestamp, '') AS s,
                   metrics.temperature AS t, metrics.humidity AS h, metrics.batterylevel AS b,
                   metrics.latitude AS la, metrics.longitude AS lo, healthstatus AS status,
                   list_sort(list_transform(coalesce(anomalies, []), lambda a: a.type)) AS types,
                   coalesce(len(invalidreasons), 0) > 0 AS invalid
            FROM "{table.database}"."{table.name}" WHERE runid IN ({marks})
        ),
        processed AS (SELECT DISTINCT ON (runid, sourceindex, recordid) * FROM delivered),
        g AS (
            SELECT {", ".join(key)}, count(*) AS n, any_value(status) AS status, any_value(types) AS types,
                   any_value(invalid) AS invalid
            FROM processed GROUP BY {", ".join(key)}
        ),
        truth_rows AS (
            SELECT coalesce(deviceid, '') AS d, coalesce(instant, '') AS s, temperature AS t,
                   humidity AS h, batterylevel AS b, latitude AS la, longitude AS lo, status,
                   list_sort(coalesce(anomalies, [])) AS types, coalesce(malformed, '') <> '' AS malformed,
                   coalesce(injected, '') <> '' AS injected, coalesce(anomalies, []) AS wanted_types
            FROM __truth
        ),
        e AS (
            SELECT {", ".join(key)}, count(*) AS n, any_value(status) AS status, any_value(types) AS types,
                   any_value(malformed) AS malformed
            FROM truth_rows GROUP BY {", ".join(key)}
        )"""
    params = names
    athena = pipeline.athena
    truth = _truth_with_instants(truth)
    expected_rows = truth.num_rows
    # The counts, every injected anomaly found (its kinds among the record's) and every malformed row
    # marked invalid.
    _c, ((records, distinct, injected, found, malformed, marked),) = athena.sql(
        f"""WITH {rows}
        SELECT (SELECT count(*) FROM delivered), (SELECT count(*) FROM processed), count_if(e.injected),
               count_if(e.injected AND g.status = '{schema.ANOMALIES_DETECTED}'
                        AND list_has_all(g.types, e.wanted_types)),
               count_if(e.malformed), count_if(e.malformed AND g.invalid)
        FROM truth_rows e LEFT JOIN g ON {same_key}""",
        params,
        tables={"__truth": truth},
    )
    check = GroundTruthCheck(
        expected_rows=expected_rows,
        delivered_records=records,
        distinct_rows=distinct,
        injected=injected,
        injected_found=found,
        malformed=malformed,
        malformed_invalid=marked,
    )
    # Readings whose count or verdict differs: the only rows that come back.
    _c, mismatched = athena.sql(
        f"""WITH {rows}
        SELECT {", ".join(f"coalesce(e.{k}, g.{k})" for k in key)}, coalesce(e.n, 0), coalesce(g.n, 0),
               e.status, e.types, e.malformed, g.status, g.types, g.invalid
        FROM e FULL OUTER JOIN g ON {same_key}
        WHERE coalesce(e.n, 0) <> coalesce(g.n, 0)
           OR (e.n IS NOT NULL AND g.n IS NOT NULL
               AND (e.status IS DISTINCT FROM g.status OR e.types <> g.types OR e.malformed <> g.invalid))""",
        params,
        tables={"__truth": truth},
    )
    for *values, expected, delivered, w_status, w_types, w_bad, g_status, g_types, g_bad in mismatched:
        reading = _key(values[0], values[1], values[2:])
        check.missing += [reading] * max(0, expected - delivered)
        check.unexpected += [reading] * max(0, delivered - expected)
        wanted = (w_status, tuple(w_types), w_bad) if expected else None
        got = (g_status, tuple(g_types), g_bad) if delivered else None
        if wanted is not None and got is not None and wanted != got:
            check.wrong_verdicts.append((reading, wanted, got))
    check.missing.sort(key=str)
    check.unexpected.sort(key=str)
    return check
