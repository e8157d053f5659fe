"""The Distributed Map's items: how a row of the day's UNLOAD becomes one, and the largest item and batch
envelope the definition can produce (the settings' lower bound on MaxInputBytesPerBatch).

Sources: docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig,
ATHENA_DATA manifests), input-output-itembatcher.html, input-output-contextobject.html.
"""

from __future__ import annotations

import json
from typing import Any, Final

from functions.detector import schema
from spec import queries
from spec.expressions import expr

# CSV written by UNLOAD has no header row: the map is given the column names.
CSV_HEADERS: Final = tuple(name for name, _ in queries.UNLOAD_COLUMNS)


def reader_config(unload_format: str) -> dict[str, Any]:
    """The ItemReader's ReaderConfig for the stage's UNLOAD format (ATHENA_DATA manifest)."""
    config: dict[str, Any] = {"InputType": unload_format, "ManifestType": "ATHENA_DATA"}
    if unload_format == "CSV":
        config |= {"CSVHeaderLocation": "GIVEN", "CSVHeaders": list(CSV_HEADERS)}
    return config


# The map item (schema: ``{"r": [values], "i": index}``). Every byte of an item counts against
# the child's 256 KiB input (MaxInputBytesPerBatch), so the row goes positionally, without its keys:
# each of the UNLOAD's columns in schema.ITEM_FIELDS order, null where the row has no such key (JSONata
# drops an undefined value from an array, which would shift the positions). A row that is not an object
# (a JSONL line holding an array, say) goes as its JSON text, which the detector reports as
# row:not_an_object. Map.Item.Index counts items across the whole map run, so with the execution name it
# names the row (docs: step-functions/latest/dg/input-output-contextobject.html, "Context object data for
# Map states"). The UNLOAD file (Map.Item.Source) is not sent: it would be about 70 of every item's bytes,
# for a staging file that expires after stagingRetentionDays; the raw file a reading came from is one
# named query away (spec.queries, raw-files-of-a-device).
ITEM_ROW_EXPRESSION: Final = (
    "($v := $states.context.Map.Item.Value; $type($v) = 'object' ? ["
    + ", ".join(f"($exists($v.{name}) ? $v.{name} : null)" for name in schema.ITEM_FIELDS)
    + "] : $string($v))"
)
ITEM_INDEX_EXPRESSION: Final = "$states.context.Map.Item.Index"


def item_selector() -> dict[str, str]:
    """The Distributed Map's ItemSelector: one positional item per row (see ``ITEM_ROW_EXPRESSION``)."""
    return {
        schema.ITEM_ROW: expr(ITEM_ROW_EXPRESSION),
        schema.ITEM_INDEX: expr(ITEM_INDEX_EXPRESSION),
    }


def batch_input() -> dict[str, str]:
    """The ItemBatcher's BatchInput: the execution's name (the run id) and the run date, in every batch."""
    return {
        schema.BATCH_RUN: expr("$states.context.Execution.Name"),
        "runDate": expr("$runDate"),
    }


# The largest map item and batch input the definition can produce, for the settings' lower bound on
# MaxInputBytesPerBatch: a batch must hold at least one item, or the map fails with
# States.DataLimitExceeded (step-functions/latest/dg/input-output-itembatcher.html), and state input is
# measured in UTF-8 bytes (step-functions/latest/apireference/API_StateEnteredEventDetails.html).
# Each text value is at its bound (queries.TEXT_COLUMN_MAX_CHARS) of astral characters written as escaped
# surrogate pairs (12 bytes of JSON per character, the most any JSON writer spends); each number is the
# longest shortest-round-trip text of a double, quoted as CSV delivers it.
_WORST_CHARACTER: Final = "\U0001f321"
_WORST_NUMBER: Final = "-2.2250738585072014E-308"
# StartExecution names are 1 to 80 characters (API_StartExecution.html, "name"); counted at the worst
# character, as the row's texts are.
_WORST_EXECUTION_NAME: Final = _WORST_CHARACTER * 80
_MAX_ITEM_INDEX: Final = 99_999_999  # MaxItems is at most 100,000,000 (input-output-itemreader.html)


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
    item = {schema.ITEM_ROW: values, schema.ITEM_INDEX: _MAX_ITEM_INDEX}
    return len(json.dumps(item, separators=(",", ":"), ensure_ascii=True).encode())


def max_batch_input_bytes() -> int:
    """Bytes of the largest ``{"Items":[],"BatchInput":{...}}`` envelope: a batch before its items."""
    batch_input = {schema.BATCH_RUN: _WORST_EXECUTION_NAME, "runDate": "YYYY-MM-DD"}
    return len(json.dumps({"Items": [], "BatchInput": batch_input}, separators=(",", ":")).encode())


def min_input_bytes_per_batch() -> int:
    """The smallest MaxInputBytesPerBatch that holds any one exported row: whole KiB above the worst case."""
    worst = max_batch_input_bytes() + max_item_bytes()
    return -(-worst // 1024) * 1024
