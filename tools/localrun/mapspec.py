"""A Distributed Map state's fields, checked and compiled into a ``MapSpec`` (``distmap`` runs it).

The fields the definition uses, and only those (docs: state-map-distributed.html,
input-output-itemreader.html, input-output-itembatcher.html, input-output-resultwriter.html):
``ItemReader`` over an Athena manifest (``s3:getObject``, ``ManifestType: ATHENA_DATA``), ``ItemSelector``,
``ItemBatcher``, a DISTRIBUTED ``ItemProcessor``, ``Label``, ``ResultWriter`` (``s3:putObject``),
``MaxConcurrency`` and ``ToleratedFailurePercentage``. Anything else is a ``DefinitionError`` that names
the state and the field, raised while the definition loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from functions.detector import schema
from spec import definition
from tools.localrun.expressions import Expression, Template, is_expression
from tools.localrun.machine import DefinitionError, check_fields

ITEM_READER_FIELDS = {"Resource", "ReaderConfig", "Arguments"}
READER_CONFIG_FIELDS = {"InputType", "ManifestType", "CSVHeaderLocation", "CSVHeaders"}
ITEM_BATCHER_FIELDS = {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
RESULT_WRITER_FIELDS = {"Resource", "Arguments", "WriterConfig"}
WRITER_CONFIG_FIELDS = {"Transformation", "OutputType"}
SELECTOR_PATHS = {
    "$states.context.Map.Item.Value": "Value",
    "$states.context.Map.Item.Source": "Source",
    "$states.context.Map.Item.Index": "Index",
    # The definition's positional item (spec.definition): computed column-wise; a test and
    # ``verify`` keep them equal to JSONata's result.
    definition.ITEM_ROW_EXPRESSION: "Values",
}


@dataclass
class MapSpec:
    """A Distributed Map state, checked and compiled."""

    name: str
    reader_args: Template
    input_type: str
    manifest_type: str
    csv_headers: list[str] | None
    csv_header_location: str | None
    selector: dict[str, Any] | None
    selector_template: Template | None
    selector_shape: list[tuple[str, str, Any]] | None
    batched: bool
    max_items: int | Expression | None
    max_bytes: int | Expression | None
    batch_input: Template | None
    max_concurrency: int | Expression
    tolerated_percentage: float | Expression
    label: str
    processor: dict[str, Any]
    execution_type: str
    writer_args: Template | None
    transformation: str
    output_type: str


def compile_map(name: str, raw: dict[str, Any], partition: str) -> MapSpec:
    """Check a Map state's fields and compile its expressions (``DefinitionError`` names the field)."""
    at = f"state {name!r}"
    prefix = f"arn:{partition}:states:::"
    reader = raw.get("ItemReader")
    config = _reader_config(at, reader, prefix)
    selector = raw.get("ItemSelector")
    shape = _selector_shape(at, selector)
    batcher = raw.get("ItemBatcher")
    max_items, max_bytes, batch_input = _item_batcher(at, batcher)
    processor = raw.get("ItemProcessor") or {}
    execution_type = _execution_type(at, processor)
    label = _label(at, raw.get("Label", name))
    writer_args, transformation, output_type = _result_writer(at, raw.get("ResultWriter"), prefix)
    concurrency = _int_or_expr(raw.get("MaxConcurrency", 0), f"{at}, field 'MaxConcurrency'")
    tolerated = _tolerated_percentage(at, raw.get("ToleratedFailurePercentage", 0))
    return MapSpec(
        name=name,
        reader_args=Template(reader["Arguments"], f"{at}, field 'ItemReader.Arguments'"),
        input_type=config["InputType"],
        manifest_type="ATHENA_DATA",
        csv_headers=list(config.get("CSVHeaders") or []) or None,
        csv_header_location=config.get("CSVHeaderLocation"),
        selector=selector,
        selector_template=Template(selector, f"{at}, field 'ItemSelector'") if selector is not None else None,
        selector_shape=shape,
        batched=batcher is not None,
        max_items=max_items,
        max_bytes=max_bytes,
        batch_input=batch_input,
        max_concurrency=concurrency if concurrency is not None else 0,
        tolerated_percentage=tolerated,
        label=label,
        processor=processor,
        execution_type=execution_type,
        writer_args=writer_args,
        transformation=transformation,
        output_type=output_type,
    )


