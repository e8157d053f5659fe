"""The pipeline's state machine definition, built as data (a pure function of plain values).

JSONata query language throughout (``Arguments``/``Output``/``Assign``; no JSONPath-only field such as
``Parameters`` or ``*.$``). The workflow:

1. ``PrepareRun`` (Pass): the run date (execution input ``runDate``, default: the day before the
   execution started, UTC) and a name for this run's folders.
2. ``CheckRunDate`` (Choice): the run date must be a real calendar day written ``YYYY-MM-DD`` — it goes
   into SQL — else ``InvalidRunDate``.
3. ``ExportDay``: Athena ``startQueryExecution.sync`` runs the day's UNLOAD into a folder unique to the
   execution (UNLOAD never overwrites); the manifest location comes from ``Statistics.DataManifestLocation``.
   ``ListExported``/``HasRows``: a day without readings writes no data file; it skips the map and goes on
   with zero counts (``NoRows``), so an empty day succeeds with ``no_data`` KPIs instead of failing.
4. ``DetectAnomalies``: Distributed Map reading that manifest (``ManifestType: ATHENA_DATA``; one item per
   row), batching rows for EXPRESS children that invoke the detector with Retry on transient Lambda errors.
   ``ResultWriter`` stores the children's summaries in S3, keeping the state's output small at any scale
   and giving the map run's ARN.
5. Reconciliation: wait for Firehose's buffer, read the map run's item counts, count the run's delivered
   rows with Athena (each processed row once, however often delivered), re-check up to a limit, else fail
   with ``ReconciliationFailed`` naming the run, the expected and the found counts. A reconciliation task
   that fails (AccessDenied, a failed query) ends in ``ReconciliationError`` with that task's own error:
   the counts it would have named are not assigned on that path.
6. KPIs: empty the day's KPI folder, then UNLOAD the day's KPIs into it, so a rerun replaces the day.

Sources: docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig,
ATHENA_DATA manifests), input-output-itembatcher.html, input-output-resultwriter.html,
state-map-distributed.html, connect-athena.html, transforming-data.html (JSONata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from functions.detector import schema
from spec import queries
from spec.naming import (
    KPI_PREFIX,
    MAP_RESULTS_PREFIX,
    UNLOAD_PREFIX,
)
from spec.queries import TableNames

MAP_STATE: Final = "DetectAnomalies"
MAP_LABEL: Final = "detect"  # names child executions: execution:<state machine>/<label>:<uuid>
DETECT_TASK: Final = "Detect"
ATHENA_CATALOG: Final = "AwsDataCatalog"
DELIVERY_ERROR: Final = schema.DELIVERY_ERROR  # raised by the detector when Firehose keeps refusing records
PARENT_TIMEOUT_SECONDS: Final = 12 * 3600


# Transient Lambda service errors worth retrying (aws-facts: "Lambda task errors worth Retry").
LAMBDA_TRANSIENT_ERRORS: Final = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# An EXPRESS child runs at most five minutes (docs: step-functions/latest/dg/choosing-workflow-type.html,
# "Maximum duration: 5 minutes"); every attempt and every retry wait of the detector task counts. Each
# attempt is assumed to run to the task's timeout (the worst case CreateStateMachine does not check), so
# the retry policy is small and fixed, and the Lambda timeout has a maximum derived from it
# (``max_lambda_timeout_seconds``), which the settings enforce.
EXPRESS_MAX_SECONDS: Final = 300
DETECT_TIMEOUT_MARGIN_SECONDS: Final = 5  # Lambda ends the function first and reports its own timeout
DETECT_RETRY: Final = (
    # (errors, IntervalSeconds, MaxAttempts, BackoffRate)
    (LAMBDA_TRANSIENT_ERRORS, 1, 3, 2),
    ((DELIVERY_ERROR,), 5, 1, 2),
)
MAP_ERRORS: Final = (
    "States.ItemReaderFailed",
    "States.ExceedToleratedFailureThreshold",
    "States.ResultWriterFailed",
)
# CSV written by UNLOAD has no header row: the map is given the column names.
CSV_HEADERS: Final = tuple(name for name, _ in queries.UNLOAD_COLUMNS)


@dataclass(frozen=True, kw_only=True)
class DefinitionParams:
    """Everything the definition depends on, as plain values (the component resolves Outputs first)."""

    partition: str
    function_arn: str
    workgroup: str
    catalog: TableNames
    unload_bucket: str  # UNLOAD output and the map's ResultWriter output (staging data)
    analytics_bucket: str  # Firehose destination and KPI files
    max_concurrency: int
    max_items_per_batch: int
    max_input_bytes_per_batch: int
    tolerated_failure_percentage: int
    unload_format: str = "PARQUET"
    unload_compression: str = "SNAPPY"
    lambda_timeout_seconds: int = 60
    delivery_wait_seconds: int = 360
    reconcile_interval_seconds: int = 120
    reconcile_max_attempts: int = 5


def detect_retry_waits_seconds() -> float:
    """The longest total of the detector task's retry waits (no jitter: FULL jitter only shortens them)."""
    return float(
        sum(
            interval * backoff**attempt
            for _errors, interval, attempts, backoff in DETECT_RETRY
            for attempt in range(attempts)
        )
    )


