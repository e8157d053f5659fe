"""The detector's Lambda environment for tests: a cold start under the variables the component sets."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import pytest

from functions.detector import handler, schema

# What components/detector.py sets for the Powertools utilities (tests/components/test_program.py checks it
# does): the service is the function's name, the namespace the one the alarms read.
FUNCTION_NAME = "sensorflow-dev-detector"
POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME": FUNCTION_NAME,
    "POWERTOOLS_METRICS_NAMESPACE": schema.METRICS_NAMESPACE,
}


@pytest.fixture
def cold_start(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Start a new execution environment: set the function's environment (with overrides), then import
    the handler afresh, since its Logger and Metrics read the environment once, at import."""

    def start(**env: str) -> ModuleType:
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
        for name, value in {**POWERTOOLS_ENV, **env}.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(handler)

    return start
