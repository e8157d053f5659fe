"""The checks ``make check-definition`` runs on a state machine definition (``tools/check_definition.py``).

``validators`` runs the three independent validators, ``lags`` is the allowlist of their known lags behind
AWS, and our own rules, for what no validator checks, are one family a module: ``flow`` (variables and
reachability along the transitions), ``reserved`` (where ``States.ALL``, ``$states.result`` and
``$states.errorOutput`` may stand), ``fields`` (the fields each state type has) and ``limits`` (the EXPRESS
time budget and the Map's limits and values). ``walk`` finds the nested machines and the JSONata
expressions the rules look into. ``Problem`` is what every check reports. See docs/definition-checks.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    source: str  # a validator's name or one of our rule ids
    path: str
    message: str

    def line(self) -> str:
        return f"{self.source}: {self.path}: {self.message}"
