"""Shared fixtures: one recorded program run per stage, reused by every test that only reads it."""

from __future__ import annotations

import pytest

from spec import settings as settings_module
from tools import harness

STAGES = ("dev", "prod")


@pytest.fixture(scope="session")
def runs() -> dict[str, harness.Run]:
    """The real ``__main__.py`` run under recording mocks with each committed stack file."""
    return {stage: harness.run(stack=stage) for stage in STAGES}


@pytest.fixture(scope="session", params=STAGES)
def run(request: pytest.FixtureRequest, runs: dict[str, harness.Run]) -> harness.Run:
    """Each stage's run in turn."""
    return runs[request.param]


@pytest.fixture(scope="session")
def stage_settings() -> dict[str, settings_module.Settings]:
    return {stage: settings_module.load(harness.stack_config(stage), stack=stage) for stage in STAGES}
