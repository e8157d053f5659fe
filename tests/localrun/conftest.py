"""Shared fixtures: one small simulated day (a few thousand readings) and a pipeline factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.localrun import stack as stack_mod
from tools.localrun.run import LocalPipeline
from tools.simulate import Fleet, simulate

DAY = "2025-06-01"


@pytest.fixture(scope="session")
def sim_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Six devices, one day every 5 minutes (1,728 readings), 2% anomalies and 2% malformed rows."""
    folder = tmp_path_factory.mktemp("sim")
    truth = simulate(
        Fleet(devices=6, days=1, interval_seconds=300, seed=7, anomaly_share=0.02, malformed_share=0.02),
        folder,
    )
    return folder, truth


@pytest.fixture
def make_pipeline(tmp_path: Path, sim_day: tuple[Path, Any]) -> Callable[..., LocalPipeline]:
    """A pipeline over the simulated day for a stage with setting overrides; closed after the test."""
    made: list[LocalPipeline] = []

    def make(
        stage: str = "dev", overrides: dict[str, Any] | None = None, *, folder: str = "run", **kwargs: Any
    ) -> LocalPipeline:
        local = stack_mod.rendered(stage, overrides)
        pipeline = LocalPipeline(local, tmp_path / folder, verify=kwargs.pop("verify", True), **kwargs)
        pipeline.put_raw(sim_day[0])
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
