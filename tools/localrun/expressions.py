"""JSONata as Step Functions evaluates it: ``{% expr %}`` strings, ``$states`` and workflow variables.

Every expression is compiled once, when the definition is loaded, by the jsonata-python implementation
of JSONata, so a syntax error stops the run before anything executes, naming the state and field.
Evaluation binds ``$states`` (``input``, ``context``, ``result``, ``errorOutput`` as the state allows)
and every variable assigned so far.

A plain path of names (``$states.input``, ``$states.context.Map.Item.Value``) is the bulk of the
per-item and per-child work in a Distributed Map; such a path is looked up directly when every step is
an object key, and handed to JSONata otherwise (arrays, missing keys), so the result is JSONata's in
every case. ``verify=True`` evaluates both ways and fails on any difference (the tests run with it).

A variable that was never assigned is an evaluation error in Step Functions (``States.QueryEvaluationError``,
workflow-variables.html), while jsonata-python reads it as undefined (so ``'x' & $unset`` gives ``'x'``).
Each expression therefore lists the workflow variables it reads when it is compiled, and evaluating it
with one of them unassigned fails as Step Functions fails.

Docs: docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html, workflow-variables.html.
"""

from __future__ import annotations

import re
from typing import Any

import jsonata

_PATH_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$")
_MISSING = object()
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_VARIABLE_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_LOCAL_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*:=")
_PARAMS_RE = re.compile(r"function\s*\(([^)]*)\)")
# JSONata's built-in functions (docs.jsonata.org) and the ones Step Functions adds ($partition, $range,
# $hash, $random, $uuid, $parse: transforming-data.html): names, not workflow variables.
FUNCTIONS = frozenset(
    [
        "string",
        "length",
        "substring",
        "substringBefore",
        "substringAfter",
        "uppercase",
        "lowercase",
        "trim",
        "pad",
        "contains",
        "split",
        "join",
        "match",
        "replace",
        "eval",
        "base64encode",
        "base64decode",
        "encodeUrlComponent",
        "encodeUrl",
        "decodeUrlComponent",
        "decodeUrl",
        "number",
        "abs",
        "floor",
        "ceil",
        "round",
        "power",
        "sqrt",
        "random",
        "formatNumber",
        "formatBase",
        "formatInteger",
        "parseInteger",
        "sum",
        "max",
        "min",
        "average",
        "boolean",
        "not",
        "exists",
        "count",
        "append",
        "sort",
        "reverse",
        "shuffle",
        "distinct",
        "zip",
        "keys",
        "lookup",
        "spread",
        "merge",
        "sift",
        "each",
        "error",
        "assert",
        "type",
        "map",
        "filter",
        "single",
        "reduce",
        "now",
        "millis",
        "fromMillis",
        "toMillis",
        "partition",
        "range",
        "hash",
        "uuid",
        "parse",
    ]
)


def workflow_variables(body: str) -> frozenset[str]:
    """The workflow variables a JSONata expression reads: ``$name`` outside string literals, other than
    ``$states``, a function, or a name the expression binds itself (``$x := ...``, ``function($x)``)."""
    code = _STRING_RE.sub('""', body)
    local = set(_LOCAL_RE.findall(code))
    for params in _PARAMS_RE.findall(code):
        local.update(_VARIABLE_RE.findall(params))
    return frozenset(set(_VARIABLE_RE.findall(code)) - local - FUNCTIONS - {"states", ""})


class ExpressionError(ValueError):
    """A JSONata expression that does not compile (raised when the definition is loaded)."""


class EvaluationError(RuntimeError):
    """A JSONata expression that failed at run time: Step Functions' ``States.QueryEvaluationError``."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


class Expression:
    """One compiled ``{% ... %}`` expression."""

    __slots__ = ("compiled", "path", "reads", "source", "where")

    def __init__(self, source: str, where: str):
        self.source = source
        self.where = where
        body = source[2:-2].strip()
        if not body:
            raise ExpressionError(f"{where}: empty JSONata expression {source!r}")
        try:
            self.compiled = jsonata.Jsonata(body)
        except Exception as exc:  # jsonata raises JException (not exported as a stable type)
            raise ExpressionError(f"{where}: JSONata expression {source!r} does not compile: {exc}") from exc
        self.reads = workflow_variables(body)
        match = _PATH_RE.match(body)
        self.path = (match.group(1), tuple(p for p in match.group(2).split(".") if p)) if match else None

    def _lookup(self, bindings: dict[str, Any]) -> Any:
        if self.path is None:
            return _MISSING
        name, steps = self.path
        value = bindings.get(name, _MISSING)
        for step in steps:
            if type(value) is not dict or step not in value:
                return _MISSING
            value = value[step]
        if isinstance(value, list) or value is _MISSING:
            return _MISSING  # JSONata's sequence rules apply to arrays: let JSONata decide
        return value

    def _jsonata(self, bindings: dict[str, Any]) -> Any:
        frame = self.compiled.create_frame()
        for name, value in bindings.items():
            frame.bind(name, value)
        try:
            return self.compiled.evaluate(None, frame)
        except Exception as exc:
            raise EvaluationError(f"{self.where}: evaluating {self.source!r} failed: {exc}") from exc

    def evaluate(self, bindings: dict[str, Any], *, fast: bool = True, verify: bool = False) -> Any:
        if self.reads:
            unassigned = sorted(name for name in self.reads if name not in bindings)
            if unassigned:
                raise EvaluationError(
                    f"{self.where}: evaluating {self.source!r} failed: variable "
                    + ", ".join(f"${n}" for n in unassigned)
                    + " has not been assigned"
                )
        if fast:
            value = self._lookup(bindings)
            if value is not _MISSING:
                if verify:
                    reference = self._jsonata(bindings)
                    if reference != value:
                        raise AssertionError(f"{self.where}: fast path gave {value!r}, JSONata {reference!r}")
                return value
        return self._jsonata(bindings)


class Template:
    """A JSON value (``Arguments``, ``Output``, ``Assign``...) with expressions compiled in place."""

    __slots__ = ("root",)

    def __init__(self, value: Any, where: str):
        self.root = _compile(value, where)

    def evaluate(self, bindings: dict[str, Any], *, fast: bool = True, verify: bool = False) -> Any:
        return _evaluate(self.root, bindings, fast, verify)


def _compile(value: Any, where: str) -> Any:
    if is_expression(value):
        return Expression(value, where)
    if isinstance(value, dict):
        return {k: _compile(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _evaluate(node: Any, bindings: dict[str, Any], fast: bool, verify: bool) -> Any:
    if type(node) is Expression:
        return node.evaluate(bindings, fast=fast, verify=verify)
    if type(node) is dict:
        return {k: _evaluate(v, bindings, fast, verify) for k, v in node.items()}
    if type(node) is list:
        return [_evaluate(v, bindings, fast, verify) for v in node]
    return node
