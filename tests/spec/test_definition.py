"""The rendered definition: asl-validator, our own checks, and every JSONata expression evaluated."""

from __future__ import annotations

import json
from typing import Any

import jsonata
import pytest

from components.workflow import RunSettings, definition_params
from functions.detector import schema
from spec import definition, detect_retry, queries, settings
from spec.naming import Account, Names
from tools import aslcheck, harness

EXECUTION_ARN = "arn:aws:states:eu-west-1:222222222222:execution:sensorflow-dev-pipeline:nightly-2026-11-21"
CONTEXT = {
    "Execution": {
        "Id": EXECUTION_ARN,
        "Name": "nightly-2026-11-21",
        "StartTime": "2026-11-21T02:30:00.123Z",
        "Input": {},
    },
    "StateMachine": {"Id": "arn:aws:states:eu-west-1:222222222222:stateMachine:sensorflow-dev-pipeline"},
    "State": {"Name": "WriteKpis", "EnteredTime": "2026-11-21T02:41:07.456Z", "RetryCount": 0},
}
MANIFEST = "s3://sensorflow-dev-athena-222222222222-eu-west-1/results/4f2c8a1e-1111-2222-3333-444455556666-manifest.csv"
# What the optimised integrations return, trimmed to the fields the definition reads (API references:
# Athena GetQueryExecution / GetQueryResults, Step Functions DescribeMapRun, S3 ListObjectsV2).
RESULTS: dict[str, Any] = {
    "ExportDay": {
        "QueryExecution": {
            "QueryExecutionId": "4f2c8a1e-1111-2222-3333-444455556666",
            "Status": {"State": "SUCCEEDED"},
            "Statistics": {"DataManifestLocation": MANIFEST, "DataScannedInBytes": 123456},
            "ResultConfiguration": {
                "OutputLocation": MANIFEST.replace("-manifest.csv", ""),
            },
        }
    },
    "ListExported": {"KeyCount": 1, "MaxKeys": 1, "Contents": [{"Key": "unload/2026-11-20/x/part-0"}]},
    definition.MAP_STATE: {
        "MapRunArn": "arn:aws:states:eu-west-1:222222222222:mapRun:sensorflow-dev-pipeline/detect:8b1c-42",
        "ResultWriterDetails": {"Bucket": "b", "Key": "map-results/x/manifest.json"},
    },
    "ReadMapRunCounts": {
        "ItemCounts": {
            "Total": 1000,
            "Succeeded": 998,
            "Failed": 1,
            "TimedOut": 0,
            "Aborted": 1,
            "Pending": 0,
        }
    },
    "CountDelivered": {
        "QueryExecution": {"QueryExecutionId": "count-query-1", "Status": {"State": "SUCCEEDED"}}
    },
    "ReadDeliveredCount": {
        "ResultSet": {
            "Rows": [{"Data": [{"VarCharValue": "delivered"}]}, {"Data": [{"VarCharValue": "998"}]}]
        }
    },
    "ListOldKpis": {
        "KeyCount": 2,
        "Contents": [{"Key": "kpis/dt=2026-11-20/a"}, {"Key": "kpis/dt=2026-11-20/b"}],
    },
    definition.DETECT_TASK: {"Payload": {"rowsIn": 3}, "StatusCode": 200},
}
VARIABLES = {
    "runDate": "2026-11-20",
    "runName": "nightly-2026-11-21",
    "attempt": 1,
    "manifestBucket": "sensorflow-dev-athena-222222222222-eu-west-1",
    "manifestKey": "results/4f2c8a1e-1111-2222-3333-444455556666-manifest.csv",
    "exportedFiles": 1,
    "mapRunArn": RESULTS[definition.MAP_STATE]["MapRunArn"],
    "expected": 1000,
    "failedItems": 2,
    "countQueryId": "count-query-1",
    "found": 998,
    "oldKpis": [{"Key": "kpis/dt=2026-11-20/a"}],
}
ITEM = {
    "Value": {"deviceid": "device-001", "timestamp": "2026-11-20 10:00:00", "temperature": 21.5},
    "Source": "s3://sensorflow-dev-unload-222222222222-eu-west-1/unload/2026-11-20/x/20261121_000_part-0.parquet",
    "Index": 7,
}


