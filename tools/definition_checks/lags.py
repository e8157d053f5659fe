"""``KNOWN_LAGS``: the validator messages about fields AWS accepts and a validator does not know yet.

Each entry names the validator, the message it matches, optionally the JSON path and value it is limited
to, why it is a lag and the AWS page documenting the field. ``tools.check_definition.stale_lags`` finds an
entry that no longer matches anything, so the list cannot rot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tools.definition_checks import Problem


@dataclass(frozen=True)
class Lag:
    """A validator message about a field AWS accepts but the validator does not know yet."""

    validator: str
    pattern: str  # a regular expression the whole message must match
    why: str
    doc: str
    # Where the message is generic (a schema's enum message names no value), the entry is scoped further:
    # the problem's JSON path must match ``path`` and the definition's value there must be one of ``values``,
    # so the lag never hides a value AWS itself rejects.
    path: str | None = None
    values: tuple[Any, ...] | None = None

    def matches(self, problem: Problem, definition: dict[str, Any] | None = None) -> bool:
        if problem.source != self.validator or re.fullmatch(self.pattern, problem.message) is None:
            return False
        if self.path is not None and re.fullmatch(self.path, problem.path) is None:
            return False
        return self.values is None or _value_at(definition, problem.path) in self.values


_MISSING = object()


def _value_at(document: Any, path: str) -> Any:
    """The value at a JSON path written ``$.a.b[0].c`` (object keys without dots), or a sentinel."""
    node = document
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


KNOWN_LAGS: tuple[Lag, ...] = (
    Lag(
        "statelint",
        r"State Machine\..*\.Retry\[\d+\]\.BackoffRate is \d+ but should be a Float",
        "statelint wants a float; the ASL spec and AWS take any number >= 1.0 (an integer included)",
        "docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html (BackoffRate)",
    ),
    Lag(
        "statelint",
        r'Field "Label" not allowed in State Machine\.States\.[A-Za-z]+',
        "Label names a Distributed Map's child executions; statelint predates it",
        "docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html (Label)",
    ),
    Lag(
        "statelint",
        r'Field "(InputType|ManifestType)" not allowed in State Machine\.States\.[A-Za-z]+\.ItemReader\.ReaderConfig',
        "ReaderConfig.InputType/ManifestType (Athena manifests, Parquet) are newer than statelint",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig)",
    ),
    Lag(
        "statelint",
        r'Field "WriterConfig" not allowed in State Machine\.States\.[A-Za-z]+\.ResultWriter',
        "ResultWriter.WriterConfig (Transformation, OutputType) is newer than statelint",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html (WriterConfig)",
    ),
    Lag(
        "asl-language-service",
        re.escape('Value is not accepted. Valid values: "CSV", "JSON", "JSONL", "MANIFEST".'),
        "the language service's ReaderConfig.InputType enum predates PARQUET, which AWS documents for "
        "Athena manifests (ManifestType ATHENA_DATA with InputType CSV, JSONL or PARQUET); the message is "
        "the schema's generic enum message, so the entry is scoped to that one field",
        "docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html (ReaderConfig, InputType)",
        path=r"\$\.States\..+\.ItemReader\.ReaderConfig\.InputType",
        values=("PARQUET",),
    ),
)
