"""Prices, quotas and assumptions of the capacity planner: data with a source and a date, overridable.

``prices.yaml`` next to this module holds every number the model uses that is not a stage setting, in three
sections (``prices``, ``quotas``, ``assumptions``), each entry with ``value``, ``unit``, ``source`` and
``read``. ``load()`` reads it and applies overrides given as ``name=value`` strings: the stage's
``priceOverrides`` setting first, then any given on the command line. An unknown name or a value that is
not a non-negative number fails with an error naming it and listing every allowed name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml

PRICES_FILE: Final = Path(__file__).with_name("prices.yaml")
SECTIONS: Final = ("prices", "quotas", "assumptions")


class PriceOverrideError(ValueError):
    """An override names an unknown entry or gives a value that is not a non-negative number."""


@dataclass(frozen=True)
class Rate:
    """One price, quota or assumption, with where it came from."""

    name: str
    section: str
    value: float
    unit: str
    source: str
    read: str
    overridden: bool = False


class Rates(Mapping[str, float]):
    """Every entry by name; indexing gives the value, ``entries`` the full records."""

    def __init__(self, entries: Mapping[str, Rate]):
        self.entries: Mapping[str, Rate] = MappingProxyType(dict(entries))

    def __getitem__(self, name: str) -> float:
        try:
            return self.entries[name].value
        except KeyError:
            raise KeyError(
                f"{name!r}: no such price, quota or assumption; allowed: {self.allowed()}"
            ) from None

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def allowed(self) -> str:
        return ", ".join(sorted(self.entries))

    def overridden(self) -> list[Rate]:
        return [rate for rate in self.entries.values() if rate.overridden]

    def with_overrides(self, overrides: Iterable[str], *, origin: str = "override") -> Rates:
        """A copy with ``name=value`` overrides applied; every bad one is reported in one error."""
        entries = dict(self.entries)
        problems = []
        for item in overrides:
            name, sep, text = (part.strip() for part in item.partition("="))
            if not sep or not name:
                problems.append(f"{item!r}: expected <name>=<non-negative number>")
                continue
            if name not in entries:
                problems.append(f"{name!r} (from {item!r}): unknown name; allowed: {self.allowed()}")
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name}={text!r}: must be a non-negative number")
                continue
            entries[name] = replace(entries[name], value=value, overridden=True, source=origin, read="")
        if problems:
            raise PriceOverrideError(
                f"{len(problems)} bad price override(s):\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return Rates(entries)


def load(
    overrides: Iterable[str] = (), *, stage_overrides: Iterable[str] = (), path: Path = PRICES_FILE
) -> Rates:
    """Read ``prices.yaml``, then apply the stage's ``priceOverrides``, then ``overrides`` (last wins)."""
    document = yaml.safe_load(path.read_text()) or {}
    entries: dict[str, Rate] = {}
    for section in SECTIONS:
        for name, entry in (document.get(section) or {}).items():
            missing = {"value", "unit", "source", "read"} - set(entry)
            if missing:
                raise ValueError(f"{path.name}: {section}.{name} lacks {', '.join(sorted(missing))}")
            if name in entries:
                raise ValueError(f"{path.name}: {name} appears in more than one section")
            entries[name] = Rate(
                name=name,
                section=section,
                value=float(entry["value"]),
                unit=str(entry["unit"]),
                source=str(entry["source"]),
                read=str(entry["read"]),
            )
    rates = Rates(entries)
    rates = rates.with_overrides(stage_overrides, origin="stage priceOverrides")
    return rates.with_overrides(overrides, origin="command line")
