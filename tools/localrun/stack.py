"""What a local run runs: one stage's rendered definition, settings and resources.

The primary source is ``make synth``'s output, ``build/<stage>/``: ``definition.asl.json`` (the very
definition that deploys), ``stack.json`` (settings and stack exports) and ``resources.json`` (every
resource with its inputs). From those come the Glue tables the Athena stand-in reads, the Firehose
stream's prefix, compression and buffer, the detector's environment and the workgroup's result location.

``from_settings`` renders the same things in-process from the stage's stack file, through the same pure
functions the components call (``build_definition``, ``catalog_names``, ``environment`` ...). Tests use it
to vary one setting without a synth; the CLI uses it only when ``build/<stage>`` is missing and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

FIREHOSE_TYPE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
LAMBDA_TYPE = "aws:lambda/function:Function"
GLUE_TABLE_TYPE = "aws:glue/catalogTable:CatalogTable"
WORKGROUP_TYPE = "aws:athena/workgroup:Workgroup"
STATE_MACHINE_TYPE = "aws:sfn/stateMachine:StateMachine"

# Stack exports a local run cannot do without.
REQUIRED_EXPORTS = (
    "rawBucket",
    "unloadBucket",
    "athenaResultsBucket",
    "analyticsBucket",
    "deliveryStreamName",
    "functionName",
    "stateMachineArn",
    "workgroup",
    "database",
    "rawTable",
    "analysisTable",
    "kpiTable",
)


class StackError(ValueError):
    """The rendered stack is missing something a local run needs, or is malformed."""


@dataclass(frozen=True)
class TableSpec:
    """A Glue table as the Athena stand-in needs it: where its files are and how to read them."""

    database: str
    name: str
    location: str  # s3://bucket/prefix/
    location_template: str | None  # partition projection: s3://.../${dt}/
    classification: str  # csv | json | parquet
    columns: tuple[tuple[str, str], ...]  # (name, Hive type)
    partition_keys: tuple[str, ...]
    skip_header_lines: int = 0
    field_delimiter: str = ","


@dataclass(frozen=True)
class FirehoseSpec:
    """The delivery stream's S3 destination settings."""

    stream_name: str
    bucket: str
    prefix: str
    error_output_prefix: str
    compression: str  # GZIP | UNCOMPRESSED
    buffer_interval_seconds: int
    buffer_size_mb: int


@dataclass(frozen=True)
class LocalStack:
    """Everything the local run takes from a stage's rendered stack."""

    stage: str
    definition: dict[str, Any]
    settings: dict[str, Any]
    exports: dict[str, Any]
    tables: dict[str, TableSpec]  # by table name
    firehose: FirehoseSpec
    function_name: str
    function_arn: str
    lambda_env: dict[str, str]
    lambda_timeout_seconds: int
    results_location: str  # the workgroup's enforced query result location, s3://bucket/results/
    source: str = "synth"  # where it came from: a build folder, or "settings" for an in-process render
    account_id: str = "123456789012"
    region: str = "eu-west-1"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state_machine_arn(self) -> str:
        return str(self.exports["stateMachineArn"])

    @property
    def state_machine_name(self) -> str:
        return self.state_machine_arn.rsplit(":", 1)[-1]

    def with_definition(self, definition: dict[str, Any]) -> LocalStack:
        """The same stack running another definition (tests use it to try a broken one)."""
        return replace(self, definition=definition)


def _s3_bucket_of_arn(arn: str) -> str:
    # arn:<partition>:s3:::<bucket>
    if not isinstance(arn, str) or ":s3:::" not in arn:
        raise StackError(f"Firehose bucketArn {arn!r} is not an S3 bucket ARN")
    return arn.split(":s3:::", 1)[1].split("/", 1)[0]


def _table_from_inputs(inputs: dict[str, Any]) -> TableSpec:
    sd = inputs.get("storageDescriptor") or {}
    params = inputs.get("parameters") or {}
    serde = (sd.get("serDeInfo") or {}).get("parameters") or {}
    columns = tuple((c["name"], c["type"]) for c in sd.get("columns") or [])
    if not columns:
        raise StackError(f"Glue table {inputs.get('name')!r} has no columns in resources.json")
    return TableSpec(
        database=str(inputs.get("databaseName")),
        name=str(inputs["name"]),
        location=str(sd.get("location")),
        location_template=params.get("storage.location.template"),
        classification=str(params.get("classification", "")).lower(),
        columns=columns,
        partition_keys=tuple(k["name"] for k in inputs.get("partitionKeys") or []),
        skip_header_lines=int(params.get("skip.header.line.count", 0)),
        field_delimiter=serde.get("field.delim", ","),
    )


