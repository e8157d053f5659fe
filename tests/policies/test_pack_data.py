"""The pack's data stays true: allowlist = the platform's, stage configs = the stack files, taggable list
= the installed pulumi-aws, and the pack boots from its directory the way the engine starts it."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.policies.runtime import PACK_DIR, sensorflow_policy
from tools import policy_gate

ROOT = PACK_DIR.parent


def test_allowlist_matches_the_platform() -> None:
    iam = pytest.importorskip("spec.iam")
    from sensorflow_policy.iam_allowlist import RESOURCE_STAR_ACTIONS

    assert RESOURCE_STAR_ACTIONS
    assert frozenset(iam.RESOURCE_STAR_ACTIONS) == RESOURCE_STAR_ACTIONS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_policy_config_agrees_with_the_stack_file(stage: str) -> None:
    stack = yaml.safe_load((ROOT / f"Pulumi.{stage}.yaml").read_text())["config"]
    config = json.loads((PACK_DIR / "config" / f"{stage}.json").read_text())
    assert (
        config["observability-map-run-alarms"]["ownsAccountAlarms"] == stack["sensorflow:ownsAccountAlarms"]
    )
    stage_props = [v["stage"] for v in config.values() if isinstance(v, dict) and "stage" in v]
    assert stage_props, "the config names no stage"
    assert set(stage_props) == {stack["sensorflow:stage"]}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_policy_config_resolves_against_the_pack(stage: str) -> None:
    policies = {
        p.name: ("mandatory", dict(p.config_schema.properties) if p.config_schema else {})
        for p in sensorflow_policy.all_policies()
    }
    resolved = policy_gate.resolve_config(
        policies, policy_gate.load_pack_config(PACK_DIR / "config" / f"{stage}.json")
    )
    assert set(resolved) == set(policies)
    levels = {level for level, _ in resolved.values()}
    assert levels == ({"mandatory"} if stage == "prod" else {"mandatory", "advisory"})


def test_taggable_types_match_the_installed_pulumi_aws() -> None:
    aws = pytest.importorskip("pulumi_aws")
    sys.path.insert(0, str(PACK_DIR))
    try:
        import generate_taggable
    finally:
        sys.path.remove(str(PACK_DIR))
    from pathlib import Path

    current = generate_taggable.taggable_types(Path(aws.__file__).parent)
    stored = json.loads(generate_taggable.OUTPUT.read_text())["types"]
    assert "aws:s3/bucket:Bucket" in stored
    assert "aws:iam/rolePolicy:RolePolicy" not in stored  # inline policies take no tags
    assert current == stored, "run: .venv/bin/python policies/generate_taggable.py"


def test_the_pack_boots_in_its_own_environment_and_lists_every_rule() -> None:
    from google.protobuf import empty_pb2

    with policy_gate.PackServer(stack="dev") as server:
        info = server.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == sensorflow_policy.PACK_NAME
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in sensorflow_policy.all_policies())
    assert all(p.remediation_steps and p.severity for p in info.policies)
    assert not server.running


def rules_table() -> dict[str, dict[str, str]]:
    """docs/policy.md's Rules table: rule -> {"dev": "M"/"A", "prod": ...}."""
    text = (ROOT / "docs" / "policy.md").read_text()
    rows = {}
    for line in text[text.index("## Rules") :].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = {"dev": cells[3], "prod": cells[4]}
    assert rows, "docs/policy.md has no Rules table"
    return rows


def test_the_docs_rules_table_is_the_pack_with_each_stages_levels() -> None:
    """docs/policy.md lists every rule of the pack, and nothing else, at the level each stage's config gives."""
    policies = {
        p.name: ("mandatory", dict(p.config_schema.properties) if p.config_schema else {})
        for p in sensorflow_policy.all_policies()
    }
    table = rules_table()
    assert set(table) == set(policies)
    for stage in ("dev", "prod"):
        resolved = policy_gate.resolve_config(
            policies, policy_gate.load_pack_config(PACK_DIR / "config" / f"{stage}.json")
        )
        shown = {name: levels[stage] for name, levels in table.items()}
        assert shown == {name: level[0].upper() for name, (level, _) in resolved.items()}, stage