def detect_worst_case_seconds(lambda_timeout_seconds: int) -> float:
    """A child's worst case: every attempt (the first and every retry) runs to the task's timeout."""
    attempts = 1 + sum(attempts for _errors, _interval, attempts, _backoff in DETECT_RETRY)
    return attempts * (lambda_timeout_seconds + DETECT_TIMEOUT_MARGIN_SECONDS) + detect_retry_waits_seconds()


def max_lambda_timeout_seconds() -> int:
    """The longest detector timeout whose worst case still fits an EXPRESS child."""
    attempts = 1 + sum(attempts for _errors, _interval, attempts, _backoff in DETECT_RETRY)
    budget = EXPRESS_MAX_SECONDS - detect_retry_waits_seconds()
    return int(budget // attempts) - DETECT_TIMEOUT_MARGIN_SECONDS


# The largest map item and batch input the definition can produce, for the settings' lower bound on
# MaxInputBytesPerBatch: a batch must hold at least one item, or the map fails with
# States.DataLimitExceeded (step-functions/latest/dg/input-output-itembatcher.html), and state input is
# measured in UTF-8 bytes (step-functions/latest/apireference/API_StateEnteredEventDetails.html).
# Each text value is at its bound (queries.TEXT_COLUMN_MAX_CHARS) of astral characters written as escaped
# surrogate pairs (12 bytes of JSON per character, the most any JSON writer spends); each number is the
# longest shortest-round-trip text of a double, quoted as CSV delivers it; the source is an S3 URI with a
# 63-character bucket and a 1,024-byte key (S3's limits, AmazonS3/latest/userguide/object-keys.html and
# bucketnamingrules.html); the execution ARN is at its 256-character API limit
# (step-functions/latest/apireference/API_DescribeExecution.html, executionArn).
_WORST_CHARACTER: Final = "\U0001f321"
_WORST_NUMBER: Final = "-2.2250738585072014E-308"
# StartExecution names are 1 to 80 characters (API_StartExecution.html, "name"); counted at the worst
# character, as the row's texts are.
_WORST_EXECUTION_NAME: Final = _WORST_CHARACTER * 80
_MAX_ITEM_INDEX: Final = 99_999_999  # MaxItems is at most 100,000,000 (input-output-itemreader.html)
_WORST_FILE: Final = "k" * 1024  # the item keeps the object key's last part; a key is at most 1,024 bytes


def max_item_bytes() -> int:
    """Bytes of the largest item the ItemSelector can give one exported row (``item_selector``'s shape)."""
    kinds = dict(queries.UNLOAD_COLUMNS)
    values: list[Any] = []
    for name in schema.ITEM_FIELDS:
        if name == schema.TRUNCATED_FIELD:
            values.append(",".join(queries.TEXT_COLUMN_MAX_CHARS))
        elif kinds[name] == "string":
            values.append(_WORST_CHARACTER * queries.TEXT_COLUMN_MAX_CHARS[name])
        else:
            values.append(_WORST_NUMBER)
    item = {schema.ITEM_ROW: values, schema.ITEM_FILE: _WORST_FILE, schema.ITEM_INDEX: _MAX_ITEM_INDEX}
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=True).encode())