def stage_definition(stage: str, **overrides: Any) -> dict[str, Any]:
    """The definition for a stage, built exactly as the workflow component builds it."""
    config = harness.stack_config(stage, overrides)
    s = settings.load(config, stack=stage)
    names = Names(stage=stage, account=Account("aws", "eu-west-1", harness.account_of(config)))
    from components.catalog import catalog_names

    params = definition_params(
        RunSettings.of(s),
        partition="aws",
        catalog=catalog_names(names),
        function_arn=f"arn:aws:lambda:eu-west-1:222222222222:function:{names.resource('detector')}",
        workgroup=names.resource("analytics"),
        unload_bucket=names.bucket("unload"),
        analytics_bucket=names.bucket("analytics"),
    )
    return definition.build_definition(params)


def evaluate(source: str, *, state: str, path: str) -> Any:
    """Evaluate one expression the way Step Functions would at that state."""
    states_var: dict[str, Any] = {"input": {"runDate": "2026-11-20"}, "context": dict(CONTEXT)}
    if state in RESULTS and (".Assign." in path or ".Output" in path):
        states_var["result"] = RESULTS[state]
    if ".ItemSelector." in path:
        states_var["context"]["Map"] = {"Item": ITEM}
    if state.endswith("Failed") or ".Catch" in path:
        states_var["errorOutput"] = {"Error": "States.TaskFailed", "Cause": "boom"}
        states_var["input"] = states_var["errorOutput"]
    if state == definition.DETECT_TASK:
        states_var["input"] = {"Items": [{"r": list(ITEM["Value"].values()), "i": 7}]}
    expression = jsonata.Jsonata(source)
    frame = expression.create_frame()
    frame.bind("states", states_var)
    for name, value in VARIABLES.items():
        frame.bind(name, value)
    return expression.evaluate(None, frame)


def state_of(path: str) -> str:
    """The innermost state name in a path like $.States.X.ItemProcessor.States.Y.Arguments."""
    parts = path.split(".")
    return [parts[i + 1] for i, part in enumerate(parts[:-1]) if part == "States"][-1]


FORMATS = ("PARQUET", "JSONL", "CSV")


