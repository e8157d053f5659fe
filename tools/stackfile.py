"""Stack files, read one way by every tool: ``Pulumi.<stack>.yaml`` found, parsed and validated at once.

``make synth``, ``make policy``, ``make demo`` and ``make tune`` name a stack; each of them asks this module
for it, so each refuses the same things with the same message:

- a stack without a ``Pulumi.<stack>.yaml`` (a typo such as ``prdo`` would otherwise run on defaults),
  naming the stacks that exist;
- a file that is not YAML, or repeats a key (YAML would silently keep the last), with file, line, column;
- every problem of the configuration in one ``SettingsError``: keys in a namespace nothing reads,
  unknown keys, values of the wrong type (checked on the YAML types, before the engine turns every value
  into a string), out-of-range values, cross-field conflicts and the provider keys the tools rely on;
- a second stack file owning the account-level alarms of the same account and Region.

The configuration is assembled as the engine assembles it: the ``config:`` defaults declared in
``Pulumi.yaml``, then ``Pulumi.<stack>.yaml``, then the caller's overrides.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spec import settings as settings_module

ROOT = Path(__file__).resolve().parent.parent
PROJECT = settings_module.PROJECT
# Top-level keys of a stack settings file (pulumi.com/docs/iac/concepts/projects/stack-settings-file/).
TOP_LEVEL_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
_ACCOUNT_RE = re.compile(r"^\d{12}$")


class StackNotFoundError(settings_module.SettingsError):
    """The named stack has no stack file."""

    def __init__(self, stack: str, known: list[str], root: Path):
        close = difflib.get_close_matches(stack, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        message = (
            f"no stack {stack!r}: {root / f'Pulumi.{stack}.yaml'} does not exist. "
            f"Stacks: {', '.join(known) or '(none)'}{hint}"
        )
        super().__init__([message], source=f"Pulumi.{stack}.yaml")
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that notes every key given twice in one mapping (YAML would keep only the last)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            loader.duplicates.append(
                f"line {key_node.start_mark.line + 1}: {key} appears twice (first at line {seen[key] + 1}); "
                "only the last would count"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def stacks(root: Path | None = None) -> list[str]:
    """The stacks that have a stack file, sorted."""
    root = root or ROOT
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def path(stack: str, root: Path | None = None) -> Path:
    """``Pulumi.<stack>.yaml``; ``StackNotFoundError`` naming the existing stacks when there is none."""
    root = root or ROOT
    candidate = root / f"Pulumi.{stack}.yaml"
    if "/" in stack or not stack or not candidate.is_file():
        raise StackNotFoundError(stack, stacks(root), root)
    return candidate


def _parse_yaml(file: Path) -> tuple[Any, list[str]]:
    """The document and the keys it repeats; a syntax error is one ``SettingsError`` naming the file."""
    loader = _UniqueKeyLoader(file.read_text())
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise settings_module.SettingsError([f"not valid YAML: {where}{what}"], source=file.name) from None
    except yaml.YAMLError as exc:
        raise settings_module.SettingsError([f"not valid YAML: {exc}"], source=file.name) from None
    finally:
        loader.dispose()


def _read(stack: str, root: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The ``config:`` mapping with its YAML types, and the problems of the file's shape."""
    file = path(stack, root)
    document, problems = _parse_yaml(file)
    if document is None:
        return {}, problems
    if not isinstance(document, dict):
        raise settings_module.SettingsError(
            [f"expected a mapping with a `config:` key, got {type(document).__name__}"], source=file.name
        )
    problems += [
        f"{key}: not a stack file key; allowed: {', '.join(TOP_LEVEL_KEYS)}"
        + settings_module.did_you_mean(str(key), TOP_LEVEL_KEYS)
        for key in document
        if key not in TOP_LEVEL_KEYS
    ]
    conf = document.get("config") or {}
    if not isinstance(conf, dict):
        problems.append(f"config: expected a mapping of <namespace>:<key> to value, got {conf!r}")
        conf = {}
    return {str(k): v for k, v in conf.items()}, problems


