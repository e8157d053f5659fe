"""``make synth``: the offline preview. Renders each stage under the recording mocks and writes what a
reviewer wants to read and diff between stages:

    build/<stage>/resources.txt        the resource tree (type, logical name), as `pulumi preview` lists it
    build/<stage>/resources.json       every resource with its inputs (camelCase, as the engine sees them)
    build/<stage>/definition.asl.json  the state machine definition, rendered with the stage's names
    build/<stage>/iam/<resource>.json  every IAM document: trust and inline policies, bucket/topic/key policies
    build/<stage>/stack.json           the stack's exports and its typed settings

The local run (``make demo``) executes ``definition.asl.json`` and reads the rest from these files; a
local run or test that has no build folder, or varies a setting, takes the same files from ``render``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spec import settings as settings_module
from tools import harness, stackfile

BUILD = harness.ROOT / "build"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
# (resource type, input holding a JSON policy document)
POLICY_INPUTS = (
    ("aws:iam/role:Role", "assumeRolePolicy"),
    ("aws:iam/rolePolicy:RolePolicy", "policy"),
    ("aws:iam/policy:Policy", "policy"),
    ("aws:s3/bucketPolicy:BucketPolicy", "policy"),
    ("aws:sns/topicPolicy:TopicPolicy", "policy"),
    ("aws:kms/key:Key", "policy"),
)


def policy_documents(run: harness.Run) -> dict[str, dict[str, Any]]:
    """Every IAM document the stage registers, keyed ``<logical name>.<input>``."""
    documents = {}
    for type_, key in POLICY_INPUTS:
        for resource in run.of_type(type_):
            if resource.inputs.get(key):
                documents[f"{resource.name}.{key}"] = json.loads(resource.inputs[key])
    return documents


def tree(run: harness.Run) -> str:
    """The resource tree, children indented under their parent component."""
    by_parent: dict[str | None, list[harness.Resource]] = {}
    urns = {r.urn for r in run.resources}
    for r in run.resources:
        by_parent.setdefault(r.parent if r.parent in urns else None, []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        # By name, not registration order: components register concurrently, so that order varies.
        for r in sorted(by_parent.get(parent, []), key=lambda r: (r.name, r.type)):
            lines.append(f"{'    ' * depth}{r.type}  {r.name}")
            walk(r.urn, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _rendered(value: Any) -> str:
    """A value JSON cannot hold, as text that is the same on every run and machine: an asset or archive
    by its path relative to the project (never its object address)."""
    path = getattr(value, "path", None)
    if isinstance(path, str):
        shown = Path(path)
        shown = shown.relative_to(harness.ROOT) if shown.is_relative_to(harness.ROOT) else shown
        return f"{type(value).__name__}({shown})"
    return str(value)


def render(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """One stage's rendering: each file's path relative to ``build/<stack>/`` -> its text.

    The stack file (with ``overrides``: single keys changed, as ``harness.run`` takes them) is validated
    first (``tools.stackfile.load``: every problem at once, on the YAML types), so the program never runs
    on a configuration with problems.
    """
    stage_settings = stackfile.load(stack, overrides).settings
    run = harness.run(stack=stack, overrides=overrides)
    files = {"resources.txt": tree(run) + "\n"}
    files["resources.json"] = (
        json.dumps(
            [
                {"type": r.type, "name": r.name, "parent": r.parent, "inputs": r.inputs}
                for r in sorted(run.resources, key=lambda r: (r.parent or "", r.name, r.type))
            ],
            indent=2,
            sort_keys=True,
            default=_rendered,
        )
        + "\n"
    )
    definition = json.loads(run.one(STATE_MACHINE).inputs["definition"])
    files["definition.asl.json"] = json.dumps(definition, indent=2) + "\n"
    for name, doc in policy_documents(run).items():
        files[f"iam/{name}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    files["stack.json"] = (
        json.dumps(
            {"stack": stack, "exports": run.exports, "settings": dataclasses.asdict(stage_settings)},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    return files


def synth(stack: str, out: Path = BUILD) -> Path:
    """Render one stage into ``out/<stack>/`` (``render``) and return that folder."""
    files = render(stack)
    folder = out / stack
    (folder / "iam").mkdir(parents=True, exist_ok=True)
    for stale in (folder / "iam").glob("*.json"):
        stale.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", action="append", required=True, help="stage to render (repeatable)")
    parser.add_argument("--out", type=Path, default=BUILD, help="output folder (default: build/)")
    args = parser.parse_args(argv)
    # Every named stack is checked before any is rendered: a typo in the second stops the first too.
    failed = False
    for stack in args.stack:
        try:
            stackfile.load(stack)
        except settings_module.SettingsError as error:
            print(f"synth: {error}", file=sys.stderr)
            failed = True
    if failed:
        return 1
    for stack in args.stack:
        try:
            folder = synth(stack, args.out)
        except settings_module.SettingsError as error:
            print(f"synth: {error}", file=sys.stderr)
            return 1
        resources = (folder / "resources.txt").read_text()
        shown = folder.relative_to(harness.ROOT) if folder.is_relative_to(harness.ROOT) else folder
        print(f"== {stack}: {resources.count(chr(10))} resources -> {shown}/")
        print(resources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
