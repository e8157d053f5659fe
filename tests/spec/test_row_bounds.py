"""Any exported row fits one map batch: the export bounds its texts, the settings' minimum holds the rest."""

from __future__ import annotations

import pytest

from functions.detector import schema
from spec import definition, map_items, queries, settings
from tools.tune.packing import BatchingError, batch_sizes

from .test_definition import stage_definition


def test_every_text_column_of_the_raw_table_is_bounded_by_the_export() -> None:
    texts = [name for name, kind in queries.RAW_COLUMNS if kind == "string"]
    assert texts
    sql = queries.unload_day(queries.TableNames("db", "raw", "a", "k"), fmt="PARQUET", compression="SNAPPY")
    for name in texts:
        limit = queries.TEXT_COLUMN_MAX_CHARS[name]
        assert f'substr(CAST("{name}" AS varchar), 1, {limit}) AS "{name}"' in sql
        assert f"WHEN length(CAST(\"{name}\" AS varchar)) > {limit} THEN '{name}'" in sql
    assert sql.count(f'AS "{schema.TRUNCATED_FIELD}"') == 1


def test_the_worst_case_item_is_computed_from_the_shapes_the_definition_builds() -> None:
    # max_item_bytes and max_batch_input_bytes assume these keys: a change here must change them too
    map_state = definition.map_state(stage_definition("dev"))
    assert set(map_state["ItemSelector"]) == set(schema.ITEM_KEYS)
    assert set(map_state["ItemBatcher"]["BatchInput"]) == {schema.BATCH_RUN, "runDate"}
    # the positional row carries every column the export writes, the truncated names included
    assert {name for name, _kind in queries.UNLOAD_COLUMNS} == set(schema.ITEM_FIELDS)


def test_the_settings_minimum_holds_the_largest_exported_row() -> None:
    minimum = settings.MIN_INPUT_BYTES_PER_BATCH
    worst_item = map_items.max_item_bytes()
    worst_input = map_items.max_batch_input_bytes() - len('{"Items":[],"BatchInput":}')
    # the local map batches as Step Functions does: the worst row alone fits a batch at the minimum ...
    assert batch_sizes([worst_item], max_items=1, max_bytes=minimum, batch_input_bytes=worst_input) == [1]
    # ... and the bound is tight to the KiB: a KiB less would not hold it
    with pytest.raises(BatchingError):
        batch_sizes([worst_item], max_items=1, max_bytes=minimum - 1024, batch_input_bytes=worst_input)
    for stage in ("dev", "prod"):
        assert (
            stage_definition(stage)["States"]["DetectAnomalies"]["ItemBatcher"]["MaxInputBytesPerBatch"]
            >= minimum
        )


def test_a_batch_size_below_the_minimum_is_refused_with_the_minimum() -> None:
    minimum = settings.MIN_INPUT_BYTES_PER_BATCH
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"sensorflow:maxInputBytesPerBatch": minimum - 1}, stack="dev")
    assert "maxInputBytesPerBatch" in str(caught.value)
    assert f"{minimum:,}" in str(caught.value)
    assert settings.load({"sensorflow:maxInputBytesPerBatch": minimum}, stack="dev")
