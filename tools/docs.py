"""The generated tables of docs/: each lives between ``<!-- <name>:start -->`` and ``<!-- <name>:end -->``
in its page and is rendered from the code, so no table of settings, alarms or rights can drift.

    .venv/bin/python -m tools.docs           # exit 1 and name every stale table
    .venv/bin/python -m tools.docs --write   # refresh them

The planner's figures (docs/tuning.md) have their own generator, ``tools.tune.figures``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spec import alarms, settings
from spec.naming import Account, Names
from tools import security_doc, stackfile

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dev", "prod")
SYMBOLS = {alarms.Comparison.GTE: ">=", alarms.Comparison.GT: ">", alarms.Comparison.LT: "<"}


@dataclass(frozen=True)
class Block:
    page: str
    name: str
    render: Callable[[], str]

    @property
    def path(self) -> Path:
        return ROOT / self.page

    def span(self, text: str) -> tuple[int, int]:
        start, end = f"<!-- {self.name}:start -->\n", f"\n<!-- {self.name}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"{self.page}: no {start.strip()} ... {end.strip()} block")
        return text.index(start) + len(start), text.index(end)

    def current(self) -> str:
        text = self.path.read_text()
        begin, end = self.span(text)
        return text[begin:end]

    def write(self) -> None:
        text = self.path.read_text()
        begin, end = self.span(text)
        self.path.write_text(text[:begin] + self.render() + text[end:])


def _period(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def _number(value: float) -> str:
    return f"{value:g}"


def alarm_table() -> str:
    """Every alarm of the committed stacks (account alarms as the owning stack has them), with the values
    each stack file gives it. Rendered from ``spec.alarms.alarm_specs``."""
    by_stage: dict[str, dict[str, alarms.AlarmSpec]] = {}
    for stage in STAGES:
        stage_settings = stackfile.load(stage).settings
        names = Names(stage_settings.stage, Account("aws", "<region>", "<account>"))
        specs = alarms.alarm_specs(
            alarms.AlarmSettings.of(stage_settings),
            names,
            state_machine_arn="<state machine>",
            function_name="<function>",
            delivery_stream_name="<stream>",
        )
        by_stage[stage] = {spec.key: spec for spec in specs}
    keys = list(dict.fromkeys(key for stage in STAGES for key in by_stage[stage]))
    rows = [
        "| Alarm | Metric | Fires when | " + " | ".join(STAGES) + " | Missing data |",
        "|---|---|---|" + "---|" * len(STAGES) + "---|",
    ]
    for key in keys:
        spec = next(by_stage[s][key] for s in STAGES if key in by_stage[s])
        name = (
            f"`{alarms.ACCOUNT_ALARM_PREFIX}-{key}-<owner stage>`"
            if spec.scope is alarms.Scope.ACCOUNT
            else f"`{settings.PROJECT}-<stage>-{key}`"
        )
        dimensions = (
            ("by " + ", ".join(f"`{d}`" for d in spec.dimensions)) if spec.dimensions else "no dimension"
        )
        window = f"{_period(spec.period)}, {spec.datapoints_to_alarm} of {spec.evaluation_periods} periods"
        fires = f"{spec.statistic} {SYMBOLS[spec.comparison]} threshold over {window}"
        if spec.notify_insufficient_data:
            fires += "; also notifies on INSUFFICIENT_DATA"
        values = [
            _number(by_stage[s][key].threshold) if key in by_stage[s] else "not created" for s in STAGES
        ]
        rows.append(
            f"| {name} | `{spec.namespace} {spec.metric}` {dimensions} | {fires} | "
            + " | ".join(values)
            + f" | {spec.missing_data.value}: {spec.missing_data_why} |"
        )
    return "\n".join(rows)


BLOCKS = (
    Block("docs/settings.md", "settings", settings.markdown_table),
    Block("docs/operations.md", "alarms", alarm_table),
    Block("docs/security.md", "roles", security_doc.markdown),
)


def stale() -> list[Block]:
    return [block for block in BLOCKS if block.current() != block.render()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="refresh every generated table")
    args = parser.parse_args(argv)
    if args.write:
        for block in BLOCKS:
            block.write()
        return 0
    found = stale()
    for block in found:
        print(f"{block.page}: the {block.name} table is stale: .venv/bin/python -m tools.docs --write")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
