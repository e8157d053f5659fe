"""Prices as data, overrides, the stack-level API, the benchmark reader and the command line."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from spec import settings
from tools import harness
from tools.tune import limits, plan_stack, prices
from tools.tune.__main__ import main
from tools.tune.speed import BENCHMARK_STAGE, BenchmarkError, handler_speed, speed_from_benchmark


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
    dev_settings = settings.load(harness.stack_config("dev"), stack="dev")
    prod_settings = settings.load(harness.stack_config("prod"), stack="prod")
    # Each stack's MaxItemsPerBatch binds: the planner fills the input with as many items as fit.
    assert dev.ours.batches == math.ceil(1_000_000 / dev_settings.max_items_per_batch)
    assert prod.ours.batches == math.ceil(1_000_000 / prod_settings.max_items_per_batch)
    assert dev.ours.parallelism.effective == dev_settings.max_concurrency
    assert dev.ours.parallelism.binding == (limits.MAX_CONCURRENCY,)
    assert prod.ours.parallelism.binding == (limits.MAX_CONCURRENCY,)
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
    plan = plan_stack(
        "dev",
        0,
        item_sizes=items,
        record_sizes=[780] * 1_000,
        benchmark=None,
        what_if={"maxItemsPerBatch": 250, "maxInputBytesPerBatch": 131_072},
    )
    assert plan.workload.exact
    assert plan.workload.rows == 1_000
    assert plan.ours.batches == 4  # 250 items per batch: the item limit, as 250 x ~340 B < 131,072


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file ``make bench`` writes, written by the benchmark itself (small, so the test stays quick)."""
    from benchmarks import bench_detector

    path = tmp_path_factory.mktemp("bench") / "detector.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert bench_detector.main(["--rows", "1000", "--repeat", "1", "--output", str(path)]) == 0
    return path


def test_the_planner_reads_the_timing_the_benchmark_writes(benchmark_file):
    data = json.loads(benchmark_file.read_text())
    [entry] = [e for e in data["throughput"] if e["stage"] == BENCHMARK_STAGE and e["format"] == "PARQUET"]
    fixed, per_row = speed_from_benchmark(data)
    assert (fixed, per_row) == (0.0, pytest.approx(1000 / entry["best_rows_per_s"]))
    assert speed_from_benchmark(data, input_format="CSV")[1] != per_row  # each format its own entry
    rates = prices.load()
    speed = handler_speed(rates, benchmark=benchmark_file)
    assert speed.ms_per_row == per_row != rates["detector_ms_per_row"]
    assert speed.source == f"benchmark detector.json ({BENCHMARK_STAGE}, PARQUET)"
    # make tune uses it: the plan's detector time per batch is the benchmark's (scaled to the memory).
    plan = plan_stack("prod", 1_000_000, benchmark=benchmark_file)
    assert plan.speed.ms_per_row == per_row
    scale = max(1.0, rates["lambda_mb_per_vcpu"] / plan.capacity.lambda_memory_mb)
    rows = plan.capacity.max_items_per_batch  # prod's full batch: its items fit the input limit
    assert plan.ours.handler_ms == pytest.approx(rows * per_row * scale + rates["firehose_call_ms"])


def test_a_benchmark_without_the_timing_falls_back_and_says_why(tmp_path, benchmark_file):
    rates = prices.load()
    data = json.loads(benchmark_file.read_text())
    data["throughput"] = [e for e in data["throughput"] if e["stage"] != BENCHMARK_STAGE]
    path = tmp_path / "detector.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchmarkError, match="no 'lambda_handler \\+ stub Firehose' timing for PARQUET"):
        speed_from_benchmark(data)
    speed = handler_speed(rates, benchmark=path)
    assert speed.ms_per_row == rates["detector_ms_per_row"]
    assert "detector.json not used: no 'lambda_handler + stub Firehose' timing" in speed.source
    path.write_text("{not json")
    assert "not used" in handler_speed(rates, benchmark=path).source
    assert handler_speed(rates, ms_per_batch=80, benchmark=benchmark_file).ms_per_batch == 80
    assert (
        handler_speed(rates, benchmark=tmp_path / "missing.json").ms_per_row == rates["detector_ms_per_row"]
    )
    with pytest.raises(ValueError, match="ms_per_batch=0"):
        handler_speed(rates, ms_per_batch=0)


def test_cli_markdown(capsys):
    assert main(["--stack", "dev", "--rows", "1000000", "--ms-per-batch", "200"]) == 0
    out = capsys.readouterr().out
    assert "| dev, 1,000,000 readings | sensorflow | reference sample | reference / ours |" in out
    assert "## Recommendations" in out
    assert "**maxConcurrency = " in out


def test_cli_json(capsys):
    assert main(["--stack", "prod", "--rows", "1000", "--json", "--set", "maxConcurrency=300"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ours"]["parallelism"]["binding"] == [limits.RESERVED]
    assert data["ratios"]["child_executions"] > 1
    assert any("above lambdaReservedConcurrency" in w["message"] for w in data["warnings"])


def test_cli_bad_price_exits_2_naming_it(capsys):
    assert main(["--stack", "dev", "--rows", "10", "--price", "lambda_price=1"]) == 2
    err = capsys.readouterr().err
    assert "'lambda_price'" in err
    assert "lambda_per_request" in err