def max_batch_input_bytes() -> int:
    """Bytes of the largest ``{"Items":[],"BatchInput":{...}}`` envelope: a batch before its items."""
    batch_input = {schema.BATCH_RUN: _WORST_EXECUTION_NAME, "runDate": "YYYY-MM-DD"}
    return len(json.dumps({"Items": [], "BatchInput": batch_input}, separators=(",", ":")).encode())


def min_input_bytes_per_batch() -> int:
    """The smallest MaxInputBytesPerBatch that holds any one exported row: whole KiB above the worst case."""
    worst = max_batch_input_bytes() + max_item_bytes()
    return -(-worst // 1024) * 1024


# A real calendar day written YYYY-MM-DD. Pure arithmetic on the digits rather than a date parser, so no
# JSONata implementation's leniency (rolling 02-30 over to 03-02, a regex ``$`` that admits a trailing
# newline) can let an impossible date through; each guard is a conditional, so nothing is evaluated on a
# value of the wrong type (an evaluation error would end the run in CheckRunDate, not InvalidRunDate).
VALID_RUN_DATE: Final = (
    "($type($runDate) = 'string' and $length($runDate) = 10)"
    " ? ($contains($runDate, /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/)"
    " ? ($y := $number($substring($runDate, 0, 4)); $m := $number($substring($runDate, 5, 2));"
    " $d := $number($substring($runDate, 8, 2));"
    " $leap := ($y % 4 = 0 and $y % 100 != 0) or $y % 400 = 0;"
    " $last := $m = 2 ? ($leap ? 29 : 28) : ($m in [4, 6, 9, 11] ? 30 : 31);"
    " $m >= 1 and $m <= 12 and $d >= 1 and $d <= $last)"
    " : false)"
    " : false"
)


def expr(jsonata: str) -> str:
    """Wrap a JSONata expression the way ASL marks one."""
    return "{% " + jsonata + " %}"


def template_expression(template: str, values: dict[str, str]) -> str:
    """Turn a SQL template with ``{placeholders}`` into a JSONata string-concatenation expression.

    Literal text becomes JSON string literals (valid JSONata strings, so quotes need no hand-escaping);
    each placeholder becomes the JSONata expression given for it. Unknown or unused placeholders fail.
    """
    names = queries.placeholders(template)
    missing = sorted(set(names) - values.keys())
    unused = sorted(values.keys() - set(names))
    if missing or unused:
        raise ValueError(f"template placeholders missing values {missing} / values unused {unused}")
    parts: list[str] = []
    rest = template
    for match in list(queries.PLACEHOLDER.finditer(template))[::-1]:
        head, tail = rest[: match.start()], rest[match.end() :]
        if tail:
            parts.append(json.dumps(tail))
        parts.append("(" + values[match.group(1)] + ")")
        rest = head
    if rest:
        parts.append(json.dumps(rest))
    return expr(" & ".join(reversed(parts)))


def _sql_text(jsonata: str) -> str:
    """A JSONata expression's value made safe inside a SQL string literal (quotes doubled)."""
    return f'$replace({jsonata}, "\'", "\'\'")'


def reader_config(unload_format: str) -> dict[str, Any]:
    """The ItemReader's ReaderConfig for the stage's UNLOAD format (ATHENA_DATA manifest)."""
    config: dict[str, Any] = {"InputType": unload_format, "ManifestType": "ATHENA_DATA"}
    if unload_format == "CSV":
        config |= {"CSVHeaderLocation": "GIVEN", "CSVHeaders": list(CSV_HEADERS)}
    return config


# The map item (schema: ``{"r": [values], "s": file, "i": index}``). Every byte of an item counts against
# the child's 256 KiB input (MaxInputBytesPerBatch), so the row goes positionally, without its keys:
# each of the UNLOAD's columns in schema.ITEM_FIELDS order, null where the row has no such key (JSONata
# drops an undefined value from an array, which would shift the positions). A row that is not an object
# (a JSONL line holding an array, say) goes as its JSON text, which the detector reports as
# row:not_an_object. The file is its key relative to the run's UNLOAD folder: an unpartitioned UNLOAD
# writes its data files directly into the TO folder (docs: athena/latest/ug/unload.html), so that is
# the last segment of Map.Item.Source. Map.Item.Index counts items across the whole map run
# (docs: step-functions/latest/dg/input-output-contextobject.html, "Context object data for Map states").
ITEM_ROW_EXPRESSION: Final = (
    "($v := $states.context.Map.Item.Value; $type($v) = 'object' ? ["
    + ", ".join(f"($exists($v.{name}) ? $v.{name} : null)" for name in schema.ITEM_FIELDS)
    + "] : $string($v))"
)
ITEM_FILE_EXPRESSION: Final = "$split($states.context.Map.Item.Source, '/')[-1]"
ITEM_INDEX_EXPRESSION: Final = "$states.context.Map.Item.Index"


def item_selector() -> dict[str, str]:
    """The Distributed Map's ItemSelector: one positional item per row (see ``ITEM_ROW_EXPRESSION``)."""
    return {
        schema.ITEM_ROW: expr(ITEM_ROW_EXPRESSION),
        schema.ITEM_FILE: expr(ITEM_FILE_EXPRESSION),
        schema.ITEM_INDEX: expr(ITEM_INDEX_EXPRESSION),
    }


def _s3_uri_parts(location: str) -> tuple[str, str]:
    """JSONata expressions for the bucket and key of an ``s3://bucket/key`` URI expression."""
    without_scheme = f"$substringAfter({location}, 's3://')"
    return f"$substringBefore({without_scheme}, '/')", f"$substringAfter({without_scheme}, '/')"


def build_definition(p: DefinitionParams) -> dict[str, Any]:
    """The state machine definition for one stage, as a dict ready for ``json.dumps``."""
    integration = f"arn:{p.partition}:states:::"
    run_name = "$replace($states.context.Execution.Name, /[^A-Za-z0-9_.-]/, '_')"
    default_day = (
        "$fromMillis($toMillis($states.context.Execution.StartTime) - 86400000, '[Y0001]-[M01]-[D01]')"
    )
    since = "$substring($states.context.Execution.StartTime, 0, 10)"
    manifest_bucket, manifest_key = _s3_uri_parts(
        "$states.result.QueryExecution.Statistics.DataManifestLocation"
    )
    athena_context = {"Database": p.catalog.database, "Catalog": ATHENA_CATALOG}
    unload_folder = f"'{UNLOAD_PREFIX}' & $runDate & '/' & $runName & '/'"
    s3_retry = [
        {
            "ErrorEquals": ["States.TaskFailed"],
            "IntervalSeconds": 2,
            "MaxAttempts": 3,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]
    athena_retry = [
        {
            "ErrorEquals": ["Athena.TooManyRequestsException"],
            "IntervalSeconds": 5,
            "MaxAttempts": 5,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]

    def fail_on_error(next_state: str) -> list[dict[str, Any]]:
        return [{"ErrorEquals": ["States.ALL"], "Next": next_state, "Output": expr("$states.errorOutput")}]

    states: dict[str, Any] = {
        "PrepareRun": {
            "Type": "Pass",
            "Comment": "The run's date (input runDate, default: the day before the execution started, UTC).",
            "Assign": {
                "runDate": expr(f"$exists($states.input.runDate) ? $states.input.runDate : {default_day}"),
                "runName": expr(run_name),
                "attempt": 0,
            },
            "Next": "CheckRunDate",
        },
        "CheckRunDate": {
            "Type": "Choice",
            "Comment": "The run date goes into SQL: accept only a real calendar day, YYYY-MM-DD.",
            "Choices": [{"Condition": expr(VALID_RUN_DATE), "Next": "ExportDay"}],
            "Default": "InvalidRunDate",
        },
        "InvalidRunDate": {
            "Type": "Fail",
            "Error": "InvalidRunDate",
            "Cause": expr("'runDate must be a calendar day written YYYY-MM-DD, got ' & $string($runDate)"),
        },
        "ExportDay": {
            "Type": "Task",
            "Comment": "UNLOAD the day's raw readings into a folder unique to this execution.",
            "Resource": f"{integration}athena:startQueryExecution.sync",
            "Arguments": {
                "QueryString": template_expression(
                    queries.unload_day(p.catalog, fmt=p.unload_format, compression=p.unload_compression),
                    {
                        "run_date": "$runDate",
                        "location": f"'s3://{p.unload_bucket}/' & {unload_folder}",
                    },
                ),
                "WorkGroup": p.workgroup,
                "QueryExecutionContext": athena_context,
            },
            "Assign": {"manifestBucket": expr(manifest_bucket), "manifestKey": expr(manifest_key)},
            "Retry": athena_retry,
            "Catch": fail_on_error("ExportFailed"),
            "Next": "ListExported",
        },
        "ListExported": {
            "Type": "Task",
            "Comment": "UNLOAD writes no data file for a day without readings: look before reading a manifest.",
            "Resource": f"{integration}aws-sdk:s3:listObjectsV2",
            "Arguments": {"Bucket": p.unload_bucket, "Prefix": expr(unload_folder), "MaxKeys": 1},
            "Assign": {"exportedFiles": expr("$states.result.KeyCount")},
            "Retry": s3_retry,
            "Catch": fail_on_error("ExportFailed"),
            "Next": "HasRows",
        },
        "HasRows": {
            "Type": "Choice",
            "Choices": [{"Condition": expr("$exportedFiles > 0"), "Next": MAP_STATE}],
            "Default": "NoRows",
        },
        "NoRows": {
            "Type": "Pass",
            "Comment": "An empty day: nothing to detect or reconcile; the KPIs say no_data.",
            "Assign": {"mapRunArn": None, "expected": 0, "failedItems": 0, "found": 0},
            "Next": "ListOldKpis",
        },
        MAP_STATE: {
            "Type": "Map",
            "Comment": "One item per row of the UNLOAD files; batches of rows go to EXPRESS children.",
            "ItemReader": {
                "Resource": f"{integration}s3:getObject",
                "ReaderConfig": reader_config(p.unload_format),
                "Arguments": {"Bucket": expr("$manifestBucket"), "Key": expr("$manifestKey")},
            },
            "ItemSelector": item_selector(),
            "ItemBatcher": {
                "MaxItemsPerBatch": p.max_items_per_batch,
                "MaxInputBytesPerBatch": p.max_input_bytes_per_batch,
                "BatchInput": {
                    schema.BATCH_RUN: expr("$states.context.Execution.Name"),
                    "runDate": expr("$runDate"),
                },
            },
            "MaxConcurrency": p.max_concurrency,
            "ToleratedFailurePercentage": p.tolerated_failure_percentage,
            "Label": MAP_LABEL,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": DETECT_TASK,
                "States": {
                    DETECT_TASK: {
                        "Type": "Task",
                        "Resource": f"{integration}lambda:invoke",
                        "Arguments": {"FunctionName": p.function_arn, "Payload": expr("$states.input")},
                        "Output": expr("$states.result.Payload"),
                        "TimeoutSeconds": p.lambda_timeout_seconds + DETECT_TIMEOUT_MARGIN_SECONDS,
                        "Retry": [
                            {
                                "ErrorEquals": list(errors),
                                "IntervalSeconds": interval,
                                "MaxAttempts": attempts,
                                "BackoffRate": backoff,
                                "JitterStrategy": "FULL",
                            }
                            for errors, interval, attempts, backoff in DETECT_RETRY
                        ],
                        "End": True,
                    }
                },
            },
            "ResultWriter": {
                "Resource": f"{integration}s3:putObject",
                "Arguments": {
                    "Bucket": p.unload_bucket,
                    "Prefix": expr(f"'{MAP_RESULTS_PREFIX}' & $runDate & '/' & $runName"),
                },
                "WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSONL"},
            },
            "Assign": {"mapRunArn": expr("$states.result.MapRunArn")},
            # No Catch: a map run whose batches failed beyond the tolerated share ends the execution here,
            # in this state, with the map's own error (MAP_ERRORS). RedriveExecution "continues the failed
            # execution from the unsuccessful step" and, for a failed Map Run, re-runs only its failed
            # child executions (EXPRESS children with StartExecution), then carries on to reconciliation
            # (docs: step-functions/latest/dg/redrive-executions.html, redrive-map-run.html). A Catch to a
            # Fail state would make the Fail state the unsuccessful step, and a redrive would only re-fail.
            "Next": "WaitForDelivery",
        },
        "WaitForDelivery": {
            "Type": "Wait",
            "Comment": "Firehose delivers to S3 only after its buffer interval.",
            "Seconds": p.delivery_wait_seconds,
            "Next": "ReadMapRunCounts",
        },
        "ReadMapRunCounts": {
            "Type": "Task",
            "Comment": "Rows of succeeded batches must be delivered; rows of tolerated failures are reported.",
            "Resource": f"{integration}aws-sdk:sfn:describeMapRun",
            "Arguments": {"MapRunArn": expr("$mapRunArn")},
            "Assign": {
                # Succeeded: with ToleratedFailurePercentage 0 (both stacks) any failed batch fails the map
                # and a redrive completes it, so Succeeded = Total here. Above 0 the stage accepts giving
                # up that share of rows: they are not expected, and the run's output reports them.
                "expected": expr("$states.result.ItemCounts.Succeeded"),
                "failedItems": expr(
                    "$states.result.ItemCounts.Failed + $states.result.ItemCounts.TimedOut"
                    " + $states.result.ItemCounts.Aborted"
                ),
            },
            "Retry": [
                {
                    "ErrorEquals": ["States.TaskFailed"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 3,
                    "BackoffRate": 2,
                }
            ],
            "Catch": fail_on_error("ReconciliationError"),
            "Next": "CountDelivered",
        },
        "CountDelivered": {
            "Type": "Task",
            "Comment": "Rows of this run in the analytics table, each counted once.",
            "Resource": f"{integration}athena:startQueryExecution.sync",
            "Arguments": {
                "QueryString": template_expression(
                    queries.delivered_rows(p.catalog),
                    {"run_id": _sql_text("$states.context.Execution.Name"), "since": since},
                ),
                "WorkGroup": p.workgroup,
                "QueryExecutionContext": athena_context,
            },
            "Assign": {"countQueryId": expr("$states.result.QueryExecution.QueryExecutionId")},
            "Retry": athena_retry,
            "Catch": fail_on_error("ReconciliationError"),
            "Next": "ReadDeliveredCount",
        },
        "ReadDeliveredCount": {
            "Type": "Task",
            "Resource": f"{integration}athena:getQueryResults",
            "Arguments": {"QueryExecutionId": expr("$countQueryId"), "MaxResults": 2},
            "Assign": {
                # Row 0 is the header; row 1 holds the count.
                "found": expr("$number($states.result.ResultSet.Rows[1].Data[0].VarCharValue)"),
                "attempt": expr("$attempt + 1"),
            },
            "Retry": athena_retry,
            "Catch": fail_on_error("ReconciliationError"),
            "Next": "CheckDelivered",
        },
        "CheckDelivered": {
            "Type": "Choice",
            "Choices": [
                {"Condition": expr("$found >= $expected"), "Next": "ListOldKpis"},
                {"Condition": expr(f"$attempt < {p.reconcile_max_attempts}"), "Next": "WaitBeforeRecount"},
            ],
            "Default": "ReconciliationFailed",
        },
        "WaitBeforeRecount": {
            "Type": "Wait",
            "Seconds": p.reconcile_interval_seconds,
            "Next": "CountDelivered",
        },
        "ReconciliationFailed": {
            "Type": "Fail",
            "Error": "ReconciliationFailed",
            "Cause": expr(
                "'run ' & $states.context.Execution.Id & ' (' & $runDate & '): expected ' & $string($expected)"
                " & ' rows, found ' & $string($found) & ' after ' & $string($attempt) & ' checks; '"
                " & $string($failedItems) & ' items failed in the map run'"
            ),
        },
        "ReconciliationError": {
            "Type": "Fail",
            "Comment": "A reconciliation task failed: its own error, not counts that were never read.",
            "Error": "ReconciliationError",
            "Cause": expr("$string($states.input)"),
        },
        "ListOldKpis": {
            "Type": "Task",
            "Comment": "A rerun replaces the day's KPIs: find the files a previous run wrote.",
            "Resource": f"{integration}aws-sdk:s3:listObjectsV2",
            "Arguments": {
                "Bucket": p.analytics_bucket,
                "Prefix": expr(f"'{KPI_PREFIX}dt=' & $runDate & '/'"),
            },
            "Assign": {"oldKpis": expr("[$states.result.Contents.{'Key': Key}]")},
            "Catch": fail_on_error("KpisFailed"),
            "Next": "HasOldKpis",
        },
        "HasOldKpis": {
            "Type": "Choice",
            "Choices": [{"Condition": expr("$count($oldKpis) > 0"), "Next": "DeleteOldKpis"}],
            "Default": "WriteKpis",
        },
        "DeleteOldKpis": {
            "Type": "Task",
            "Resource": f"{integration}aws-sdk:s3:deleteObjects",
            "Arguments": {
                "Bucket": p.analytics_bucket,
                "Delete": {"Objects": expr("$oldKpis"), "Quiet": True},
            },
            "Catch": fail_on_error("KpisFailed"),
            "Next": "WriteKpis",
        },
        "WriteKpis": {
            "Type": "Task",
            "Comment": "The day's KPIs per device and fleet-wide, as Parquet in the day's KPI partition.",
            "Resource": f"{integration}athena:startQueryExecution.sync",
            "Arguments": {
                "QueryString": template_expression(
                    queries.kpis_for_day(p.catalog),
                    {
                        "run_id": _sql_text("$states.context.Execution.Name"),
                        "since": since,
                        "until": "$substring($states.context.State.EnteredTime, 0, 10)",
                        "location": f"'s3://{p.analytics_bucket}/{KPI_PREFIX}dt=' & $runDate & '/'",
                    },
                ),
                "WorkGroup": p.workgroup,
                "QueryExecutionContext": athena_context,
            },
            "Retry": athena_retry,
            "Catch": fail_on_error("KpisFailed"),
            "Next": "Done",
        },
        "Done": {
            "Type": "Succeed",
            "Output": {
                "runDate": expr("$runDate"),
                "mapRunArn": expr("$mapRunArn"),
                "rowsProcessed": expr("$expected"),
                "rowsDelivered": expr("$found"),
                "rowsFailed": expr("$failedItems"),
            },
        },
        "ExportFailed": {"Type": "Fail", "Error": "ExportFailed", "Cause": expr("$string($states.input)")},
        "KpisFailed": {"Type": "Fail", "Error": "KpisFailed", "Cause": expr("$string($states.input)")},
    }
    return {
        "Comment": "sensorflow: export a day of sensor readings, detect anomalies, reconcile, compute KPIs.",
        "QueryLanguage": "JSONata",
        "TimeoutSeconds": PARENT_TIMEOUT_SECONDS,
        "StartAt": "PrepareRun",
        "States": states,
    }


def map_state(definition: dict[str, Any]) -> dict[str, Any]:
    """The Distributed Map state of a definition (tests and the policy pack read it)."""
    return definition["States"][MAP_STATE]
