"""The SQL's counting rules: invalid and anomalous are independent facts, never read from healthstatus."""

from __future__ import annotations

import pytest

from functions.detector import schema
from spec import queries

CATALOG = queries.TableNames(database="db", raw_table="raw", analysis_table="analysis", kpi_table="kpis")


def _sql_over_records() -> dict[str, str]:
    """Every query that reads analysis records (not the KPI table or the raw table)."""
    named = {name: sql for name, (_description, sql) in queries.named_queries(CATALOG).items()}
    return {
        "kpis_for_day": queries.kpis_for_day(CATALOG),
        **{name: sql for name, sql in named.items() if '"db"."analysis"' in sql},
    }


def test_there_are_queries_over_records_to_check() -> None:
    assert {"kpis_for_day", "anomalies-of-a-day", "device-health", "invalid-readings"} <= set(
        _sql_over_records()
    )


@pytest.mark.parametrize("name", sorted(_sql_over_records()))
def test_no_query_reads_validity_or_anomaly_from_healthstatus(name: str) -> None:
    # healthstatus says anomalies_detected for an invalid reading with an anomaly (humidity 150), so
    # `healthstatus <> 'invalid'` would count it valid and let 150 into the day's maximum.
    assert "healthstatus" not in _sql_over_records()[name]


def test_kpis_count_invalid_anomalous_and_valid_by_their_own_columns() -> None:
    sql = queries.kpis_for_day(CATALOG)
    assert "count_if(cardinality(invalidreasons) = 0) AS validreadings" in sql
    assert "count_if(cardinality(invalidreasons) > 0) AS invalidreadings" in sql
    assert "count_if(cardinality(anomalies) > 0) AS anomalousreadings" in sql
    for kind in schema.ANOMALY_TYPES:  # per-type counts: any anomaly of that type, valid or not
        assert f"count_if(any_match(anomalies, x -> x.type = '{kind}'))" in sql
    # Metrics over valid readings only: every FILTER is the validity test.
    filters = sql.count("FILTER (WHERE ")
    assert filters > 0, "no FILTER clauses found"
    assert sql.count("FILTER (WHERE cardinality(invalidreasons) = 0)") == filters


def test_the_anomaly_rate_is_over_every_reading_so_it_cannot_exceed_one() -> None:
    sql = queries.kpis_for_day(CATALOG)
    assert (
        "CASE WHEN readings = 0 THEN NULL ELSE CAST(anomalousreadings AS double) / readings END AS anomalyrate"
        in sql
    )
    assert "validreadings = 0 THEN NULL" not in sql
    # no_data needs no valid reading AND no anomaly: a device whose readings are all invalid but
    # anomalous is judged by its rate.
    assert "CASE WHEN validreadings = 0 AND anomalousreadings = 0 THEN 'no_data'" in sql
    comments = {name: comment for name, _type, comment in queries.KPI_COLUMNS}
    assert "anomalousreadings / readings" in comments["anomalyrate"]


def test_named_queries_select_by_invalid_reasons_and_anomaly_count() -> None:
    named = {name: sql for name, (_d, sql) in queries.named_queries(CATALOG).items()}
    assert "WHERE cardinality(anomalies) > 0 ORDER BY" in named["anomalies-of-a-day"]
    assert "WHERE cardinality(invalidreasons) > 0 ORDER BY" in named["invalid-readings"]
    assert "count_if(cardinality(anomalies) > 0) AS anomalous" in named["device-health"]
    assert "count_if(cardinality(invalidreasons) > 0) AS invalid" in named["device-health"]


@pytest.mark.parametrize(
    "columns",
    [schema.ANALYSIS_COLUMNS, queries.KPI_COLUMNS],
    ids=["analysis", "kpis"],
)
def test_column_comments_fit_glue(columns) -> None:
    # Glue Column.Comment: at most 255 characters (https://docs.aws.amazon.com/glue/latest/webapi/API_Column.html).
    too_long = [name for name, _type, comment in columns if len(comment) > 255]
    assert columns
    assert too_long == []


def test_reconciliation_counts_every_row_whether_item_indexes_run_on_or_restart_per_file():
    """The docs leave open whether Map.Item.Index counts across the manifest's files or restarts in each;
    the delivered-rows query must count the same either way, re-deliveries once, identical readings twice."""
    import duckdb

    catalog = queries.TableNames("db", "raw", "analysis", "kpis")
    sql = queries.delivered_rows(catalog).format(run_id="run-1", since="2026-11-21")
    sql = sql.replace('"db"."analysis"', "analysis")

    def count(rows: list[tuple[int, str]]) -> int:
        con = duckdb.connect()
        con.execute("CREATE TABLE analysis (runid VARCHAR, dt VARCHAR, sourceindex BIGINT, recordid VARCHAR)")
        con.executemany("INSERT INTO analysis VALUES ('run-1', '2026-11-21', ?, ?)", rows)
        return con.execute(sql).fetchone()[0]

    # two files of three rows; one reading appears in both files (a duplicate in the raw data)
    readings = [["a", "b", "dup"], ["dup", "c", "d"]]
    run_on = [(i, r) for i, r in enumerate(readings[0] + readings[1])]
    restart = [(i, r) for file in readings for i, r in enumerate(file)]
    assert count(run_on) == 6
    assert count(restart) == 6
    assert count(run_on + run_on[:2]) == 6  # re-delivered records count once
    # The one documented merge: the same reading at the same index of two files, if indexes restart.
    # Reconciliation then finds a row too few and fails loudly; it cannot pass with a row missing.
    assert count([(0, "a"), (1, "dup"), (0, "c"), (1, "dup")]) == 3
    # Negative control: the index alone undercounts when indexes restart per file.
    alone = sql.replace("SELECT DISTINCT sourceindex, recordid", "SELECT DISTINCT sourceindex")
    con = duckdb.connect()
    con.execute("CREATE TABLE analysis (runid VARCHAR, dt VARCHAR, sourceindex BIGINT, recordid VARCHAR)")
    con.executemany("INSERT INTO analysis VALUES ('run-1', '2026-11-21', ?, ?)", restart)
    assert con.execute(alone).fetchone()[0] == 3


def test_the_operators_run_query_is_the_reconciliation_query():
    """One builder: the named query counts a run's rows exactly as reconciliation does."""
    _description, sql = queries.named_queries(CATALOG)["analysis-records-of-a-run"]
    assert sql.count("?") == 2
    assert sql.replace("?", "'x'", 1).replace("?", "'y'") == queries.delivered_rows(CATALOG).format(
        run_id="x", since="y"
    )
