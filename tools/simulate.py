"""Sensor simulator: a fleet's raw readings in the raw table's CSV layout, with a ground truth.

``python -m tools.simulate --devices 20 --days 1 --interval 300 --out DIR`` writes
``DIR/daily-data/<YYYY-MM-DD>/<device>.csv`` (header ``deviceid,timestamp,temperature,humidity,
batterylevel,latitude,longitude``, the reference sample's layout the raw table reads) and
``DIR/ground-truth.parquet``: one row per reading with what the pipeline must make of it.

* Values random-walk within normal bands (temperature 10-32 °C, humidity 20-85 %); each device sits at a
  fixed position; batteries drain a few points a day, and a share of devices have weak batteries that
  cross the low-battery threshold, so ``low_battery`` occurs (the reference sample's generator never
  produces one).
* Injected anomalies, a configurable share of readings, cycle through every kind: temperature above and
  below its thresholds, humidity above and below, and a battery brown-out reading below the threshold.
* Malformed rows, a configurable share: a non-numeric value, an empty value, a malformed timestamp,
  missing trailing columns, an empty device id, a physically impossible value. Each must come out of the
  pipeline as exactly one record with invalid reasons; its usable values are still judged by the rules
  (humidity 150 is also a humidity anomaly), so its verdict is ``anomalies_detected`` if one breaks.
* Seeded (``numpy.random.default_rng``): the same arguments always give the same files.

The expected verdict of every reading is computed from the values actually written, with the stage's
thresholds (strict inequalities, as the detector applies them).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HEADER: Final = "deviceid,timestamp,temperature,humidity,batterylevel,latitude,longitude"
ANOMALY_KINDS: Final = ("temperature_high", "temperature_low", "humidity_high", "humidity_low", "battery_dip")
MALFORMED_KINDS: Final = (
    "non_numeric", "empty_value", "bad_timestamp", "missing_columns", "empty_deviceid", "out_of_range",
)  # fmt: skip
NUMERIC: Final = ("temperature", "humidity", "batterylevel", "latitude", "longitude")
DEFAULT_START: Final = date(2025, 6, 1)


class SimulationError(ValueError):
    """Arguments the simulator cannot honour."""


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The detector's rules (strict inequalities); defaults are the reference sample's."""

    temperature_high: float = 35.0
    temperature_low: float = -10.0
    humidity_high: float = 95.0
    humidity_low: float = 5.0
    battery_low: float = 20.0

    def anomalies(self, t: float | None, h: float | None, b: float | None) -> list[str]:
        """The rules broken by the finite values (None: unusable, breaks no rule), as the detector judges."""
        found = []
        if t is not None and (t > self.temperature_high or t < self.temperature_low):
            found.append("temperature_spike")
        if h is not None and (h > self.humidity_high or h < self.humidity_low):
            found.append("humidity_anomaly")
        if b is not None and b < self.battery_low:
            found.append("low_battery")
        return found


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """What to simulate."""

    devices: int = 20
    days: int = 1
    interval_seconds: int = 300
    start: date = DEFAULT_START
    seed: int = 42
    anomaly_share: float = 0.01
    malformed_share: float = 0.01
    weak_battery_share: float = 0.1
    thresholds: Thresholds = Thresholds()

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.devices <= 100_000:
            problems.append(f"devices={self.devices}: expected 1 to 100,000")
        if not 1 <= self.days <= 366:
            problems.append(f"days={self.days}: expected 1 to 366")
        if not 1 <= self.interval_seconds <= 86_400 or 86_400 % self.interval_seconds:
            problems.append(f"interval={self.interval_seconds}: expected a divisor of 86,400 seconds")
        for name in ("anomaly_share", "malformed_share", "weak_battery_share"):
            value = getattr(self, name)
            if not 0 <= value <= 0.5:
                problems.append(f"{name}={value}: expected 0 to 0.5")
        if problems:
            raise SimulationError("; ".join(problems))

    @property
    def readings_per_day(self) -> int:
        return 86_400 // self.interval_seconds