@pytest.mark.parametrize("stage", ["dev", "prod"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_definition_passes_asl_validator(stage, fmt):
    assert aslcheck.asl_validator(stage_definition(stage, unloadFormat=fmt)) == []


def test_asl_validator_catches_a_broken_definition():
    broken = stage_definition("dev")
    broken["States"]["PrepareRun"]["Next"] = "NoSuchState"
    assert aslcheck.asl_validator(broken)


def test_rendered_stack_definition_is_the_one_the_builder_makes(runs):
    rendered = json.loads(runs["dev"].one("aws:sfn/stateMachine:StateMachine").inputs["definition"])
    assert rendered == stage_definition("dev")


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_jsonpath_field_in_the_jsonata_machine(fmt):
    d = stage_definition("prod", unloadFormat=fmt)
    assert d["QueryLanguage"] == "JSONata"
    assert aslcheck.jsonpath_fields(d) == []


def test_jsonpath_check_catches_parameters():
    d = stage_definition("dev")
    d["States"]["ExportDay"]["Parameters"] = {"QueryString.$": "$.sql"}
    assert len(aslcheck.jsonpath_fields(d)) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_config_follows_the_unload_format(fmt):
    d = stage_definition("dev", unloadFormat=fmt)
    # the UNLOAD's columns in its order: the raw columns, then the names of the texts it cut
    headers = [name for name, _ in queries.UNLOAD_COLUMNS]
    assert headers[: len(queries.RAW_COLUMNS)] == [name for name, _ in queries.RAW_COLUMNS]
    assert aslcheck.reader_config_problems(d, csv_headers=headers) == []
    config = definition.map_state(d)["ItemReader"]["ReaderConfig"]
    assert config["InputType"] == fmt
    assert ("CSVHeaders" in config) == (fmt == "CSV")


def test_reader_config_check_catches_a_wrong_manifest_type():
    d = stage_definition("dev")
    definition.map_state(d)["ItemReader"]["ReaderConfig"]["ManifestType"] = "CSV"
    assert aslcheck.reader_config_problems(d)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_jsonata_expression_evaluates(fmt):
    d = stage_definition("prod", unloadFormat=fmt)
    found = aslcheck.expressions(d)
    assert len(found) > 25
    for path, source in found:
        value = evaluate(source, state=state_of(path), path=path)
        assert value is not None, f"{path}: {source} evaluated to nothing"


def test_export_day_runs_the_days_unload_into_a_folder_of_its_own():
    d = stage_definition("dev")
    sql = evaluate(
        aslcheck.expressions(d["States"]["ExportDay"]["Arguments"])[0][1],
        state="ExportDay",
        path="$.Arguments",
    )
    assert sql.startswith(
        'UNLOAD (SELECT substr(CAST("deviceid" AS varchar), 1, 128) AS "deviceid", '
        'substr(CAST("timestamp" AS varchar), 1, 64) AS "timestamp", '
        "temperature, humidity, batterylevel, latitude, longitude, "
        "nullif(concat_ws(',', CASE WHEN length(CAST(\"deviceid\" AS varchar)) > 128 THEN 'deviceid' END, "
    )
    assert 'FROM "sensorflow_dev_db"."raw_readings" WHERE dt = \'2026-11-20\')' in sql
    assert (
        "TO 's3://sensorflow-dev-unload-222222222222-eu-west-1/unload/2026-11-20/nightly-2026-11-21/'" in sql
    )
    assert sql.endswith("WITH (format = 'PARQUET', compression = 'SNAPPY')")
    assert "partitioned_by" not in sql.lower()


def test_manifest_bucket_and_key_come_from_the_athena_result():
    assign = stage_definition("dev")["States"]["ExportDay"]["Assign"]
    bucket = evaluate(assign["manifestBucket"][3:-3], state="ExportDay", path="$.Assign.manifestBucket")
    key = evaluate(assign["manifestKey"][3:-3], state="ExportDay", path="$.Assign.manifestKey")
    assert f"s3://{bucket}/{key}" == MANIFEST


def test_run_date_defaults_to_yesterday_and_rejects_anything_but_a_calendar_day():
    d = stage_definition("dev")
    run_date = d["States"]["PrepareRun"]["Assign"]["runDate"][3:-3]
    states_var = {"input": {}, "context": CONTEXT}
    expression = jsonata.Jsonata(run_date)
    frame = expression.create_frame()
    frame.bind("states", states_var)
    assert expression.evaluate(None, frame) == "2026-11-20"
    condition = jsonata.Jsonata(d["States"]["CheckRunDate"]["Choices"][0]["Condition"][3:-3])
    for value, ok in (
        ("2026-11-20", True),
        ("2024-02-29", True),
        ("2000-02-29", True),
        ("2026-11-20' OR 1=1 --", False),
        (20261120, False),
        (None, False),
        ("20-11-2026", False),
        ("2026-02-30", False),
        ("2026-13-45", False),
        ("2026-04-31", False),
        ("2025-02-29", False),
        ("1900-02-29", False),
        ("2026-00-10", False),
        ("2026-11-20\n", False),
        ("2026-1a-01", False),
    ):
        frame = condition.create_frame()
        frame.bind("runDate", value)
        assert condition.evaluate(None, frame) is ok, value


@pytest.mark.parametrize(
    ("value", "expected_row"),
    [
        (ITEM["Value"], ["device-001", "2026-11-20 10:00:00", 21.5, None, None, None, None, None]),
        (
            {"deviceid": "d", "timestamp": "t", "temperature": 1.5, "humidity": None, "batterylevel": 80,
             "latitude": 47.1, "longitude": 8.5, "extra": "dropped"},
            ["d", "t", 1.5, None, 80, 47.1, 8.5, None],
        ),
        ({"deviceid": "d", "truncated": "deviceid"}, ["d", None, None, None, None, None, None, "deviceid"]),
        ({}, [None] * 8),  # JSONata drops undefined from an array: each absent column is written null
        ([1, 2], "[1,2]"),  # a row that is not an object goes as its JSON text (row:not_an_object)
        ("text", "text"),
        (None, "null"),
    ],
)  # fmt: skip
def test_the_item_selector_sends_positional_rows_and_the_index(value: Any, expected_row: Any):
    selector = definition.map_state(stage_definition("dev"))["ItemSelector"]
    assert set(selector) == set(schema.ITEM_KEYS)
    saved = ITEM["Value"]
    ITEM["Value"] = value
    try:
        item = {
            k: evaluate(v[3:-3], state=definition.MAP_STATE, path=f"$.ItemSelector.{k}")
            for k, v in selector.items()
        }
    finally:
        ITEM["Value"] = saved
    # The row and the run-wide index; not the UNLOAD file (spec.map_items).
    assert item == {"r": expected_row, "i": 7}


def test_reconciliation_counts_this_runs_rows_and_names_them_when_short():
    d = stage_definition("dev")["States"]
    sql = evaluate(
        d["CountDelivered"]["Arguments"]["QueryString"][3:-3], state="CountDelivered", path="$.Arguments"
    )
    # The run is its execution name; a row of the run is its map item index with its reading.
    assert "WHERE runid = 'nightly-2026-11-21' AND dt >= '2026-11-21'" in sql
    assert "SELECT DISTINCT sourceindex, recordid" in sql
    cause = evaluate(d["ReconciliationFailed"]["Cause"][3:-3], state="Reconcile", path="$.Cause")
    assert EXECUTION_ARN in cause
    assert "expected 1000 rows, found 998" in cause
    assert "2 items failed in the map run" in cause


def test_reconciliation_expects_the_rows_of_succeeded_batches():
    """With tolerance 0 a map with any failed batch fails (and is redriven), so Succeeded = Total; above 0
    the rows given up are not expected but reported as failedItems."""
    assign = stage_definition("dev")["States"]["ReadMapRunCounts"]["Assign"]
    assert evaluate(assign["expected"][3:-3], state="ReadMapRunCounts", path="$.Assign.expected") == 998
    assert evaluate(assign["failedItems"][3:-3], state="ReadMapRunCounts", path="$.Assign.failedItems") == 2


def test_broken_expression_fails_evaluation():
    with pytest.raises(Exception):  # noqa: B017, PT011 (the JSONata library raises its own error types)
        evaluate("$runDate &", state="PrepareRun", path="$.Assign")


def test_map_writes_results_compactly_and_fails_in_place_for_redrive():
    """No Catch on the map: a failed map run fails the execution in the map state, which a redrive
    continues by redriving the map run; a Catch to a Fail state would make redrive re-fail at once."""
    states = stage_definition("dev")["States"]
    state = definition.map_state({"States": states})
    assert state["ResultWriter"]["WriterConfig"] == {"Transformation": "COMPACT", "OutputType": "JSONL"}
    assert "Catch" not in state
    assert "DetectionFailed" not in states
    assert set(state["Assign"]) == {"mapRunArn"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_task_retries_its_transient_errors(stage):
    """A task that fails on a transient error ends in its catcher's Fail state, where a redrive starts
    again (RedriveExecution: "from the unsuccessful step"), so every task retries before it gives up."""
    tasks = [
        (name, state) for name, state in aslcheck.states(stage_definition(stage)) if state["Type"] == "Task"
    ]
    assert len(tasks) >= 9
    assert [name for name, state in tasks if not state.get("Retry")] == []
    [(_, detect)] = [(n, s) for n, s in tasks if s["Resource"].endswith(":lambda:invoke")]
    # The Step Functions guide's Lambda service errors (bp-lambda-serviceexception.html), all of them.
    assert {
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    } <= set(detect["Retry"][0]["ErrorEquals"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_states_all_stands_alone_and_last_everywhere(stage):
    found = 0
    for name, state in aslcheck.states(stage_definition(stage)):
        for field in ("Retry", "Catch"):
            rules = state.get(field, [])
            for i, rule in enumerate(rules):
                if "States.ALL" in rule["ErrorEquals"]:
                    found += 1
                    assert rule["ErrorEquals"] == ["States.ALL"], (name, field, i)
                    assert i == len(rules) - 1, (name, field, i)
    assert found >= 4


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_detector_worst_case_fits_an_express_child(stage):
    """Every attempt of the child's task at its timeout, plus every retry wait, within 300 s."""
    child = definition.map_state(stage_definition(stage))["ItemProcessor"]
    assert child["ProcessorConfig"]["ExecutionType"] == "EXPRESS"
    task = child["States"][definition.DETECT_TASK]
    attempts = 1 + sum(rule.get("MaxAttempts", 3) for rule in task["Retry"])
    waits = sum(
        rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** k
        for rule in task["Retry"]
        for k in range(rule.get("MaxAttempts", 3))
    )
    assert attempts * task["TimeoutSeconds"] + waits <= detect_retry.EXPRESS_MAX_SECONDS


def test_settings_refuse_a_timeout_that_breaks_the_express_budget():
    limit = detect_retry.max_lambda_timeout_seconds()
    assert detect_retry.detect_worst_case_seconds(limit) <= detect_retry.EXPRESS_MAX_SECONDS
    assert detect_retry.detect_worst_case_seconds(limit + 1) > detect_retry.EXPRESS_MAX_SECONDS
    stage_definition("prod", lambdaTimeoutSeconds=limit)
    with pytest.raises(settings.SettingsError, match=f"lambdaTimeoutSeconds={limit + 1}: above the maximum"):
        stage_definition("prod", lambdaTimeoutSeconds=limit + 1)


def test_reconciliation_task_errors_keep_their_own_cause():
    """A failed ReadMapRunCounts/CountDelivered/ReadDeliveredCount has assigned none of the counts the
    ReconciliationFailed cause names: it goes to ReconciliationError, whose cause is the task's error."""
    states = stage_definition("dev")["States"]
    for name in ("ReadMapRunCounts", "CountDelivered", "ReadDeliveredCount"):
        assert [c["Next"] for c in states[name]["Catch"]] == ["ReconciliationError"], name
    sources = [
        name
        for name, state in states.items()
        if "ReconciliationFailed" in [state.get("Next"), state.get("Default")]
        or any(
            c.get("Next") == "ReconciliationFailed" for c in state.get("Choices", []) + state.get("Catch", [])
        )
    ]
    assert sources == ["CheckDelivered"]
    assert "$" not in states["ReconciliationError"]["Cause"].replace("$string($states.input)", "")


def test_an_empty_export_skips_the_map_with_zero_counts():
    states = stage_definition("dev")["States"]
    assert states["ExportDay"]["Next"] == "ListExported"
    assert states["HasRows"]["Choices"][0]["Next"] == definition.MAP_STATE
    assert states["HasRows"]["Default"] == "NoRows"
    assert states["NoRows"]["Assign"] == {"mapRunArn": None, "expected": 0, "failedItems": 0, "found": 0}
    assert states["NoRows"]["Next"] == "ListOldKpis"


def test_kpis_read_only_this_runs_records_in_the_partitions_it_wrote():
    """A backfill of an old day must not scan every analysis partition since that day."""
    d = stage_definition("dev")["States"]
    sql = evaluate(d["WriteKpis"]["Arguments"]["QueryString"][3:-3], state="WriteKpis", path="$.Arguments")
    assert "WHERE runid = 'nightly-2026-11-21' AND dt BETWEEN '2026-11-21' AND '2026-11-21'" in sql
    assert "dt >=" not in sql