def from_build(stage: str, build_dir: Path | None = None) -> LocalStack:
    """Load ``build/<stage>/`` as ``make synth`` wrote it."""
    folder = (build_dir or ROOT / "build") / stage
    files = {name: folder / name for name in ("definition.asl.json", "stack.json", "resources.json")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise StackError(f"stage {stage!r} is not rendered: missing {', '.join(missing)}; run `make synth`")
    definition = json.loads(files["definition.asl.json"].read_text())
    stack = json.loads(files["stack.json"].read_text())
    resources = json.loads(files["resources.json"].read_text())
    if isinstance(resources, dict):  # tolerate {"resources": [...]}
        resources = resources.get("resources", [])
    exports = dict(stack.get("exports") or {})
    absent = [k for k in REQUIRED_EXPORTS if k not in exports]
    if absent:
        raise StackError(f"{files['stack.json']}: exports {absent} missing")
    settings = dict(stack.get("settings") or {})

    def of_type(type_: str) -> list[dict[str, Any]]:
        return [r for r in resources if r.get("type") == type_]

    def one(type_: str) -> dict[str, Any]:
        found = of_type(type_)
        if len(found) != 1:
            raise StackError(f"{files['resources.json']}: expected one {type_}, found {len(found)}")
        return found[0]

    fh = one(FIREHOSE_TYPE)["inputs"]
    s3c = fh.get("extendedS3Configuration") or {}
    firehose = FirehoseSpec(
        stream_name=str(fh.get("name") or exports["deliveryStreamName"]),
        bucket=_s3_bucket_of_arn(s3c.get("bucketArn", "")),
        prefix=str(s3c.get("prefix") or ""),
        error_output_prefix=str(s3c.get("errorOutputPrefix") or ""),
        compression=str(s3c.get("compressionFormat") or "UNCOMPRESSED"),
        buffer_interval_seconds=int(s3c.get("bufferingInterval", 300)),
        buffer_size_mb=int(s3c.get("bufferingSize", 5)),
    )
    fn = one(LAMBDA_TYPE)
    fn_inputs = fn["inputs"]
    env = {k: str(v) for k, v in ((fn_inputs.get("environment") or {}).get("variables") or {}).items()}
    function_name = str(fn_inputs.get("name") or exports["functionName"])
    function_arn = str((fn.get("outputs") or {}).get("arn") or _function_arn_from(definition, function_name))
    tables = {t.name: t for t in (_table_from_inputs(r["inputs"]) for r in of_type(GLUE_TABLE_TYPE))}
    wg = one(WORKGROUP_TYPE)["inputs"]
    results = ((wg.get("configuration") or {}).get("resultConfiguration") or {}).get("outputLocation")
    if not results:
        raise StackError(f"{files['resources.json']}: the workgroup has no result location")
    arn_parts = str(exports["stateMachineArn"]).split(":")
    return LocalStack(
        stage=stage,
        definition=definition,
        settings=settings,
        exports=exports,
        tables=tables,
        firehose=firehose,
        function_name=function_name,
        function_arn=function_arn,
        lambda_env=env,
        lambda_timeout_seconds=int(fn_inputs.get("timeout", settings.get("lambda_timeout_seconds", 60))),
        results_location=str(results),
        source=str(folder),
        account_id=arn_parts[4] if len(arn_parts) > 4 else "123456789012",
        region=arn_parts[3] if len(arn_parts) > 3 else "eu-west-1",
    )


def _function_arn_from(definition: dict[str, Any], function_name: str) -> str:
    """The detector's ARN as the definition names it (the Map's lambda:invoke FunctionName)."""
    for state in definition.get("States", {}).values():
        for inner in (state.get("ItemProcessor") or {}).get("States", {}).values():
            name = (inner.get("Arguments") or {}).get("FunctionName")
            if isinstance(name, str) and name.endswith(function_name):
                return name
    return function_name


def from_settings(
    stage: str,
    overrides: dict[str, Any] | None = None,
    *,
    account_id: str | None = None,
    region: str | None = None,
) -> LocalStack:
    """Render a stage in-process from ``Pulumi.<stage>.yaml`` (plus ``overrides``), as the components do.

    Same pure functions as the program: ``settings.load``, ``Names``, ``catalog_names``,
    ``definition_params`` + ``build_definition``, the detector's ``environment`` and the delivery prefixes.
    """
    from components.catalog import catalog_names
    from components.delivery import ERROR_PREFIX, PREFIX
    from components.detector import environment
    from components.workflow import definition_params
    from functions.detector import schema
    from spec import definition as d
    from spec import naming
    from spec import settings as settings_mod
    from spec.naming import Account, Names
    from tools import harness

    config = harness.stack_config(stage, overrides)
    settings = settings_mod.load(config, stack=stage)
    # The account and Region the stack file pins (as the harness deploys each stack to its own account).
    account_id = account_id or str((config.get("aws:allowedAccountIds") or [harness.ACCOUNT_ID])[0])
    region = region or str(config.get("aws:region", harness.DEFAULT_REGION))
    names = Names(stage=settings.stage, account=Account("aws", region, account_id))
    catalog = catalog_names(names)
    buckets = {role: names.bucket(role) for role in ("raw", "unload", "athena", "analytics")}
    function_name = names.resource("detector")
    function_arn = names.account.arn("lambda", f"function:{function_name}")
    workgroup = names.resource("analytics")
    stream = names.resource("analysis")
    definition = d.build_definition(
        definition_params(
            settings,
            partition="aws",
            catalog=catalog,
            function_arn=function_arn,
            workgroup=workgroup,
            unload_bucket=buckets["unload"],
            analytics_bucket=buckets["analytics"],
        )
    )
    # The definition deploys as JSON text: round-trip it so the local run sees exactly that.
    definition = json.loads(json.dumps(definition))
    raw_loc = f"s3://{buckets['raw']}/{naming.RAW_PREFIX}"
    analysis_loc = f"s3://{buckets['analytics']}/{naming.ANALYSIS_PREFIX}"
    kpi_loc = f"s3://{buckets['analytics']}/{naming.KPI_PREFIX}"
    from spec import queries

    tables = {
        catalog.raw_table: TableSpec(
            catalog.database, catalog.raw_table, raw_loc, raw_loc + "${dt}/", "csv",
            tuple(queries.RAW_COLUMNS), ("dt",), skip_header_lines=1,
        ),
        catalog.analysis_table: TableSpec(
            catalog.database, catalog.analysis_table, analysis_loc, analysis_loc + "dt=${dt}/", "json",
            tuple((n, t) for n, t, _ in schema.ANALYSIS_COLUMNS), ("dt",),
        ),
        catalog.kpi_table: TableSpec(
            catalog.database, catalog.kpi_table, kpi_loc, kpi_loc + "dt=${dt}/", "parquet",
            tuple((n, t) for n, t, _ in queries.KPI_COLUMNS), ("dt",),
        ),
    }  # fmt: skip
    env = {
        k: str(v) for k, v in environment(settings, function_name=function_name, stream_name=stream).items()
    }
    sm_name = names.state_machine
    exports = {
        "stage": settings.stage,
        "stateMachineArn": names.account.state_machine_arn(sm_name),
        "rawBucket": buckets["raw"],
        "unloadBucket": buckets["unload"],
        "athenaResultsBucket": buckets["athena"],
        "analyticsBucket": buckets["analytics"],
        "deliveryStreamName": stream,
        "functionName": function_name,
        "workgroup": workgroup,
        "database": catalog.database,
        "rawTable": catalog.raw_table,
        "analysisTable": catalog.analysis_table,
        "kpiTable": catalog.kpi_table,
    }
    return LocalStack(
        stage=settings.stage,
        definition=definition,
        settings={k: getattr(settings, k) for k in settings.__dataclass_fields__},
        exports=exports,
        tables=tables,
        firehose=FirehoseSpec(
            stream_name=stream,
            bucket=buckets["analytics"],
            prefix=PREFIX,
            error_output_prefix=ERROR_PREFIX,
            compression=settings.firehose_compression,
            buffer_interval_seconds=settings.firehose_buffer_interval_seconds,
            buffer_size_mb=settings.firehose_buffer_size_mb,
        ),
        function_name=function_name,
        function_arn=function_arn,
        lambda_env=env,
        lambda_timeout_seconds=settings.lambda_timeout_seconds,
        results_location=f"s3://{buckets['athena']}/{naming.ATHENA_RESULTS_PREFIX}",
        source="settings",
        account_id=account_id,
        region=region,
    )


def load(stage: str, *, build_dir: Path | None = None) -> LocalStack:
    """``build/<stage>/`` when rendered, else an in-process render (``source == "settings"``)."""
    folder = (build_dir or ROOT / "build") / stage
    if (folder / "definition.asl.json").is_file():
        return from_build(stage, build_dir)
    return from_settings(stage)
