"""How long the detector takes for a batch: the benchmark's measurement, or ``prices.yaml``'s assumption."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from tools.tune.prices import Rates


@dataclass(frozen=True, kw_only=True)
class HandlerSpeed:
    """How long the detector takes for a batch: fixed + per-row CPU (scaled by memory) + Firehose waits.

    ``ms_per_batch`` (given explicitly) replaces the formula for every batch.
    """

    fixed_ms: float
    ms_per_row: float
    firehose_call_ms: float
    ms_per_batch: float | None = None
    source: str = "prices.yaml assumptions"

    def handler_ms(self, rows: int, calls: int, *, memory_mb: int, mb_per_vcpu: float) -> float:
        if self.ms_per_batch is not None:
            return self.ms_per_batch
        # One thread: CPU time stretches below one vCPU (1,769 MB) and does not shrink above it.
        # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html
        cpu_scale = max(1.0, mb_per_vcpu / memory_mb)
        return self.fixed_ms + rows * self.ms_per_row * cpu_scale + calls * self.firehose_call_ms


BENCHMARK_PATH: Final = Path(__file__).resolve().parents[2] / "build" / "benchmarks" / "detector.json"


# The stage of ``benchmarks/bench_detector.py`` whose timing the planner uses: the whole handler (config,
# analysis, packing, delivery loop, log line and metrics) with a Firehose stub that answers at once, so
# the network wait is the planner's own ``firehose_call_ms`` per call on top.
BENCHMARK_STAGE: Final = "lambda_handler + stub Firehose"


class BenchmarkError(ValueError):
    """The benchmark file does not hold the handler timing the planner reads."""


def handler_speed(
    rates: Rates,
    *,
    ms_per_batch: float | None = None,
    benchmark: Path | None = BENCHMARK_PATH,
    input_format: str = "PARQUET",
) -> HandlerSpeed:
    """The detector's timing: ``ms_per_batch`` if given, else the benchmark's, else ``prices.yaml``'s.

    A benchmark file that exists but lacks the timing (an older layout, a run without ``input_format``)
    falls back to ``prices.yaml`` and says why in ``source``, so a plan never silently uses a guess.
    """
    base = HandlerSpeed(
        fixed_ms=rates["detector_fixed_ms"],
        ms_per_row=rates["detector_ms_per_row"],
        firehose_call_ms=rates["firehose_call_ms"],
    )
    if ms_per_batch is not None:
        if ms_per_batch <= 0:
            raise ValueError(f"ms_per_batch={ms_per_batch}: must be positive")
        return replace(base, ms_per_batch=ms_per_batch, source="given (--ms-per-batch)")
    if benchmark is None or not benchmark.exists():
        return base
    try:
        fixed, per_row = speed_from_benchmark(json.loads(benchmark.read_text()), input_format=input_format)
    except (BenchmarkError, json.JSONDecodeError) as error:
        return replace(base, source=f"prices.yaml assumptions ({benchmark.name} not used: {error})")
    return replace(
        base,
        fixed_ms=fixed,
        ms_per_row=per_row,
        source=f"benchmark {benchmark.name} ({BENCHMARK_STAGE}, {input_format})",
    )


def speed_from_benchmark(data: Mapping[str, Any], *, input_format: str = "PARQUET") -> tuple[float, float]:
    """(fixed ms, ms per row at one vCPU) from what ``benchmarks/bench_detector.py`` writes.

    The file has ``throughput``: one entry per stage and input format, each with ``best_rows_per_s`` (the
    sum of every batch's fastest run, on one core) measured at ``batch_size`` rows per batch. One batch
    size cannot separate a fixed part from the per-row part, so the whole per-batch time is per row (exact
    at the benchmark's batch size; smaller batches come out slightly fast). The benchmark's core counts as
    one vCPU. ``BenchmarkError`` names what is missing.
    """
    entries = data.get("throughput")
    if not isinstance(entries, list):
        raise BenchmarkError("no 'throughput' list")
    for entry in entries:
        if (
            isinstance(entry, Mapping)
            and entry.get("stage") == BENCHMARK_STAGE
            and entry.get("format") == input_format
        ):
            rate = entry.get("best_rows_per_s")
            if not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
                raise BenchmarkError(f"{BENCHMARK_STAGE!r} ({input_format}) has best_rows_per_s={rate!r}")
            return 0.0, 1000.0 / rate
    found = sorted({f"{e.get('stage')} ({e.get('format')})" for e in entries if isinstance(e, Mapping)})
    raise BenchmarkError(
        f"no {BENCHMARK_STAGE!r} timing for {input_format}; it has: {', '.join(found) or 'nothing'}"
    )
