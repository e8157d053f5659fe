"""The detector's configuration: read from the environment the Pulumi component sets, validated once.

A configuration problem is a deployment error, not bad input: it raises ``ConfigError`` naming the
variable, its value and what is allowed, so the invocation fails loudly (and Step Functions retries or
fails the run) instead of silently analysing readings against wrong thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from . import schema

# The reference sample's thresholds (strict inequalities); the stack's settings normally override them.
DEFAULT_THRESHOLDS: Final = {
    "TEMPERATURE_HIGH": 35.0,
    "TEMPERATURE_LOW": -10.0,
    "HUMIDITY_HIGH": 95.0,
    "HUMIDITY_LOW": 5.0,
    "BATTERY_LOW": 20.0,
}
DEFAULT_MAX_ATTEMPTS: Final = 8
MAX_ATTEMPTS_LIMIT: Final = 20  # the settings table allows 1..20 (spec/settings.py, deliveryMaxAttempts)


class ConfigError(ValueError):
    """The detector's environment is wrong (a deployment problem, never a reading problem)."""


class InputFormat(StrEnum):
    """How the UNLOAD wrote the rows the map reads (settings ``unloadFormat``).

    In CSV every value arrives as a string (the map's CSV reader does not type columns), so numeric
    strings are parsed; in PARQUET and JSONL numbers arrive as JSON numbers and a string is invalid.
    """

    PARQUET = "PARQUET"
    JSONL = "JSONL"
    CSV = "CSV"


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Anomaly thresholds; every rule is a strict inequality (exactly 35 °C is not a spike)."""

    temperature_high: float = DEFAULT_THRESHOLDS["TEMPERATURE_HIGH"]
    temperature_low: float = DEFAULT_THRESHOLDS["TEMPERATURE_LOW"]
    humidity_high: float = DEFAULT_THRESHOLDS["HUMIDITY_HIGH"]
    humidity_low: float = DEFAULT_THRESHOLDS["HUMIDITY_LOW"]
    battery_low: float = DEFAULT_THRESHOLDS["BATTERY_LOW"]

    def __post_init__(self) -> None:
        for name in ("temperature_high", "temperature_low", "humidity_high", "humidity_low", "battery_low"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"threshold {name}={value!r}: expected a finite number")
        if not self.temperature_low < self.temperature_high:
            raise ConfigError(
                f"TEMPERATURE_LOW={self.temperature_low} must be below TEMPERATURE_HIGH={self.temperature_high}"
            )
        if not self.humidity_low < self.humidity_high:
            raise ConfigError(
                f"HUMIDITY_LOW={self.humidity_low} must be below HUMIDITY_HIGH={self.humidity_high}"
            )


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Everything one invocation needs from its environment."""

    thresholds: Thresholds = Thresholds()
    input_format: InputFormat = InputFormat.PARQUET
    stream_name: str | None = None  # required only to deliver; pure processing works without it
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ConfigError(
                f"{schema.ENV_MAX_ATTEMPTS}={self.max_attempts}: expected an integer from 1 to {MAX_ATTEMPTS_LIMIT}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DetectorConfig:
        """Read the configuration from environment variables (``schema.ENV_*``); unset means default."""
        values: dict[str, float] = {}
        for name in schema.ENV_THRESHOLDS:
            raw = env.get(name, "").strip()
            if not raw:
                values[name] = DEFAULT_THRESHOLDS[name]
                continue
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or "_" in raw:
                raise ConfigError(f"{name}={raw!r}: expected a finite number such as 35 or -10.5")
            values[name] = number

        raw_format = env.get(schema.ENV_INPUT_FORMAT, "").strip().upper() or InputFormat.PARQUET.value
        try:
            input_format = InputFormat(raw_format)
        except ValueError:
            allowed = ", ".join(f.value for f in InputFormat)
            raise ConfigError(
                f"{schema.ENV_INPUT_FORMAT}={env.get(schema.ENV_INPUT_FORMAT)!r}: expected one of {allowed}"
            ) from None

        raw_attempts = env.get(schema.ENV_MAX_ATTEMPTS, "").strip()
        if raw_attempts:
            if not raw_attempts.isdigit():
                raise ConfigError(
                    f"{schema.ENV_MAX_ATTEMPTS}={raw_attempts!r}: expected an integer from 1 to {MAX_ATTEMPTS_LIMIT}"
                )
            max_attempts = int(raw_attempts)
        else:
            max_attempts = DEFAULT_MAX_ATTEMPTS

        return cls(
            thresholds=Thresholds(
                temperature_high=values["TEMPERATURE_HIGH"],
                temperature_low=values["TEMPERATURE_LOW"],
                humidity_high=values["HUMIDITY_HIGH"],
                humidity_low=values["HUMIDITY_LOW"],
                battery_low=values["BATTERY_LOW"],
            ),
            input_format=input_format,
            stream_name=env.get(schema.ENV_STREAM, "").strip() or None,
            max_attempts=max_attempts,
        )
