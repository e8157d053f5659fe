"""Prices as data, overrides, the stack-level API, the benchmark reader and the command line."""

from __future__ import annotations

import json
import math

import pytest

from components import settings
from tools import harness
from tools.tune import model, plan_stack, prices
from tools.tune.__main__ import main


def test_every_entry_has_a_value_unit_source_and_date():
    rates = prices.load()
    assert len(rates) > 20
    sections = {rate.section for rate in rates.entries.values()}
    assert sections == set(prices.SECTIONS)
    for rate in rates.entries.values():
        assert rate.value >= 0, rate.name
        assert rate.unit.strip(), rate.name
        assert rate.source.strip(), rate.name
        assert rate.read.strip(), rate.name


def test_an_unknown_override_names_it_and_lists_the_allowed_names():
    with pytest.raises(prices.PriceOverrideError) as error:
        prices.load(["firehose_per_gigabyte=0.03"])
    message = str(error.value)
    assert "'firehose_per_gigabyte'" in message
    assert "allowed:" in message
    assert "firehose_per_gb" in message
    assert "lambda_arm64_per_gb_second" in message


@pytest.mark.parametrize(
    "bad", ["athena_per_tb=-1", "athena_per_tb=abc", "athena_per_tb=nan", "=5", "athena_per_tb"]
)
def test_bad_override_values_are_refused(bad):
    with pytest.raises(prices.PriceOverrideError):
        prices.load([bad])


def test_every_bad_override_is_reported_at_once():
    with pytest.raises(prices.PriceOverrideError, match=r"2 bad price override"):
        prices.load(["nope=1", "athena_per_tb=-1"])


def test_stage_overrides_apply_and_the_command_line_wins():
    rates = prices.load(["athena_per_tb=7"], stage_overrides=["athena_per_tb=6", "firehose_per_gb=0.031"])
    assert rates["athena_per_tb"] == 7
    assert rates["firehose_per_gb"] == 0.031
    assert {r.name for r in rates.overridden()} == {"athena_per_tb", "firehose_per_gb"}
    assert prices.load()["athena_per_tb"] == 5.0


def test_plan_stack_reads_each_stage():
    dev = plan_stack("dev", 1_000_000, benchmark=None)
    prod = plan_stack("prod", 1_000_000, benchmark=None)
    assert dev.ours.batches == math.ceil(1_000_000 / 250)  # dev's MaxItemsPerBatch binds
    assert prod.ours.batches == math.ceil(1_000_000 / 1_500)  # prod's MaxItemsPerBatch binds
    dev_settings = settings.load(harness.stack_config("dev"), stack="dev")
    assert dev.ours.parallelism.effective == dev_settings.max_concurrency
    assert dev.ours.parallelism.binding == (model.MAX_CONCURRENCY,)
    assert prod.ours.parallelism.binding == (model.MAX_CONCURRENCY,)
    assert dev.capacity.delivery_wait_seconds == 60 + 60
    assert prod.reference.cost_per_run > 100 * prod.ours.cost_per_run


def test_plan_stack_what_if_and_price_overrides():
    plan = plan_stack(
        "prod",
        1_000_000,
        what_if={"maxConcurrency": 0},
        price_overrides=["firehose_bytes_per_second=1e10", "firehose_requests_per_second=1e6"],
        benchmark=None,
    )
    reserved = settings.load(harness.stack_config("prod"), stack="prod").lambda_reserved_concurrency
    assert plan.ours.parallelism.effective == reserved  # reserved concurrency binds once MaxConcurrency is 0
    assert not plan.ours.firehose.binds
    with pytest.raises(ValueError, match="unknown what-if setting"):
        plan_stack("prod", 10, what_if={"maxConcurency": 3})


def test_plan_stack_exact_sizes():
    items = [300, 380] * 500
    plan = plan_stack("dev", 0, item_sizes=items, record_sizes=[780] * 1_000, benchmark=None)
    assert plan.workload.exact
    assert plan.workload.rows == 1_000
    assert plan.ours.batches == 4  # 250 items per batch: the item limit, as 250 x ~340 B < 131,072


def test_benchmark_forms_and_the_explicit_duration(tmp_path):
    assert model.speed_from_benchmark({"ms_per_row": 0.02, "fixed_ms": 3}) == (3.0, 0.02)
    assert model.speed_from_benchmark({"results": {"ms_per_batch": 50, "rows_per_batch": 500}}) == (0.0, 0.1)
    assert model.speed_from_benchmark({"rows_per_second": 1}) is None
    rates = prices.load()
    path = tmp_path / "detector.json"
    path.write_text(json.dumps({"ms_per_row": 0.01, "fixed_ms": 2}))
    speed = model.handler_speed(rates, benchmark=path)
    assert (speed.fixed_ms, speed.ms_per_row) == (2, 0.01)
    assert "benchmark" in speed.source
    assert model.handler_speed(rates, ms_per_batch=80, benchmark=path).ms_per_batch == 80
    assert (
        model.handler_speed(rates, benchmark=tmp_path / "missing.json").ms_per_row
        == rates["detector_ms_per_row"]
    )
    with pytest.raises(ValueError, match="ms_per_batch=0"):
        model.handler_speed(rates, ms_per_batch=0)


def test_cli_markdown(capsys):
    assert main(["--stack", "dev", "--rows", "1000000", "--ms-per-batch", "200"]) == 0
    out = capsys.readouterr().out
    assert "| dev, 1,000,000 readings | sensorflow | reference sample | reference / ours |" in out
    assert "## Recommendations" in out
    assert "**maxConcurrency = " in out


def test_cli_json(capsys):
    assert main(["--stack", "prod", "--rows", "1000", "--json", "--set", "maxConcurrency=300"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ours"]["parallelism"]["binding"] == [model.RESERVED]
    assert data["ratios"]["child_executions"] > 1
    assert any("above lambdaReservedConcurrency" in w["message"] for w in data["warnings"])


def test_cli_bad_price_exits_2_naming_it(capsys):
    assert main(["--stack", "dev", "--rows", "10", "--price", "lambda_price=1"]) == 2
    err = capsys.readouterr().err
    assert "'lambda_price'" in err
    assert "lambda_per_request" in err
