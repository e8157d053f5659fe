"""Write a plan's recommended values into ``Pulumi.<stage>.yaml``, keeping every comment and every other key.

``make tune STACK=prod ROWS=100000000 ARGS=--apply`` plans the day and then sets the values the plan
recommends (``APPLIED``: MaxConcurrency, the batch limits and, when MaxConcurrency needs more, the Lambda
reserved concurrency) in the stack file. The file is edited as a document, not re-serialised from data:
ruamel.yaml's round-trip mode keeps comments, key order, quoting and indentation, so the only lines that
change are the values that change and the comment stating the volume the file is tuned for::

    # Capacity settings tuned for 100,000,000 readings a day (make tune STACK=prod ARGS=--apply).

That comment is also where ``make tune`` reads the volume when no ``ROWS`` is given. The new
configuration is validated as every tool validates a stack (``tools.stackfile.load``) before the file is
replaced; a refused value (say, a reserved concurrency above the account's quota) leaves it untouched.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from ruamel.yaml import YAML

from spec.settings import PROJECT, SettingsError
from tools import stackfile
from tools.tune.planner import Plan

# The settings --apply writes, in the order they are reported.
APPLIED: Final = ("maxConcurrency", "lambdaReservedConcurrency", "maxItemsPerBatch", "maxInputBytesPerBatch")

VOLUME_RE: Final = re.compile(
    r"^(?P<lead>\s*#\s*Capacity settings tuned for )(?P<rows>[\d,]+)( readings a day)"
)


def volume_comment(stack: str, rows: int, indent: str = "  ") -> str:
    return f"{indent}# Capacity settings tuned for {rows:,} readings a day (make tune STACK={stack} ARGS=--apply)."


def stated_volume(stack: str, root: Path | None = None) -> int | None:
    """The readings a day the stack file says its capacity settings are tuned for, if it says so."""
    for line in stackfile.path(stack, root).read_text().splitlines():
        match = VOLUME_RE.match(line)
        if match:
            return int(match["rows"].replace(",", ""))
    return None


@dataclass(frozen=True)
class Change:
    setting: str
    old: Any
    new: int

    def __str__(self) -> str:
        return f"{self.setting} {self.old if self.old is not None else '(default)'} -> {self.new}"


def recommended_values(plan: Plan) -> dict[str, int]:
    """The plan's recommendations that ``--apply`` writes, by stack setting name."""
    values = {r.setting: r.value for r in plan.recommendations if r.value is not None}
    return {name: int(values[name]) for name in APPLIED if name in values}


def _round_trip() -> YAML:
    # The committed files' layout: two-space mappings, sequences indented under their key, long lines
    # left as they are.
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.width = 4096
    return rt


def render(text: str, stack: str, values: Mapping[str, int], rows: int) -> tuple[str, list[Change]]:
    """The stack file's text with ``values`` set and the volume comment stating ``rows``."""
    rt = _round_trip()
    document = rt.load(text)
    config = document["config"]
    changes = []
    for name, value in values.items():
        key = f"{PROJECT}:{name}"
        old = config.get(key)
        if old == value:
            continue
        changes.append(Change(name, old, value))
        if key in config:
            config[key] = value
        else:  # after the last capacity setting the file has, else at the end
            present = [i for i, k in enumerate(config) if k in {f"{PROJECT}:{n}" for n in APPLIED}]
            config.insert(present[-1] + 1 if present else len(config), key, value)
    out = io.StringIO()
    rt.dump(document, out)
    lines = out.getvalue().splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = VOLUME_RE.match(line)
        if match:
            lines[i] = volume_comment(stack, rows, indent=line[: len(line) - len(line.lstrip())]) + "\n"
            break
    else:  # first statement of the volume: above the first capacity setting
        first = next(
            (
                i
                for i, line in enumerate(lines)
                if line.strip().startswith(tuple(f"{PROJECT}:{n}:" for n in APPLIED))
            ),
            len(lines),
        )
        lines.insert(first, volume_comment(stack, rows) + "\n")
    return "".join(lines), changes


def apply(plan: Plan, *, root: Path | None = None) -> list[Change]:
    """Write ``plan``'s recommended values and volume into its stack file; the changes made."""
    stack, rows = plan.capacity.stage, plan.workload.rows
    file = stackfile.path(stack, root)
    text = file.read_text()
    values = recommended_values(plan)
    new_text, changes = render(text, stack, values, rows)
    expected = dict((yaml.safe_load(text) or {}).get("config") or {})
    expected.update({f"{PROJECT}:{name}": value for name, value in values.items()})
    if (yaml.safe_load(new_text) or {}).get("config") != expected:  # never write what was not meant
        raise SettingsError(
            [f"--apply would change more than {', '.join(values)}; nothing written"], source=file.name
        )
    stackfile.load(stack, overrides=values, root=root)  # refuses what the program would refuse
    if new_text != text:  # replaced whole: a reader never sees half a file
        with tempfile.NamedTemporaryFile("w", dir=file.parent, prefix=f".{file.name}.", delete=False) as tmp:
            tmp.write(new_text)
        try:
            os.chmod(tmp.name, file.stat().st_mode)
            os.replace(tmp.name, file)
        except OSError:
            os.unlink(tmp.name)
            raise
    return changes
