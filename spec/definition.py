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

The parts other modules also read live beside it: JSONata helpers (``spec.expressions``), the map's
items and their size bounds (``spec.map_items``), the Detect task's retry policy and time budget
(``spec.detect_retry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from spec import map_items, queries
from spec.detect_retry import DETECT_RETRY, DETECT_TIMEOUT_MARGIN_SECONDS
from spec.expressions import expr, s3_uri_parts, sql_text, template_expression
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
PARENT_TIMEOUT_SECONDS: Final = 12 * 3600
# The map's item expressions, also read from here by tools/localrun/mapspec.py.
ITEM_ROW_EXPRESSION: Final = map_items.ITEM_ROW_EXPRESSION

MAP_ERRORS: Final = (
    "States.ItemReaderFailed",
    "States.ExceedToleratedFailureThreshold",
    "States.ResultWriterFailed",
)


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


def build_definition(p: DefinitionParams) -> dict[str, Any]:
    """The state machine definition for one stage, as a dict ready for ``json.dumps``."""
    integration = f"arn:{p.partition}:states:::"
    run_name = "$replace($states.context.Execution.Name, /[^A-Za-z0-9_.-]/, '_')"
    default_day = (
        "$fromMillis($toMillis($states.context.Execution.StartTime) - 86400000, '[Y0001]-[M01]-[D01]')"
    )
    since = "$substring($states.context.Execution.StartTime, 0, 10)"
    manifest_bucket, manifest_key = s3_uri_parts(
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
                "ReaderConfig": map_items.reader_config(p.unload_format),
                "Arguments": {"Bucket": expr("$manifestBucket"), "Key": expr("$manifestKey")},
            },
            "ItemSelector": map_items.item_selector(),
            "ItemBatcher": {
                "MaxItemsPerBatch": p.max_items_per_batch,
                "MaxInputBytesPerBatch": p.max_input_bytes_per_batch,
                "BatchInput": map_items.batch_input(),
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
                    {"run_id": sql_text("$states.context.Execution.Name"), "since": since},
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
            # A transient S3 error this late must not end a finished run: the catcher's Fail state is
            # where a redrive would start again (RedriveExecution: "from the unsuccessful step").
            "Retry": s3_retry,
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
            "Retry": s3_retry,
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
                        "run_id": sql_text("$states.context.Execution.Name"),
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
