"""``make check-definition FILE=<path>``: every independent validator and our own rules on a definition.

Validators (each independent of this project's understanding of AWS):

* ``asl-validator`` (npm, package.json): the ASL JSON schema.
* ``statelint`` (PyPI, requirements-dev.txt): the ASL spec's rules, among them "States.ALL can only appear
  in the last element, and by itself", which asl-validator does not check.
* ``asl-language-service`` (npm ``amazon-states-language-service``, the service behind the AWS Toolkit's
  ASL editor, through tools/asl_language_service.js): JSONata-aware schema (the fields each state type
  allows, enum values), transitions and reachability.

They lag behind AWS on newer fields; each lag is one entry of ``KNOWN_LAGS`` (validator, the message it
matches, optionally the JSON path and value it is limited to, why it is a lag, the AWS page documenting the
field). A message no entry matches is a problem; an entry that matches no message of the stage definitions
is stale (``stale_lags``, checked by a test), so the list cannot rot.

Our rules, for what no validator checks (each cites its source beside its code):

* ``states-all``: ``States.ALL`` alone in its ``ErrorEquals`` and only in the last retrier or catcher
  (ASL spec, "Error names"; AWS rejects it at create time: "States.ALL must appear alone and at end of
  list", aws/aws-cdk#10530).
* ``unassigned-variable``: every ``$variable`` a state reads is assigned on every path that reaches it,
  a Catch edge carrying only the catcher's ``Assign`` (a failed state's own ``Assign`` does not happen);
  Parallel branches and inline Map iterations see the variables assigned when their state is entered;
  an unassigned variable is ``States.QueryEvaluationError`` at run time
  (step-functions/latest/dg/workflow-variables.html).
* ``child-reads-parent-variable``: a Distributed Map's child workflow cannot read the parent's variables
  (workflow-variables.html, "Variable scope").
* ``error-output-outside-catch``: ``$states.errorOutput`` exists only in a Catch (workflow-variables.html,
  transforming-data.html, "Reserved variable: $states").
* ``states-result-scope``: ``$states.result`` only in the ``Output``/``Assign`` of a Task, Parallel or Map
  (workflow-variables.html, "Reserved variable: $states").
* ``state-fields``: the fields each state type allows in its query language, and those of retriers,
  catchers and JSONata choice rules (the developer guide's page for each state type).
* ``reachability``: every state reachable from its machine's ``StartAt``, every transition to a state of
  the same machine (AWS: "MISSING_TRANSITION_TARGET: State ... is not reachable").
* ``express-budget``: in an EXPRESS child, every attempt of a Task at its ``TimeoutSeconds`` plus every
  retry wait fits the 5 minutes an EXPRESS execution may run (choosing-workflow-type.html). Judgment:
  every attempt is counted at the full timeout, the worst case.
* ``map-limits``: ``MaxInputBytesPerBatch`` at most 262,144, ``ToleratedFailurePercentage`` 0-100,
  ``MaxConcurrency`` 0-10,000, ``Label`` at most 40 characters without whitespace or special characters,
  ``ReaderConfig``/``WriterConfig`` values (input-output-itembatcher.html, state-map-distributed.html,
  input-output-itemreader.html, input-output-resultwriter.html).

This module is the command and ``check``; the validators, ``KNOWN_LAGS`` and each family of our rules are
modules of ``tools/definition_checks/`` (its docstring names them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tools.definition_checks import Problem, lags
from tools.definition_checks.fields import state_fields
from tools.definition_checks.flow import reachability, variables
from tools.definition_checks.lags import Lag
from tools.definition_checks.limits import express_budget, map_limits
from tools.definition_checks.reserved import error_output, states_all, states_result_scope
from tools.definition_checks.validators import asl_language_service, asl_validator, statelint

RULES = (
    states_all,
    variables,
    error_output,
    states_result_scope,
    state_fields,
    reachability,
    express_budget,
    map_limits,
)


def rule_problems(definition: dict[str, Any]) -> list[Problem]:
    """Our own rules only (no subprocess): what the local executor checks before it runs a definition."""
    return [p for rule in RULES for p in rule(definition)]


def check(definition: dict[str, Any]) -> tuple[list[Problem], set[Lag]]:
    """Every problem outside the known lags, and the lags that matched something."""
    found = [*asl_validator(definition), *statelint(definition), *asl_language_service(definition)]
    used: set[Lag] = set()
    problems = []
    for problem in found:
        lag = next((lag for lag in lags.KNOWN_LAGS if lag.matches(problem, definition)), None)
        if lag is None:
            problems.append(problem)
        else:
            used.add(lag)
    problems += rule_problems(definition)
    return problems, used


def stale_lags(definitions: list[dict[str, Any]]) -> list[Lag]:
    """Known lags that match no validator message on any of these definitions."""
    used: set[Lag] = set()
    for definition in definitions:
        used |= check(definition)[1]
    return [lag for lag in lags.KNOWN_LAGS if lag not in used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make check-definition FILE=<path>", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        definition = json.loads(args.file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"check-definition: {args.file}: {exc}", file=sys.stderr)
        return 2
    problems, _used = check(definition)
    for problem in problems:
        print(problem.line())
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