def _reader_config(at: str, reader: Any, prefix: str) -> dict[str, Any]:
    """``ItemReader``: an Athena manifest read with ``s3:getObject``; returns its ``ReaderConfig``."""
    if reader is None:
        raise DefinitionError(
            f"{at}: field 'ItemReader' is required locally (only DISTRIBUTED maps over S3 run)"
        )
    check_fields(f"{at}, field 'ItemReader'", reader, ITEM_READER_FIELDS)
    if reader.get("Resource") != prefix + "s3:getObject":
        raise DefinitionError(
            f"{at}, field 'ItemReader.Resource' is {reader.get('Resource')!r}; supported: {prefix}s3:getObject"
        )
    config = reader.get("ReaderConfig") or {}
    check_fields(f"{at}, field 'ItemReader.ReaderConfig'", config, READER_CONFIG_FIELDS)
    if config.get("ManifestType") != "ATHENA_DATA":
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.ManifestType' is {config.get('ManifestType')!r}; supported: ATHENA_DATA"
        )
    input_type = config.get("InputType")
    if input_type not in ("PARQUET", "CSV", "JSONL"):
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.InputType' is {input_type!r}; with ATHENA_DATA: PARQUET, CSV, JSONL"
        )
    header_location = config.get("CSVHeaderLocation")
    if input_type == "CSV" and header_location not in ("GIVEN", "FIRST_ROW"):
        raise DefinitionError(
            f"{at}, field 'ItemReader.ReaderConfig.CSVHeaderLocation' must be GIVEN or FIRST_ROW"
        )
    if header_location == "GIVEN" and not config.get("CSVHeaders"):
        raise DefinitionError(f"{at}, field 'ItemReader.ReaderConfig.CSVHeaders' is required with GIVEN")
    if set(reader.get("Arguments") or {}) != {"Bucket", "Key"}:
        raise DefinitionError(f"{at}, field 'ItemReader.Arguments' must hold exactly Bucket and Key")
    return config


def _selector_shape(at: str, selector: Any) -> list[tuple[str, str, Any]] | None:
    """``ItemSelector`` as (key, kind, literal) when every value is a known item path or a literal: the
    workers then build items column-wise; None when there is no selector or JSONata must shape each item."""
    if selector is None:
        return None
    if not isinstance(selector, dict):
        raise DefinitionError(f"{at}, field 'ItemSelector' must be an object")
    shape = []
    for key, value in selector.items():
        if is_expression(value) and value[2:-2].strip() in SELECTOR_PATHS:
            kind = SELECTOR_PATHS[value[2:-2].strip()]
            shape.append((key, kind, list(schema.ITEM_FIELDS) if kind == "Values" else None))
        elif not _has_expression(value):
            shape.append((key, "literal", value))
        else:
            return None  # anything else is evaluated per item with JSONata
    return shape


def _item_batcher(
    at: str, batcher: Any
) -> tuple[int | Expression | None, int | Expression | None, Template | None]:
    """``ItemBatcher``: (MaxItemsPerBatch, MaxInputBytesPerBatch, BatchInput), all None without one."""
    if batcher is None:
        return None, None, None
    check_fields(f"{at}, field 'ItemBatcher'", batcher, ITEM_BATCHER_FIELDS)
    max_items = _int_or_expr(batcher.get("MaxItemsPerBatch"), f"{at}, field 'ItemBatcher.MaxItemsPerBatch'")
    max_bytes = _int_or_expr(
        batcher.get("MaxInputBytesPerBatch"), f"{at}, field 'ItemBatcher.MaxInputBytesPerBatch'"
    )
    if max_items is None and max_bytes is None:
        raise DefinitionError(f"{at}, field 'ItemBatcher' needs MaxItemsPerBatch or MaxInputBytesPerBatch")
    batch_input = None
    if "BatchInput" in batcher:
        batch_input = Template(batcher["BatchInput"], f"{at}, field 'ItemBatcher.BatchInput'")
    return max_items, max_bytes, batch_input


