"""Size budgets on a fixed, realistic sample: Firehose bytes per reading, map item bytes, children.

Firehose's per-stream bytes quota bounds the pipeline and every record byte is sent once per reading;
every item byte counts against a child's 256 KiB input. The sample is the benchmark's (seeded: the same
2,000 readings every time, ~2% anomalous, ~0.5% invalid, distinct millisecond timestamps), each row
given to the stage's real ItemSelector, evaluated with JSONata as Step Functions evaluates it, with
prod's bucket, a UUID execution name and Athena-style UNLOAD file names. The records are the
detector's own lines for those items. A negative control shows the budgets catch the earlier shapes.
"""

from __future__ import annotations

import json
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from benchmarks.bench_detector import make_row
from functions.detector import schema
from functions.detector.config import DetectorConfig
from functions.detector.handler import analyse_event
from spec import definition, naming
from spec.naming import Account, Names
from tools import stackfile
from tools.localrun.expressions import Template
from tools.tune.packing import batch_sizes, json_size

RECORD_BUDGET = 450  # bytes per analysis record, newline included, on average
ITEM_BUDGET = 220  # bytes per map item (compact JSON, as the ItemBatcher counts), on average
CHILDREN_PER_MILLION_BUDGET = 720

STAGE = "prod"
RUN_DATE = "2024-06-01"
EXECUTION_NAME = str(uuid.UUID(int=0x6F1C9A0E3B7D4E2A9C510D8E7F2A4B63))
ROWS = 2_000


REGION = "eu-west-1"


def _names() -> Names:
    return Names(stage=STAGE, account=Account("aws", REGION, "111111111111"))


def _sample() -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """(the rows, the S3 URI each came from, the execution context) of the fixed sample."""
    rnd = random.Random(7)
    start = datetime(2024, 6, 1, tzinfo=UTC)
    rows = [
        make_row(
            rnd, i % 2_000, start + timedelta(seconds=43.2 * i, milliseconds=rnd.randint(0, 999)), csv=False
        )
        for i in range(ROWS)
    ]
    folder = f"s3://{_names().bucket('unload')}/{naming.UNLOAD_PREFIX}{RUN_DATE}/{EXECUTION_NAME}/"
    files = [f"{folder}20240602_023007_0004{n}_x7k2p_{uuid.UUID(int=n + 1)}" for n in range(3)]
    sources = [files[i * len(files) // ROWS] for i in range(ROWS)]
    context = {"Execution": {"Id": f"arn:...:{EXECUTION_NAME}", "Name": EXECUTION_NAME}}
    return rows, sources, context


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    rows, sources, context = _sample()
    d = definition.build_definition(_params())
    selector = Template(definition.map_state(d)["ItemSelector"], "ItemSelector")
    batch_input = Template(definition.map_state(d)["ItemBatcher"]["BatchInput"], "BatchInput")
    items = []
    for index, (row, source) in enumerate(zip(rows, sources, strict=True)):
        ctx = dict(context, Map={"Item": {"Value": row, "Source": source, "Index": index}})
        item = selector.evaluate({"states": {"input": {}, "context": ctx}}, fast=False)
        items.append(json.loads(json.dumps(item)))  # the child's input is JSON
    batch = batch_input.evaluate(
        {"states": {"input": {}, "context": context}, "runDate": RUN_DATE}, fast=False
    )
    lines = analyse_event(
        {"Items": items, "BatchInput": batch},
        config=DetectorConfig(),
        now=datetime(2024, 6, 2, 2, 31, tzinfo=UTC),
    ).lines
    return {"items": items, "batch_input": batch, "lines": lines, "rows": rows, "sources": sources}


def _params() -> definition.DefinitionParams:
    from components.catalog import catalog_names
    from components.workflow import RunSettings, definition_params

    settings = stackfile.load(STAGE).settings
    names = _names()
    return definition_params(
        RunSettings.of(settings),
        partition="aws",
        catalog=catalog_names(names),
        function_arn=f"arn:aws:lambda:{REGION}:111111111111:function:{names.resource('detector')}",
        workgroup=names.resource("analytics"),
        unload_bucket=names.bucket("unload"),
        analytics_bucket=names.bucket("analytics"),
    )


def children_per_million(item_sizes: list[int], batch_input_bytes: int) -> int:
    """Child executions the stage's ItemBatcher starts for a million items of these sizes (cycled)."""
    settings = stackfile.load(STAGE).settings
    million = (item_sizes[i % len(item_sizes)] for i in range(1_000_000))
    return len(
        batch_sizes(
            million,
            max_items=settings.max_items_per_batch,
            max_bytes=settings.max_input_bytes_per_batch,
            batch_input_bytes=batch_input_bytes,
        )
    )


def test_the_sample_is_realistic(measured: dict[str, Any]) -> None:
    lines = measured["lines"]
    assert len(lines) == ROWS == len(measured["items"])
    statuses = {schema.HEALTHY: 0, schema.ANOMALIES_DETECTED: 0, schema.INVALID: 0}
    for line in lines:
        statuses[json.loads(line)["healthstatus"]] += 1
    assert statuses[schema.ANOMALIES_DETECTED] >= ROWS // 100  # anomalies and invalid readings are in it
    assert statuses[schema.HEALTHY] >= ROWS * 9 // 10
    assert all(set(item) == set(schema.ITEM_KEYS) for item in measured["items"])


def test_an_analysis_record_is_at_most_450_bytes_on_average(measured: dict[str, Any]) -> None:
    sizes = [len(line) + 1 for line in measured["lines"]]
    assert sizes
    assert statistics.mean(sizes) <= RECORD_BUDGET, statistics.mean(sizes)


def test_a_map_item_is_at_most_220_bytes_on_average(measured: dict[str, Any]) -> None:
    sizes = [json_size(item) for item in measured["items"]]
    assert sizes
    assert statistics.mean(sizes) <= ITEM_BUDGET, statistics.mean(sizes)


def test_a_million_readings_start_at_most_720_children(measured: dict[str, Any]) -> None:
    sizes = [json_size(item) for item in measured["items"]]
    children = children_per_million(sizes, json_size(measured["batch_input"]))
    assert children <= CHILDREN_PER_MILLION_BUDGET, children


def test_the_budgets_catch_the_earlier_shapes(measured: dict[str, Any]) -> None:
    """Negative control: the keyed item with the full URI, and a record with the execution ARN, the
    64-character id and the ISO processing time, break the budgets this file checks."""
    import json

    old_items = [
        {"row": row, "source": source, "index": i}
        for i, (row, source) in enumerate(zip(measured["rows"], measured["sources"], strict=True))
    ]
    assert statistics.mean(json_size(i) for i in old_items) > ITEM_BUDGET
    old_arn = f"arn:aws:states:eu-west-1:111111111111:execution:sensorflow-prod-pipeline:{EXECUTION_NAME}"
    old_batch = json_size({"executionId": old_arn, "runDate": RUN_DATE})
    assert children_per_million([json_size(i) for i in old_items], old_batch) > CHILDREN_PER_MILLION_BUDGET
    records = [json.loads(line) for line in measured["lines"]]
    widened = [
        dict(r, recordid="9" * 64, runid=old_arn, processedatms="2024-06-02T02:31:00.000Z", readingscount=1)
        for r in records
    ]
    assert statistics.mean(json_size(r) + 1 for r in widened) > RECORD_BUDGET
