"""A worker's cold start reads the function's environment even if the handler was imported before it; the
benchmark entry points import no pipeline at their top, and the local benchmark reports every run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _namespace_after_warm(tmp_path: Path, *, import_first: bool) -> str:
    """The handler's metrics namespace in a fresh process after ``worker.warm`` (as a spawned worker)."""
    script = textwrap.dedent(
        f"""
        import os, sys
        os.environ.pop("POWERTOOLS_METRICS_NAMESPACE", None)
        if {import_first!r}:  # as a spawned worker's re-import of the parent's main module may do
            import functions.detector.handler
        from tools.localrun import worker
        worker.warm({{"POWERTOOLS_METRICS_NAMESPACE": "Sensorflow/Detector",
                     "POWERTOOLS_SERVICE_NAME": "fn"}}, worker.HANDLER_MODULE, {str(tmp_path)!r})
        sys.__stdout__.write(str(worker._S.handler.metrics.namespace))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def test_a_handler_imported_before_the_environment_is_imported_again(tmp_path: Path) -> None:
    assert _namespace_after_warm(tmp_path, import_first=True) == "Sensorflow/Detector"


def test_a_first_import_reads_the_environment(tmp_path: Path) -> None:
    assert _namespace_after_warm(tmp_path, import_first=False) == "Sensorflow/Detector"


# What a worker imports besides its own modules: the parent's main module, again (spawn). The local run's
# own CLI is spared (a main module named __main__ is not re-imported); the benchmark entry points import
# the pipeline inside main(), so the two workers do not each spend a second importing DuckDB, sqlglot and
# the Athena stand-in on the cores the parent's UNLOAD is using.
PIPELINE_ONLY = ("duckdb", "sqlglot", "tools.localrun.run", "tools.localrun.athena")


def test_the_benchmark_entry_points_import_no_pipeline_at_their_top() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import benchmarks.bench_localrun, benchmarks.run
        sys.stdout.write(",".join(m for m in {PIPELINE_ONLY!r} if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == ""


def test_the_local_benchmark_reports_its_fastest_run_beside_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import bench_localrun

    output = tmp_path / "localrun.json"
    monkeypatch.setattr(bench_localrun, "OUTPUT", output)
    # One device-day on dev: far below the throughput target, so the exit status says it was missed.
    status = bench_localrun.main(["--rows", "1440", "--stack", "dev", "--repeat", "2"])
    result = json.loads(output.read_text())
    walls = result["wall_seconds_of_each_run"]
    assert status == 1
    assert (result["rows"], result["repeat"], len(walls)) == (1440, 2, 2)
    assert result["wall_seconds"] == min(walls)
    assert min(walls) <= result["median_wall_seconds"] <= max(walls)
    assert result["rows_per_second"] < result["target_rows_per_second"]
    assert result["ground_truth_ok"] is True
    with pytest.raises(SystemExit):
        bench_localrun.main(["--repeat", "0"])
