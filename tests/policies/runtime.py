"""Run the pack's rules in-process with props wrapped exactly as the policy runtime wraps them.

The analyzer receives properties as a protobuf ``Struct`` (numbers become floats), turns them into
Python with ``json_format.MessageToDict`` and ``deserialize_properties``, and hands rules an
``unknown_checking_proxy`` (``_DictProxy``/``_ListProxy``: Mapping/Sequence, not dict/list, raising on
unknown values). ``wrap`` does the same, so a rule that only works on plain dicts fails here too.
The pack directory goes on ``sys.path`` because that is how the engine runs it (``runpy`` on the
directory), importing the rules as ``sensorflow_policy``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
if str(PACK_DIR) not in sys.path:
    sys.path.insert(0, str(PACK_DIR))

import sensorflow_policy  # noqa: E402

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def wrap(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """``props`` as a rule sees them at run time: Struct round trip, deserialised, unknown-checking proxy."""
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    wrapped = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))
    assert not isinstance(wrapped, dict), "the runtime proxy must not be a dict"
    return wrapped


def policy(name: str) -> Policy:
    """The pack's rule called ``name``; fails listing the names when there is none."""
    found = {p.name: p for p in sensorflow_policy.all_policies()}
    if name not in found:
        raise KeyError(f"no policy {name!r}; the pack has {sorted(found)}")
    return found[name]


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:test::sensorflow::{type_}::{name}"


def resource_violations(
    name: str, type_: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> list[str]:
    """Messages the resource rule ``name`` reports for one resource."""
    rule = policy(name)
    assert isinstance(rule, ResourceValidationPolicy), f"{name} is not a resource rule"
    messages: list[str] = []
    args = ResourceValidationArgs(type_, wrap(props), urn(type_, "r"), "r", _opts(), None, dict(config or {}))
    rule.validate(args, lambda message, _urn=None: messages.append(message))
    return messages


def stack_violations(
    name: str,
    resources: Sequence[tuple[str, str, Mapping[str, Any]]],
    config: Mapping[str, Any] | None = None,
) -> list[tuple[str, str | None]]:
    """(message, urn) pairs the stack rule ``name`` reports; ``resources`` are (type, name, props)."""
    rule = policy(name)
    assert isinstance(rule, StackValidationPolicy), f"{name} is not a stack rule"
    found: list[tuple[str, str | None]] = []
    policy_resources = [
        PolicyResource(t, wrap(p), urn(t, n), n, _opts(), None, None, [], {}) for t, n, p in resources
    ]
    args = StackValidationArgs(policy_resources, dict(config or {}))
    rule.validate(args, lambda message, u=None: found.append((message, u)))
    return found
