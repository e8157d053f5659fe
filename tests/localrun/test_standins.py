"""The Athena and Firehose stand-ins behave like the services where the pipeline depends on it."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from spec import queries
from tools.localrun import stack
from tools.localrun.athena import AthenaError, AthenaStandIn
from tools.localrun.athena.dialect import hive_to_duckdb
from tools.localrun.firehose import (
    FirehoseDelivery,
    FirehoseError,
    FirehoseStandIn,
    StoredGzip,
    expand_prefix,
)
from tools.localrun.store import ObjectStore

RAW = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude\n"


def test_hive_types() -> None:
    assert hive_to_duckdb("struct<type:string,value:double>") == 'STRUCT("type" VARCHAR, "value" DOUBLE)'
    assert hive_to_duckdb("array<struct<a:int>>") == 'STRUCT("a" INTEGER)[]'
    with pytest.raises(AthenaError, match="map<string,int>"):
        hive_to_duckdb("map<string,int>")


@pytest.fixture
def athena(tmp_path: Path) -> AthenaStandIn:
    local = stack.rendered("dev")
    store = ObjectStore(tmp_path)
    body = (
        RAW
        + "d1,2025-06-01T00:00:00Z, 21.5 ,40,80,1,2\nd2,2025-06-01T00:05:00Z,n/a,,80\nd3,2025-06-01T00:10:00Z,1,2,3,4,5,extra\n"
    )
    store.put(local.exports["rawBucket"], "daily-data/2025-06-01/a.csv", body.encode())
    store.put(
        local.exports["rawBucket"],
        "daily-data/2025-06-02/a.csv",
        (RAW + "d9,2025-06-02T00:00:00Z,1,1,1,1,1\n").encode(),
    )
    stand_in = AthenaStandIn(local, store)
    yield stand_in
    stand_in.close()


def test_raw_table_reads_like_lazysimpleserde(athena: AthenaStandIn) -> None:
    columns, rows = athena.query(
        'SELECT * FROM "sensorflow_dev_db"."raw_readings" WHERE dt = ? ORDER BY deviceid', ["2025-06-01"]
    )
    assert columns[-1] == "dt"
    assert rows == [
        ("d1", "2025-06-01T00:00:00Z", 21.5, 40.0, 80.0, 1.0, 2.0, "2025-06-01"),
        (
            "d2",
            "2025-06-01T00:05:00Z",
            None,
            None,
            80.0,
            None,
            None,
            "2025-06-01",
        ),  # unparseable/missing: NULL
        ("d3", "2025-06-01T00:10:00Z", 1.0, 2.0, 3.0, 4.0, 5.0, "2025-06-01"),  # extra field ignored
    ]


def test_the_raw_table_has_athenas_hidden_path_column(athena: AthenaStandIn) -> None:
    # "$path" names each row's S3 object (athena/latest/ug/select.html); SELECT * leaves it out.
    raw = '"sensorflow_dev_db"."raw_readings"'
    columns, _rows = athena.query(f"SELECT * FROM {raw} WHERE dt = ?", ["2025-06-01"])
    assert "$path" not in columns
    catalog = queries.TableNames("sensorflow_dev_db", "raw_readings", "analysis_records", "device_kpis")
    _description, sql = queries.named_queries(catalog)["raw-files-of-a-device"]
    columns, rows = athena.query(sql, ["2025-06-01", "d2"])
    assert columns == ["rawfile", "readings"]
    assert rows == [("s3://sensorflow-dev-raw-222222222222-eu-west-1/daily-data/2025-06-01/a.csv", 1)]
    assert athena.query(sql, ["2025-06-02", "d2"])[1] == []  # another day's folder holds no d2
    with pytest.raises(duckdb.BinderException):  # only the raw CSV table has it here: stricter
        athena.query('SELECT "$path" FROM "sensorflow_dev_db"."analysis_records"')


def test_unload_writes_files_and_manifest_and_never_overwrites(athena: AthenaStandIn) -> None:
    sql = (
        'UNLOAD (SELECT deviceid FROM "sensorflow_dev_db"."raw_readings" WHERE dt = \'2025-06-01\') '
        "TO 's3://sensorflow-dev-unload-222222222222-eu-west-1/unload/x/' WITH (format = 'PARQUET', compression = 'SNAPPY')"
    )
    result = athena.start_query_execution(sql, WorkGroup="sensorflow-dev-analytics")["QueryExecution"]
    manifest = result["Statistics"]["DataManifestLocation"]
    assert (
        manifest
        == f"s3://sensorflow-dev-athena-222222222222-eu-west-1/results/{result['QueryExecutionId']}-manifest.csv"
    )
    lines = athena.store.get(*manifest[5:].split("/", 1)).decode().splitlines()
    assert lines
    assert all(
        line.startswith("s3://sensorflow-dev-unload-222222222222-eu-west-1/unload/x/") for line in lines
    )
    with pytest.raises(AthenaError, match="HIVE_PATH_ALREADY_EXISTS"):
        athena.start_query_execution(sql, WorkGroup="sensorflow-dev-analytics")
    with pytest.raises(AthenaError, match="WorkGroup 'primary'"):
        athena.start_query_execution(sql, WorkGroup="primary")


def test_select_results_page_like_athena(athena: AthenaStandIn) -> None:
    qid = athena.start_query_execution(
        'SELECT count(*) AS n FROM "sensorflow_dev_db"."raw_readings" WHERE dt = \'2025-06-01\'',
        WorkGroup="sensorflow-dev-analytics",
    )["QueryExecution"]["QueryExecutionId"]
    rows = athena.get_query_results(QueryExecutionId=qid, MaxResults=2)["ResultSet"]["Rows"]
    assert rows == [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "3"}]}]


def test_prefix_expansion() -> None:
    when = datetime(2025, 6, 2, 2, 30, 5, tzinfo=UTC)
    assert expand_prefix("analysis/dt=!{timestamp:yyyy-MM-dd}/", when) == "analysis/dt=2025-06-02/"
    assert (
        expand_prefix("errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", when)
        == "errors/processing-failed/2025/06/02/02/"
    )
    assert expand_prefix("", when) == "2025/06/02/02/"
    with pytest.raises(FirehoseError, match="partitionKeyFromQuery"):
        expand_prefix("!{partitionKeyFromQuery:x}/", when)


def _stored_gzip(chunks: list[bytes]) -> bytes:
    out = io.BytesIO()
    member = StoredGzip(out)
    for chunk in chunks:
        member.write(chunk)
    member.close()
    return out.getvalue()


@pytest.mark.parametrize("sizes", [[], [0], [1], [65_535], [65_536], [65_534, 3], [200_000, 1, 131_070]])
def test_stored_gzip_is_a_gzip_member_every_reader_reads(sizes: list[int]) -> None:
    chunks = [os.urandom(n) for n in sizes]
    data = _stored_gzip(chunks)
    assert gzip.decompress(data) == b"".join(chunks)
    assert zlib.decompress(data, 31) == b"".join(chunks)  # zlib checks the CRC and the size too


def test_duckdb_reads_a_stored_gzip_object(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"  # the analysis table reads gzip by the extension, as Athena does
    path.write_bytes(_stored_gzip([b"".join(b"%d\n" % n for n in range(100_000))]))
    rows = duckdb.sql(
        f"SELECT count(*), sum(n) FROM read_csv('{path}', columns={{'n': 'BIGINT'}}, header=false, compression='auto')"
    ).fetchall()
    assert rows == [(100_000, sum(range(100_000)))]


def test_firehose_buffers_then_delivers_and_can_lose(tmp_path: Path) -> None:
    arrival = datetime(2025, 6, 2, 2, 30, tzinfo=UTC)
    client = FirehoseStandIn("s", tmp_path / "staging", "GZIP", 1 << 20, arrival)
    store = ObjectStore(tmp_path / "buckets")
    delivery = FirehoseDelivery(
        "s", store, "b", "analysis/dt=!{timestamp:yyyy-MM-dd}/", "GZIP", 60, tmp_path / "staging"
    )
    assert (
        client.put_record_batch(DeliveryStreamName="s", Records=[{"Data": b"a\n"}, {"Data": b"b\n"}])[
            "FailedPutCount"
        ]
        == 0
    )
    client.lose = True
    client.put_record_batch(DeliveryStreamName="s", Records=[{"Data": b"lost\n"}])
    client.flush()
    assert delivery.deliver_due(arrival.replace(second=59)) == 0  # still buffering
    assert delivery.deliver_due(arrival.replace(minute=31)) == 1
    [(key, _size)] = store.list("b", "analysis/")
    assert key.startswith("analysis/dt=2025-06-02/s-1-2025-06-02-02-30-00-")
    assert key.endswith(".gz")
    assert gzip.decompress(store.get("b", key)) == b"a\nb\n"
    assert (client.stats.calls, client.stats.records, client.stats.lost_records) == (2, 3, 1)
    assert client.stats.billed_bytes == 3 * 5120
    with pytest.raises(FirehoseError, match="ResourceNotFoundException"):
        client.put_record_batch(DeliveryStreamName="other", Records=[{"Data": b"x"}])
    with pytest.raises(FirehoseError, match="501 records"):
        client.put_record_batch(DeliveryStreamName="s", Records=[{"Data": b"x"}] * 501)
