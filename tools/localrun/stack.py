"""What a local run runs: one stage's rendered definition, settings and resources.

Everything comes from ``make synth``'s rendering of the stage: ``definition.asl.json`` (the very
definition that deploys), ``stack.json`` (settings and stack exports) and ``resources.json`` (every
resource with its inputs). From those come the Glue tables the Athena stand-in reads, the Firehose
stream's prefix, compression and buffer, the detector's environment and the workgroup's result location.

``from_build`` reads the files from ``build/<stage>/``. ``rendered`` takes the same files from
``tools.synth.render`` in-process (the program under the recording mocks, with setting overrides): tests
use it to vary one setting without a synth; the CLI uses it only when ``build/<stage>`` is missing and
says so.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The files of a rendering the local run reads.
FILES = ("definition.asl.json", "stack.json", "resources.json")
# ``LocalStack.source`` of a stack rendered in-process rather than read from a build folder.
IN_PROCESS = "in-process render"

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
    source: str  # where it came from: a build folder, or IN_PROCESS
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
    paths = {name: folder / name for name in FILES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise StackError(f"stage {stage!r} is not rendered: missing {', '.join(missing)}; run `make synth`")
    return _from_files(stage, {name: path.read_text() for name, path in paths.items()}, source=str(folder))


def rendered(stage: str, overrides: Mapping[str, Any] | None = None) -> LocalStack:
    """Render a stage in-process as ``make synth`` does (``tools.synth.render``), with setting
    ``overrides``, and load it as ``from_build`` loads the written files."""
    return _from_files(
        stage, dict(_render(stage, json.dumps(overrides or {}, sort_keys=True))), source=IN_PROCESS
    )


@functools.cache
def _render(stage: str, overrides_json: str) -> tuple[tuple[str, str], ...]:
    """The rendering's files, once per stage and overrides in a process: a render runs the whole program
    under the recording mocks (a second or so), and the tests ask for the same few renderings many times.
    Texts are immutable, so every caller still parses its own ``LocalStack``."""
    from tools import synth

    return tuple(synth.render(stage, json.loads(overrides_json)).items())


def _from_files(stage: str, texts: Mapping[str, str], *, source: str) -> LocalStack:
    """A ``LocalStack`` from a rendering's files (``FILES``: name -> text); ``source`` names where they are
    for messages."""
    files = {name: f"{source}/{name}" for name in FILES}
    definition = json.loads(texts["definition.asl.json"])
    stack = json.loads(texts["stack.json"])
    resources = json.loads(texts["resources.json"])
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
        source=source,
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


def load(stage: str, *, build_dir: Path | None = None) -> LocalStack:
    """``build/<stage>/`` when rendered, else an in-process render (``source == IN_PROCESS``)."""
    folder = (build_dir or ROOT / "build") / stage
    if (folder / "definition.asl.json").is_file():
        return from_build(stage, build_dir)
    return rendered(stage)
