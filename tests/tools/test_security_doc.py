"""docs/security.md lists every role the program creates, with each grant's documented source."""

from __future__ import annotations

import json

import pytest

from spec import iam
from tools import docs, security_doc


def test_the_role_tables_are_current():
    (block,) = [b for b in docs.BLOCKS if b.name == "roles"]
    assert block.current() == security_doc.markdown(), (
        "docs/security.md is stale: python -m tools.docs --write"
    )


def program_roles(runs) -> dict[str, dict]:
    """``<role>`` (the physical name after ``sensorflow-<stage>-``) -> trust and grants, over both stages."""
    found: dict[str, dict] = {}
    for stage, run in runs.items():
        policies = {
            p.inputs["role"]: json.loads(p.inputs["policy"])
            for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        }
        for role in run.of_type("aws:iam/role:Role"):
            name = role.inputs["name"]
            key = name.removeprefix(f"sensorflow-{stage}-")
            found[key] = {"trust": json.loads(role.inputs["assumeRolePolicy"]), "policy": policies[name]}
    assert found
    return found


def test_every_role_of_the_program_is_documented_with_its_grants(runs):
    documented = {role.name: role for role in security_doc.roles()}
    actual = program_roles(runs)
    assert set(actual) == set(documented)
    for name, role in documented.items():
        sids = [s["Sid"] for s in actual[name]["policy"]["Statement"]]
        assert sids == [s["Sid"] for s in role.policy["Statement"]], name
        (trust,) = actual[name]["trust"]["Statement"]
        assert trust["Principal"] == {"Service": role.service}, name
        assert {op: sorted(keys) for op, keys in trust["Condition"].items()} == {
            op: sorted(keys) for op, keys in role.trust["Statement"][0]["Condition"].items()
        }, name


def test_every_grant_and_trust_names_an_aws_page():
    statements = [s for role in security_doc.roles() for s in role.policy["Statement"]]
    assert len(statements) >= 20
    for stmt in statements:
        assert stmt.source.startswith(iam.DOCS), stmt["Sid"]
    for role in security_doc.roles():
        assert iam.TRUST_SOURCES[role.service].startswith(iam.DOCS)


def test_a_grant_without_a_documented_source_is_refused():
    with pytest.raises(ValueError, match="source must be a page"):
        iam.statement("Guess", ["s3:GetObject"], ["arn:aws:s3:::b/*"], source="it seemed needed")
    with pytest.raises(TypeError):
        iam.statement("Missing", ["s3:GetObject"], ["arn:aws:s3:::b/*"])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="no documented condition"):
        iam.trust_policy("ec2.amazonaws.com", source_account="111111111111")