def _fmt2(values: np.ndarray) -> list[str]:
    return [f"{v:.2f}" for v in values.tolist()]


def _parse(text: str | None) -> float | None:
    """What the raw table (TRY_CAST to double) and the detector make of a written value."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


TRUTH_SCHEMA: Final = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("deviceid", pa.string()),
        ("timestamp", pa.string()),
        *((name, pa.float64()) for name in NUMERIC),
        ("status", pa.string()),
        ("anomalies", pa.list_(pa.string())),
        ("injected", pa.string()),
        ("malformed", pa.string()),
    ]
)


def simulate(fleet: Fleet, out: Path) -> pa.Table:
    """Write the CSV files under ``out/daily-data/`` and return (and write) the ground truth."""
    rng = np.random.default_rng(fleet.seed)
    n = fleet.readings_per_day
    names = [f"sensor-{i:05d}" for i in range(fleet.devices)]
    lat = rng.uniform(-60, 60, fleet.devices).round(6)
    lon = rng.uniform(-170, 170, fleet.devices).round(6)
    temp_level = rng.uniform(16, 26, fleet.devices)
    hum_level = rng.uniform(35, 65, fleet.devices)
    weak = rng.random(fleet.devices) < fleet.weak_battery_share
    battery = np.where(weak, rng.uniform(21, 26, fleet.devices), rng.uniform(60, 100, fleet.devices))
    drain_per_day = np.where(weak, rng.uniform(6, 12, fleet.devices), rng.uniform(1, 4, fleet.devices))

    # The ground truth is collected a device at a time into Arrow (a Python object per value would take
    # about 0.7 KB per reading, 0.7 GB for a million): each device's lists become one small table.
    parts: list[pa.Table] = []
    injection_counter = 0
    malformed_counter = 0
    for day_number in range(fleet.days):
        day = fleet.start + timedelta(days=day_number)
        folder = out / "daily-data" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        stamps = [
            (midnight + timedelta(seconds=k * fleet.interval_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for k in range(n)
        ]
        for d, device in enumerate(names):
            truth: dict[str, list] = {name: [] for name in TRUTH_SCHEMA.names}
            temp = np.clip(temp_level[d] + np.cumsum(rng.normal(0, 0.25, n)), 10, 32)
            hum = np.clip(hum_level[d] + np.cumsum(rng.normal(0, 0.6, n)), 20, 85)
            drain = drain_per_day[d] * (np.arange(1, n + 1) / n) + np.abs(rng.normal(0, 0.02, n))
            batt = np.clip(battery[d] - np.maximum.accumulate(drain), 0, 100)
            battery[d] = batt[-1]
            temp_level[d], hum_level[d] = float(temp[-1]), float(hum[-1])
            texts = {
                "temperature": _fmt2(temp),
                "humidity": _fmt2(hum),
                "batterylevel": _fmt2(batt),
                "latitude": [f"{lat[d]:.6f}"] * n,
                "longitude": [f"{lon[d]:.6f}"] * n,
            }
            injected = [""] * n
            malformed = [""] * n
            draws = rng.random(n)
            kinds = rng.random(n)
            for k in np.flatnonzero(draws < fleet.malformed_share + fleet.anomaly_share).tolist():
                if draws[k] < fleet.malformed_share:
                    malformed[k] = MALFORMED_KINDS[malformed_counter % len(MALFORMED_KINDS)]
                    malformed_counter += 1
                else:
                    injected[k] = ANOMALY_KINDS[injection_counter % len(ANOMALY_KINDS)]
                    injection_counter += 1
                    magnitude = kinds[k]
                    if injected[k] == "temperature_high":
                        texts["temperature"][k] = (
                            f"{fleet.thresholds.temperature_high + 3 + 12 * magnitude:.2f}"
                        )
                    elif injected[k] == "temperature_low":
                        texts["temperature"][k] = (
                            f"{fleet.thresholds.temperature_low - 3 - 12 * magnitude:.2f}"
                        )
                    elif injected[k] == "humidity_high":
                        texts["humidity"][k] = (
                            f"{min(100.0, fleet.thresholds.humidity_high + 1 + 4 * magnitude):.2f}"
                        )
                    elif injected[k] == "humidity_low":
                        texts["humidity"][k] = (
                            f"{max(0.0, fleet.thresholds.humidity_low - 1 - 4 * magnitude):.2f}"
                        )
                    else:
                        texts["batterylevel"][k] = (
                            f"{max(0.0, fleet.thresholds.battery_low - 2 - 15 * magnitude):.2f}"
                        )
            lines = [HEADER]
            for k in range(n):
                fields = [device, stamps[k], *(texts[c][k] for c in NUMERIC)]
                kind = malformed[k]
                if kind == "non_numeric":
                    fields[2 + k % 5] = "n/a"
                elif kind == "empty_value":
                    fields[2 + k % 5] = ""
                elif kind == "bad_timestamp":
                    fields[1] = ("2025-13-45T25:61:00Z", "yesterday", stamps[k][:10])[k % 3]
                elif kind == "missing_columns":
                    fields = fields[: 2 + k % 4]
                elif kind == "empty_deviceid":
                    fields[0] = ""
                elif kind == "out_of_range":
                    fields[2 + 1 + k % 4] = ("150.00", "-5.00", "123.456789", "-200.000000")[k % 4]
                lines.append(",".join(fields))
                values = [_parse(fields[i]) if i < len(fields) else None for i in range(2, 7)]
                truth["file"].append(f"daily-data/{day.isoformat()}/{device}.csv")
                truth["line"].append(k + 2)
                truth["deviceid"].append(fields[0])
                truth["timestamp"].append(fields[1])
                for name, value in zip(NUMERIC, values, strict=True):
                    truth[name].append(value)
                # The detector's precedence: any anomaly, else invalid (a malformed row), else healthy.
                anomalies = fleet.thresholds.anomalies(values[0], values[1], values[2])
                status = "anomalies_detected" if anomalies else "invalid" if kind else "healthy"
                truth["status"].append(status)
                truth["anomalies"].append(anomalies)
                truth["injected"].append(injected[k])
                truth["malformed"].append(kind)
            (folder / f"{device}.csv").write_text("\n".join(lines) + "\n")
            parts.append(pa.table(truth, schema=TRUTH_SCHEMA))
    table = pa.concat_tables(parts) if parts else TRUTH_SCHEMA.empty_table()
    pq.write_table(table, out / "ground-truth.parquet")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--interval", type=int, default=300, help="seconds between readings (divides a day)")
    parser.add_argument(
        "--start", type=date.fromisoformat, default=DEFAULT_START, help="first day, YYYY-MM-DD"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--anomaly-share", type=float, default=0.01)
    parser.add_argument("--malformed-share", type=float, default=0.01)
    parser.add_argument("--weak-battery-share", type=float, default=0.1)
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write daily-data/ and the ground truth"
    )
    args = parser.parse_args(argv)
    try:
        fleet = Fleet(
            devices=args.devices,
            days=args.days,
            interval_seconds=args.interval,
            start=args.start,
            seed=args.seed,
            anomaly_share=args.anomaly_share,
            malformed_share=args.malformed_share,
            weak_battery_share=args.weak_battery_share,
        )
    except SimulationError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    table = simulate(fleet, args.out)
    statuses = dict(
        zip(
            *np.unique(table.column("status").to_numpy(zero_copy_only=False), return_counts=True), strict=True
        )
    )
    print(f"wrote {table.num_rows:,} readings to {args.out / 'daily-data'}: {statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
