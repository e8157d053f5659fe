"""Checks of a rendered state machine definition beyond what ``asl-validator`` covers.

- ``asl_validator``: runs the npm ``asl-validator`` (installed from package.json/package-lock.json).
- ``asl_language_service``: runs the npm ``amazon-states-language-service`` (AWS Toolkit's ASL editor service)
  through ``tools/asl_language_service.js``; each diagnostic with the JSON path it points at.
- ``jsonpath_fields``: JSONPath-only fields (``Parameters``, ``ResultPath``, ``*.$`` ...) have no meaning in a
  JSONata state machine; Step Functions rejects them, asl-validator does not.
- ``reader_config_problems``: the Distributed Map's ``ReaderConfig`` values that an Athena manifest allows.
- ``expressions``: every ``{% %}`` JSONata expression with its path, so tests can evaluate each one.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
ASL_LANGUAGE_SERVICE = ROOT / "node_modules" / "amazon-states-language-service"
ASL_LANGUAGE_SERVICE_SCRIPT = ROOT / "tools" / "asl_language_service.js"

JSONPATH_ONLY = frozenset(
    {"Parameters", "ResultPath", "InputPath", "OutputPath", "ResultSelector", "ItemsPath"}
)
# docs: step-functions/latest/dg/input-output-itemreader.html (ReaderConfig)
ATHENA_MANIFEST_INPUT_TYPES = frozenset({"CSV", "JSONL", "PARQUET"})


def asl_validator(definition: dict[str, Any]) -> list[str]:
    """Problems ``asl-validator`` reports (empty when valid). Raises if the tool is not installed."""
    if not ASL_VALIDATOR.exists():
        raise FileNotFoundError(f"{ASL_VALIDATOR} is missing: run `make setup` (npm ci)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(definition, handle)
        path = handle.name
    try:
        result = subprocess.run(
            [str(ASL_VALIDATOR), "--json-path", path], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        Path(path).unlink()
    if result.returncode == 0:
        return []
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()] or ["invalid"]


def asl_language_service(definition: dict[str, Any]) -> list[dict[str, str]]:
    """The language service's diagnostics (``path``, ``message``, ``severity``, ``source``); empty when valid.

    Raises if the service is not installed or the script fails, so a broken tool never reads as "no problems".
    """
    if not ASL_LANGUAGE_SERVICE.exists():
        raise FileNotFoundError(f"{ASL_LANGUAGE_SERVICE} is missing: run `make setup` (npm ci)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(definition, handle)
        path = handle.name
    try:
        result = subprocess.run(
            ["node", str(ASL_LANGUAGE_SERVICE_SCRIPT), path],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    finally:
        Path(path).unlink()
    if result.returncode != 0:
        raise RuntimeError(
            f"{ASL_LANGUAGE_SERVICE_SCRIPT.name} failed ({result.returncode}): {result.stderr}"
        )
    diagnostics = json.loads(result.stdout)
    if not isinstance(diagnostics, list):
        raise RuntimeError(f"{ASL_LANGUAGE_SERVICE_SCRIPT.name}: expected a JSON list, got {result.stdout!r}")
    return diagnostics


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a JSON document, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, nested ones (Map ItemProcessor, Parallel branches) included, as (name, state)."""
    for name, state in definition.get("States", {}).items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])
        for branch in state.get("Branches", []):
            yield from states(branch)


def jsonpath_fields(definition: dict[str, Any]) -> list[str]:
    found = []
    for path, node in walk(definition):
        if isinstance(node, dict):
            for key in node:
                if key in JSONPATH_ONLY or key.endswith(".$"):
                    found.append(f"{path}.{key}")
    return found


def reader_config_problems(definition: dict[str, Any], *, csv_headers: list[str] | None = None) -> list[str]:
    problems = []
    maps = [(n, s) for n, s in states(definition) if s.get("Type") == "Map" and "ItemReader" in s]
    if not maps:
        return ["no Map state with an ItemReader"]
    for name, state in maps:
        config = state["ItemReader"].get("ReaderConfig", {})
        if config.get("ManifestType") != "ATHENA_DATA":
            problems.append(f"{name}: ManifestType {config.get('ManifestType')!r}, expected ATHENA_DATA")
        if config.get("InputType") not in ATHENA_MANIFEST_INPUT_TYPES:
            problems.append(
                f"{name}: InputType {config.get('InputType')!r} not one of {sorted(ATHENA_MANIFEST_INPUT_TYPES)}"
            )
        if config.get("InputType") == "CSV":
            if config.get("CSVHeaderLocation") != "GIVEN":
                problems.append(
                    f"{name}: UNLOAD writes CSV without a header; CSVHeaderLocation must be GIVEN"
                )
            if csv_headers is not None and config.get("CSVHeaders") != csv_headers:
                problems.append(f"{name}: CSVHeaders {config.get('CSVHeaders')} != {csv_headers}")
        elif "CSVHeaderLocation" in config or "CSVHeaders" in config:
            problems.append(f"{name}: CSV header settings on a {config.get('InputType')} reader")
        if state["ItemReader"].get("Resource", "").split(":::")[-1] != "s3:getObject":
            problems.append(f"{name}: ItemReader resource must be s3:getObject")
    return problems


def expressions(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """Every JSONata expression as (path, source without the ``{% %}`` markers)."""
    found = []
    for path, node in walk(definition):
        if isinstance(node, str) and "{%" in node:
            stripped = node.strip()
            if not (stripped.startswith("{%") and stripped.endswith("%}")):
                raise ValueError(f"{path}: a JSONata expression must be the whole string: {node!r}")
            found.append((path, stripped[2:-2].strip()))
    return found