def _execution_type(at: str, processor: dict[str, Any]) -> str:
    """``ItemProcessor.ProcessorConfig``: DISTRIBUTED mode; returns the children's ExecutionType."""
    pconfig = processor.get("ProcessorConfig") or {}
    check_fields(f"{at}, field 'ItemProcessor.ProcessorConfig'", pconfig, {"Mode", "ExecutionType"})
    if pconfig.get("Mode") != "DISTRIBUTED":
        raise DefinitionError(
            f"{at}, field 'ItemProcessor.ProcessorConfig.Mode' is {pconfig.get('Mode')!r}; only DISTRIBUTED runs locally"
        )
    if pconfig.get("ExecutionType") not in ("EXPRESS", "STANDARD"):
        raise DefinitionError(
            f"{at}, field 'ItemProcessor.ProcessorConfig.ExecutionType' must be EXPRESS or STANDARD"
        )
    return pconfig["ExecutionType"]


def _label(at: str, label: Any) -> str:
    if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", label):
        raise DefinitionError(f"{at}, field 'Label' must be 1-40 letters, digits, '-' or '_'")
    return label


def _result_writer(at: str, writer: Any, prefix: str) -> tuple[Template | None, str, str]:
    """``ResultWriter``: (Arguments, Transformation, OutputType); without a Resource nothing is written."""
    if writer is None:
        return None, "COMPACT", "JSON"
    check_fields(f"{at}, field 'ResultWriter'", writer, RESULT_WRITER_FIELDS)
    wconfig = writer.get("WriterConfig") or {}
    check_fields(f"{at}, field 'ResultWriter.WriterConfig'", wconfig, WRITER_CONFIG_FIELDS)
    transformation = wconfig.get("Transformation", "NONE")
    output_type = wconfig.get("OutputType", "JSON")
    if transformation not in ("COMPACT", "NONE") or output_type not in ("JSON", "JSONL"):
        raise DefinitionError(
            f"{at}, field 'ResultWriter.WriterConfig': Transformation COMPACT|NONE, OutputType JSON|JSONL"
        )
    if "Resource" not in writer:
        return None, transformation, output_type
    if writer["Resource"] != prefix + "s3:putObject":
        raise DefinitionError(f"{at}, field 'ResultWriter.Resource' must be {prefix}s3:putObject")
    if set(writer.get("Arguments") or {}) - {"Bucket", "Prefix"}:
        raise DefinitionError(f"{at}, field 'ResultWriter.Arguments' may hold Bucket and Prefix only")
    return (
        Template(writer.get("Arguments") or {}, f"{at}, field 'ResultWriter.Arguments'"),
        transformation,
        output_type,
    )


def _tolerated_percentage(at: str, tolerated: Any) -> float | Expression:
    if is_expression(tolerated):
        return Expression(tolerated, f"{at}, field 'ToleratedFailurePercentage'")
    if not isinstance(tolerated, int | float) or not 0 <= tolerated <= 100:
        raise DefinitionError(f"{at}, field 'ToleratedFailurePercentage' must be 0-100")
    return tolerated


def _has_expression(value: Any) -> bool:
    if is_expression(value):
        return True
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def _int_or_expr(value: Any, where: str) -> int | Expression | None:
    if value is None:
        return None
    if is_expression(value):
        return Expression(value, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DefinitionError(
            f"{where} must be a non-negative integer or a JSONata expression, got {value!r}"
        )
    return value
