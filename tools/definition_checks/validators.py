"""The three independent validators, each run on the definition and its messages turned into ``Problem``s.

* ``asl-validator`` (npm, package.json): the ASL JSON schema.
* ``statelint`` (PyPI, requirements-dev.txt): the ASL spec's rules.
* ``asl-language-service`` (npm ``amazon-states-language-service``, through tools/asl_language_service.js):
  AWS's own language service, a JSONata-aware schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tools import aslcheck
from tools.definition_checks import Problem


def statelint(definition: dict[str, Any]) -> list[Problem]:
    from statelint.config import Config
    from statelint.linter import Linter

    # Config(ignore, yaml, evaluate_jsonata). With evaluation on, statelint evaluates a Choice's Condition
    # without the workflow's variables and reports its value's type ("Condition is true but should be a
    # String"); our executor and tests evaluate every expression with realistic values instead.
    messages = Linter.validate(json.dumps(definition), Config([], False, False))
    return [Problem("statelint", _statelint_path(m), m) for m in messages]


def _statelint_path(message: str) -> str:
    found = re.search(r"State Machine((?:\.[A-Za-z0-9_]+|\[\d+\])*)", message)
    return "$" + found.group(1) if found else "$"


def asl_validator(definition: dict[str, Any]) -> list[Problem]:
    """Its messages, without its "definition ... is invalid" header (which names a temporary file), each at
    the JSON path of the JSON pointer it names ("/States/A/Next" is "$.States.A.Next"), else at "$"."""
    problems = []
    messages = aslcheck.asl_validator(definition)
    for raw in messages:
        message = raw.strip()
        if re.fullmatch(r"\S* ?State machine definition .* is invalid:?", message):
            continue
        pointer = re.search(r"(?<![\w/])(/States(?:/[^\s/]+)*)", message)
        path = (
            "$"
            if pointer is None
            else "$"
            + "".join(
                f"[{part}]" if part.isdigit() else f".{part}" for part in pointer.group(1).split("/")[1:]
            )
        )
        problems.append(Problem("asl-validator", path, message))
    if messages and not problems:  # it failed without saying why: still a problem
        problems.append(Problem("asl-validator", "$", " ".join(m.strip() for m in messages)))
    return problems


def asl_language_service(definition: dict[str, Any]) -> list[Problem]:
    """npm ``amazon-states-language-service`` (AWS Toolkit's ASL editor), through tools/asl_language_service.js."""
    return [
        Problem("asl-language-service", d["path"], d["message"])
        for d in aslcheck.asl_language_service(definition)
    ]
