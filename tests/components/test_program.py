"""The real program, run under recording mocks with each committed stack file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from functions.detector import schema
from spec import definition, detect_retry
from tools import harness

STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
FUNCTION = "aws:lambda/function:Function"
STREAM = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
BUCKET = "aws:s3/bucket:Bucket"


def rendered_definition(run: harness.Run) -> dict:
    return json.loads(run.one(STATE_MACHINE).inputs["definition"])


def test_every_stage_registers_resources(run):
    custom = [r for r in run.resources if r.custom]
    assert len(custom) > 40, [r.type for r in custom]
    assert run.exports["stateMachineArn"].endswith(f":stateMachine:sensorflow-{run.stack}-pipeline")


def test_map_reads_the_athena_manifest_row_by_row(run):
    state = definition.map_state(rendered_definition(run))
    reader = state["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "PARQUET", "ManifestType": "ATHENA_DATA"}
    assert reader["Arguments"] == {"Bucket": "{% $manifestBucket %}", "Key": "{% $manifestKey %}"}
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert state["Label"] == definition.MAP_LABEL


def test_map_settings_follow_each_stack_file(runs, stage_settings):
    maps = {stage: definition.map_state(rendered_definition(r)) for stage, r in runs.items()}
    for stage, state in maps.items():
        s = stage_settings[stage]
        assert state["MaxConcurrency"] == s.max_concurrency
        assert state["ToleratedFailurePercentage"] == s.tolerated_failure_percentage
        assert state["ItemBatcher"]["MaxItemsPerBatch"] == s.max_items_per_batch
        assert state["ItemBatcher"]["MaxInputBytesPerBatch"] == s.max_input_bytes_per_batch
    # The stacks are tuned for different volumes: their concurrency differs (each batch is filled).
    assert maps["dev"]["MaxConcurrency"] != maps["prod"]["MaxConcurrency"]


def test_map_children_invoke_this_stages_function_with_retry(run):
    function = run.one(FUNCTION)
    task = definition.map_state(rendered_definition(run))["ItemProcessor"]["States"][definition.DETECT_TASK]
    assert task["Arguments"]["FunctionName"] == function.outputs["arn"]
    retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
    assert set(detect_retry.LAMBDA_TRANSIENT_ERRORS) <= retried


def test_state_machine_logs_and_traces(run):
    machine = run.one(STATE_MACHINE)
    assert machine.inputs["name"] == f"sensorflow-{run.stack}-pipeline"
    assert machine.inputs["tracingConfiguration"] == {"enabled": True}
    logging = machine.inputs["loggingConfiguration"]
    assert logging["level"] in {"ERROR", "ALL"}
    assert logging["logDestination"].endswith(":*")


def test_detector_function_follows_settings(run, stage_settings):
    s = stage_settings[run.stack]
    function = run.one(FUNCTION)
    inputs = function.inputs
    assert inputs["reservedConcurrentExecutions"] == s.lambda_reserved_concurrency
    assert inputs["memorySize"] == s.lambda_memory_mb
    assert inputs["timeout"] == s.lambda_timeout_seconds
    assert inputs["architectures"] == [s.lambda_architecture]
    assert inputs["runtime"] == s.lambda_runtime
    assert inputs["handler"] == "detector.handler.lambda_handler"
    env = inputs["environment"]["variables"]
    assert env["DELIVERY_STREAM_NAME"] == run.one(STREAM).outputs["name"]
    assert env["TEMPERATURE_HIGH"] == str(s.temperature_high_c)
    assert env["BATTERY_LOW"] == str(s.battery_low_pct)
    # The detector's module-level Logger and Metrics take their service (the metrics' one dimension) and
    # namespace from these; the alarms read that namespace and dimension.
    assert env["POWERTOOLS_SERVICE_NAME"] == inputs["name"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == schema.METRICS_NAMESPACE
    log_group = next(
        r
        for r in run.of_type("aws:cloudwatch/logGroup:LogGroup")
        if r.inputs["name"].startswith("/aws/lambda/")
    )
    assert log_group.inputs["retentionInDays"] == s.log_retention_days
    assert inputs["loggingConfig"]["logGroup"] == log_group.inputs["name"]
    # With JSON logs Lambda's application log level wins over POWERTOOLS_LOG_LEVEL: the setting goes there.
    assert inputs["loggingConfig"]["logFormat"] == "JSON"
    expected_level = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}[
        s.lambda_log_level
    ]
    assert inputs["loggingConfig"]["applicationLogLevel"] == expected_level


def test_delivery_stream_partitions_by_day_and_is_encrypted(run, stage_settings):
    s = stage_settings[run.stack]
    stream = run.one(STREAM)
    dest = stream.inputs["extendedS3Configuration"]
    assert dest["prefix"] == "analysis/dt=!{timestamp:yyyy-MM-dd}/"
    assert dest["errorOutputPrefix"].startswith("errors/")
    assert dest["bufferingInterval"] == s.firehose_buffer_interval_seconds
    assert dest["bufferingSize"] == s.firehose_buffer_size_mb
    assert dest["compressionFormat"] == s.firehose_compression
    assert dest["cloudwatchLoggingOptions"]["enabled"] is True
    assert stream.inputs["serverSideEncryption"]["enabled"] is True
    analytics = next(b for b in run.of_type(BUCKET) if "-analytics-" in b.inputs["bucket"])
    assert dest["bucketArn"] == analytics.outputs["arn"]


def test_every_bucket_is_encrypted_private_tls_only_with_lifecycle(run):
    buckets = run.of_type(BUCKET)
    assert len(buckets) == 5  # four data buckets and the access-log bucket
    for bucket in buckets:
        name = bucket.inputs["bucket"]

        def attached(type_: str, name: str = name) -> list[harness.Resource]:
            return [r for r in run.of_type(type_) if r.inputs.get("bucket") == name]

        [sse] = attached(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in {
            "AES256",
            "aws:kms",
        }
        [block] = attached("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(
            block.inputs[k]
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        [policy] = attached("aws:s3/bucketPolicy:BucketPolicy")
        deny = json.loads(policy.inputs["policy"])["Statement"][0]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        [lifecycle] = attached("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        assert lifecycle.inputs["rules"]
        versioned = attached("aws:s3/bucketVersioning:BucketVersioning")
        assert bool(versioned) == (bucket.tags["data-class"] == "data"), name


LOGGING = "aws:s3/bucketLogging:BucketLogging"


def test_every_data_bucket_logs_to_the_access_log_bucket_under_its_own_prefix(run, stage_settings):
    [log_bucket] = [b for b in run.of_type(BUCKET) if b.tags["data-class"] == "access-logs"]
    log_name = log_bucket.inputs["bucket"]
    assert (
        log_name
        == f"sensorflow-{run.stack}-access-logs-{run.exports['stateMachineArn'].split(':')[4]}-eu-west-1"
    )
    sources = [b for b in run.of_type(BUCKET) if b is not log_bucket]
    assert len(sources) == 4
    loggings = {r.inputs["bucket"]: r for r in run.of_type(LOGGING)}
    assert set(loggings) == {b.inputs["bucket"] for b in sources}  # and not the log bucket itself
    for source in sources:
        name = source.inputs["bucket"]
        assert loggings[name].inputs["targetBucket"] == log_name
        assert loggings[name].inputs["targetPrefix"] == f"{name}/"
    # The delivery grant: one statement per source, exactly as the S3 User Guide documents it.
    [policy] = [p for p in run.of_type("aws:s3/bucketPolicy:BucketPolicy") if p.inputs["bucket"] == log_name]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert statements[0]["Sid"] == "DenyInsecureTransport"
    grants = [s for s in statements if s["Effect"] == "Allow"]
    account = run.exports["stateMachineArn"].split(":")[4]
    assert sorted(g["Condition"]["ArnLike"]["aws:SourceArn"] for g in grants) == sorted(
        b.outputs["arn"] for b in sources
    )
    for grant in grants:
        source = grant["Condition"]["ArnLike"]["aws:SourceArn"].split(":::", 1)[1]
        assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
        assert grant["Action"] == "s3:PutObject"
        assert grant["Resource"] == f"{log_bucket.outputs['arn']}/{source}/*"
        assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    [ownership] = [
        r
        for r in run.of_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
        if r.inputs["bucket"] == log_name
    ]
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    [lifecycle] = [
        r
        for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if r.inputs["bucket"] == log_name
    ]
    days = stage_settings[run.stack].access_log_retention_days
    assert any(rule.get("expiration", {}).get("days") == days for rule in lifecycle.inputs["rules"])


def test_staging_buckets_expire(run, stage_settings):
    days = stage_settings[run.stack].staging_retention_days
    for bucket in run.of_type(BUCKET):
        if bucket.tags["data-class"] != "staging":
            continue
        [lifecycle] = [
            r
            for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
            if r.inputs["bucket"] == bucket.inputs["bucket"]
        ]
        assert any(rule.get("expiration", {}).get("days") == days for rule in lifecycle.inputs["rules"])


def test_prod_protects_and_retains_its_data_stores_and_dev_does_not(runs):
    stores = (
        "aws:s3/bucket:Bucket",
        "aws:glue/catalogTable:CatalogTable",
        "aws:glue/catalogDatabase:CatalogDatabase",
    )
    for stage, expected in (("prod", True), ("dev", False)):
        found = [r for t in stores for r in runs[stage].of_type(t)]
        assert len(found) == 9  # five buckets (the access logs too: audit evidence), three tables, a database
        assert all(
            r.options["protect"] is expected and r.options["retainOnDelete"] is expected for r in found
        )
        assert all(b.inputs["forceDestroy"] is (not expected) for b in runs[stage].of_type(BUCKET))


def test_workgroup_enforces_result_location_and_scan_cutoff(run, stage_settings):
    s = stage_settings[run.stack]
    workgroup = run.one("aws:athena/workgroup:Workgroup")
    config = workgroup.inputs["configuration"]
    assert config["enforceWorkgroupConfiguration"] is True
    assert config["bytesScannedCutoffPerQuery"] == s.athena_bytes_scanned_cutoff_mb * 1024 * 1024
    athena_bucket = next(b for b in run.of_type(BUCKET) if "-athena-" in b.inputs["bucket"])
    assert (
        config["resultConfiguration"]["outputLocation"] == f"s3://{athena_bucket.inputs['bucket']}/results/"
    )


def test_tables_project_their_day_partition_without_a_hard_coded_year(run):
    tables = run.of_type("aws:glue/catalogTable:CatalogTable")
    assert {t.inputs["name"] for t in tables} == {"raw_readings", "analysis_records", "device_kpis"}
    for table in tables:
        params = table.inputs["parameters"]
        assert params["projection.enabled"] == "true"
        assert params["projection.dt.type"] == "date"
        assert not re.search(r"20\d\d", params["projection.dt.range"]), params["projection.dt.range"]
        assert params["storage.location.template"].endswith("${dt}/")
        assert table.inputs["partitionKeys"] == [{"name": "dt", "type": "string"}]


def test_analysis_table_matches_the_detectors_record_schema(run):
    table = run.one("aws:glue/catalogTable:CatalogTable", "analysis")
    columns = [(c["name"], c["type"]) for c in table.inputs["storageDescriptor"]["columns"]]
    assert columns == [(name, type_) for name, type_, _ in schema.ANALYSIS_COLUMNS]
    assert ("anomalies", "array<struct<type:string,value:double,threshold:string>>") in columns
    # Hive's JSON SerDe: Athena documents the OpenX one as non-deterministic (rows lost or added), and the
    # detector leaves empty keys out, which Hive's reads as NULL (functions/detector/schema.OPTIONAL_KEYS).
    serde = table.inputs["storageDescriptor"]["serDeInfo"]["serializationLibrary"]
    assert serde == "org.apache.hive.hcatalog.data.JsonSerDe"


def test_named_queries_cover_the_operators_checks(run):
    queries = {q.inputs["name"].split(": ", 1)[1] for q in run.of_type("aws:athena/namedQuery:NamedQuery")}
    assert {
        "anomalies-of-a-day",
        "device-health",
        "worst-devices-of-a-day",
        "battery-empty-within-days",
    } <= queries


def test_components_have_matching_type_tokens_and_parent_their_children(run):
    components = [r for r in run.resources if not r.custom]
    assert {r.type for r in components} >= {
        "sensorflow:storage:Storage",
        "sensorflow:catalog:Catalog",
        "sensorflow:delivery:Delivery",
        "sensorflow:detector:Detector",
        "sensorflow:workflow:Workflow",
    }
    component_urns = {r.urn for r in components}
    aws_resources = [r for r in run.resources if r.custom]
    assert aws_resources
    orphans = [r.name for r in aws_resources if r.parent not in component_urns]
    assert orphans == []


def test_every_taggable_resource_carries_stage_and_owner(run):
    taggable = [r for r in run.resources if r.custom and "tags" in r.inputs]
    assert len(taggable) > 10
    for resource in taggable:
        assert resource.tags.get("stage") == run.stack, resource.name
        assert resource.tags.get("owner"), resource.name


def test_exports_give_a_ready_start_execution_command(run):
    import shlex

    command = run.exports["startExecutionCommand"]
    words = shlex.split(command.replace("YYYY-MM-DD", "2026-11-20"))  # as a shell splits it
    assert words[:4] == ["aws", "stepfunctions", "start-execution", "--state-machine-arn"]
    assert words[4] == run.one("aws:sfn/stateMachine:StateMachine").outputs["arn"]
    assert words[5:] == ["--input", '{"runDate": "2026-11-20"}']
    for key in (
        "rawBucket",
        "analyticsBucket",
        "deliveryStreamName",
        "workgroup",
        "database",
        "functionName",
    ):
        assert run.exports[key], key


def test_negative_control_the_harness_fails_on_a_wrong_value(runs):
    """A wrong expectation must fail: proves the assertions above are live, not vacuous."""
    state = definition.map_state(rendered_definition(runs["prod"]))
    with pytest.raises(AssertionError):
        assert state["MaxConcurrency"] == 10_000
    with pytest.raises(AssertionError):
        runs["prod"].one(FUNCTION, "no-such-function")


def test_the_rendered_stack_is_the_same_on_every_run(tmp_path):
    """`make synth` output is compared before and after a restructuring, so it must not depend on the
    order components register in, on str hashes (PYTHONHASHSEED) or on object addresses."""
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        subprocess.run(
            [sys.executable, "-m", "tools.synth", "--stack", "dev", "--out", str(out)],
            cwd=harness.ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        outputs.append({p.relative_to(out): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()})
    assert len(outputs[0]) >= 5
    assert outputs[0] == outputs[1]
    assert " object at 0x" not in outputs[0][Path("dev/resources.json")]