def read(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The ``config:`` mapping of ``Pulumi.<stack>.yaml`` with its YAML types; refuses a malformed file."""
    conf, problems = _read(stack, root)
    if problems:
        raise settings_module.SettingsError(problems, source=path(stack, root).name)
    return conf


def config(
    stack: str, overrides: Mapping[str, Any] | None = None, root: Path | None = None
) -> dict[str, Any]:
    """The configuration the engine would hand the program: Pulumi.yaml defaults < stack file < overrides.

    Keys are fully qualified (``sensorflow:maxConcurrency``, ``aws:region``); values keep their YAML types.
    """
    project = yaml.safe_load(((root or ROOT) / "Pulumi.yaml").read_text())
    assembled: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"]
        for key, spec in (project.get("config") or {}).items()
        if "default" in spec
    }
    assembled.update(_read(stack, root)[0])  # load() reports the file's shape problems with the rest
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            assembled.pop(full, None)
        else:
            assembled[full] = value
    return assembled


def _provider_problems(conf: Mapping[str, Any]) -> list[str]:
    """The provider keys the tools read themselves (account and Region), checked like the settings."""
    problems = []
    region = conf.get("aws:region")
    if region is not None and not (isinstance(region, str) and re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", region)):
        problems.append(f"aws:region={region!r}: expected a Region name such as eu-west-1")
    accounts = conf.get("aws:allowedAccountIds")
    if accounts is not None and not (
        isinstance(accounts, list)
        and accounts
        and all(isinstance(a, str) and _ACCOUNT_RE.match(a) for a in accounts)
    ):
        problems.append(
            f"aws:allowedAccountIds={accounts!r}: expected a list of 12-digit account ids, quoted as strings"
        )
    return problems


def _owned_account_regions(stack: str, root: Path | None) -> set[tuple[str, str]]:
    """The (account, Region) pairs whose account-level alarms ``stack`` creates; none when unknown.

    Read leniently (a broken file is its own stack's problem, reported when that stack is loaded).
    """
    try:
        conf = config(stack, root=root)
    except settings_module.SettingsError:
        return set()
    owns = conf.get(f"{PROJECT}:ownsAccountAlarms", True)
    accounts, region = conf.get("aws:allowedAccountIds"), conf.get("aws:region")
    if owns is not True or not isinstance(accounts, list) or not isinstance(region, str):
        return set()
    return {(str(account), region) for account in accounts}


def account_alarm_owner_problems(stack: str, conf: Mapping[str, Any], root: Path | None = None) -> list[str]:
    """A second stack of this project owning the account-level alarms of an account and Region this stack
    owns. Both would create ``sensorflow-account-*-<stage>`` alarms on the one account-wide series, and
    ops would be paged twice for every event (docs/operations.md, "Account-level alarms")."""
    if conf.get(f"{PROJECT}:ownsAccountAlarms", True) is not True:
        return []
    mine = _owned_account_regions(stack, root)
    problems = []
    for other in stacks(root):
        if other == stack:
            continue
        for account, region in sorted(mine & _owned_account_regions(other, root)):
            problems.append(
                f"{PROJECT}:ownsAccountAlarms: Pulumi.{other}.yaml also owns the account-level alarms of "
                f"account {account} in {region}; exactly one stack per account and Region may "
                f"(set {PROJECT}:ownsAccountAlarms: false in all but one)"
            )
    return problems


@dataclass(frozen=True)
class Stack:
    """A validated stack: its name, file, assembled configuration and typed settings."""

    name: str
    file: Path
    config: dict[str, Any]
    settings: settings_module.Settings


def load(stack: str, overrides: Mapping[str, Any] | None = None, root: Path | None = None) -> Stack:
    """Find, parse and validate a stack, reporting every problem of its file in one ``SettingsError``."""
    file = path(stack, root)
    conf = config(stack, overrides, root)
    problems = (
        _read(stack, root)[1] + _provider_problems(conf) + account_alarm_owner_problems(stack, conf, root)
    )
    try:
        loaded = settings_module.load(conf, stack=stack, source=file.name)
    except settings_module.SettingsError as error:
        problems = error.problems + problems
    if problems:
        raise settings_module.SettingsError(problems, source=file.name)
    return Stack(name=stack, file=file, config=conf, settings=loaded)
