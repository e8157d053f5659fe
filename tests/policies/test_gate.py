"""The offline gate end to end: harness run -> pack subprocess -> Analyze/AnalyzeStack -> verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.policies.programs import stage_program
from tests.policies.runtime import UNKNOWN
from tools import harness, policy_gate

CONFIG = {stage: policy_gate.CONFIG_DIR / f"{stage}.json" for stage in ("dev", "prod")}
DEV_TOPIC = "arn:aws:sns:eu-west-1:123456789012:sensorflow-dev-alarms"


def owns(stage: str) -> bool:
    """Whether the stage owns the account alarms, as its policy config (kept equal to the stack file) says."""
    return json.loads(CONFIG[stage].read_text())["observability-map-run-alarms"]["ownsAccountAlarms"]


@pytest.fixture(scope="module")
def pack():
    with policy_gate.PackServer(stack="test") as server:
        yield server
    assert not server.running


def gate(program, stage: str, pack, config: Path | None = None) -> policy_gate.GateReport:
    run = harness.run(program, stack=stage)
    return policy_gate.check(run, stage=stage, pack_config=config or CONFIG[stage], server=pack)


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_a_compliant_stage_passes(pack, stage: str) -> None:
    report = gate(stage_program(stage, owns_alarms=owns(stage)), stage, pack)
    assert report.resources_analyzed >= 18
    assert report.violations == [], "\n".join(v.line() for v in report.violations)
    assert report.passed


@pytest.mark.parametrize(
    ("change", "rule", "resource"),
    [
        ({"wildcard_statement": True}, "iam-no-wildcard-actions", "detector-policy"),
        ({"wildcard_statement": True}, "iam-no-resource-star", "detector-policy"),
        ({"public_bucket": True}, "s3-no-public-access", "raw-pab"),
        ({"public_bucket": True}, "s3-bucket-public-access-block", "raw"),
        ({"unlogged_bucket": True}, "s3-bucket-access-logging", "unload"),
        ({"foreign_log_writer": True}, "s3-access-log-bucket-policy", "access-logs-tls"),
        ({"max_concurrency": 0}, "sfn-distributed-map-guardrails", "workflow"),
        ({"max_concurrency": 0}, "sfn-map-concurrency-within-lambda-reserve", "workflow"),
        ({"max_concurrency": 50}, "sfn-map-concurrency-within-lambda-reserve", "workflow"),
        (
            {"alarm_topic_arn": DEV_TOPIC},
            "observability-alarm-topics-match-stage",
            "ApproximateOpenMapRunCount",
        ),
    ],
)
def test_an_unsafe_change_fails_prod_naming_rule_and_resource(pack, change, rule: str, resource: str) -> None:
    report = gate(stage_program("prod", owns_alarms=True, **change), "prod", pack)
    assert not report.passed
    hits = [v for v in report.mandatory if v.policy == rule]
    assert hits, "\n".join(v.line() for v in report.violations)
    assert any(v.resource == resource for v in hits), [v.resource for v in hits]
    assert any(f"{rule}: {resource} (" in v.line() for v in hits)


@pytest.mark.parametrize(
    "change",
    [
        {"wildcard_statement": True},
        {"public_bucket": True},
        {"max_concurrency": 0},
        {"unlogged_bucket": True},
        {"foreign_log_writer": True},
    ],
)
def test_security_rules_block_dev_too(pack, change) -> None:
    report = gate(stage_program("dev", owns_alarms=False, **change), "dev", pack)
    assert report.mandatory, "dev let an unsafe change through"


def test_dev_levels_are_advisory_for_operational_rules(pack) -> None:
    def untraced():
        stage_program("dev", owns_alarms=owns("dev"))()
        import pulumi_aws as aws

        aws.cloudwatch.LogGroup("forever", name="/x/forever", tags={"stage": "dev", "owner": "o"})

    report = gate(untraced, "dev", pack)
    assert [(v.policy, v.level) for v in report.violations] == [("logs-retention-set", "advisory")]
    assert report.passed
    prod = gate(untraced, "prod", pack)
    assert any(v.policy == "logs-retention-set" and v.mandatory for v in prod.violations)


def test_prod_config_requires_the_account_alarms(pack) -> None:
    report = gate(stage_program("prod", owns_alarms=False), "prod", pack)
    assert {v.policy for v in report.mandatory} == {"observability-map-run-alarms"}
    assert all(v.resource == "(stack)" for v in report.mandatory)


def test_a_stack_that_does_not_own_the_account_alarms_fails_when_it_creates_them(pack, tmp_path) -> None:
    config = json.loads(CONFIG["dev"].read_text())
    config["observability-map-run-alarms"]["ownsAccountAlarms"] = False
    shared = tmp_path / "dev-shared-account.json"
    shared.write_text(json.dumps(config))
    report = gate(stage_program("dev", owns_alarms=True), "dev", pack, shared)
    assert {v.resource for v in report.mandatory if v.policy == "observability-map-run-alarms"} == {
        "ApproximateOpenMapRunCount",
        "ApproximateMapRunBacklogSize",
    }


def test_unknown_resource_arn_still_yields_a_mandatory_violation(pack) -> None:
    """A preview-time policy whose Resource is unknown: the wildcard action is still mandatory."""
    run = harness.Run(stack="prod", config={})
    statement = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": UNKNOWN}
    run.resources = [
        harness.Resource(
            "aws:iam/rolePolicy:RolePolicy",
            "preview-policy",
            "urn:pulumi:prod::sensorflow::aws:iam/rolePolicy:RolePolicy::preview-policy",
            "",
            {"role": UNKNOWN, "policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
            {},
            parent=None,
            custom=True,
        ),
        harness.Resource(
            "aws:iam/rolePolicy:RolePolicy",
            "unknown-doc",
            "urn:pulumi:prod::sensorflow::aws:iam/rolePolicy:RolePolicy::unknown-doc",
            "",
            {"role": "r", "policy": UNKNOWN},
            {},
            parent=None,
            custom=True,
        ),
    ]
    report = policy_gate.check(run, stage="prod", pack_config=None, server=pack)
    wildcard = [v for v in report.violations if v.policy == "iam-no-wildcard-actions"]
    assert [(v.resource, v.level) for v in wildcard if v.resource == "preview-policy"] == [
        ("preview-policy", "mandatory")
    ]
    # A wholly unknown document cannot be judged: the runtime's own advisory "during preview" diagnostic.
    unknown = [v for v in report.violations if v.resource == "unknown-doc"]
    assert unknown, "the unknown document produced no diagnostic"
    assert all(v.level == "advisory" and "during preview" in v.message for v in unknown)


def test_the_cli_exits_1_on_a_mandatory_violation_and_0_when_clean(monkeypatch, capsys) -> None:
    monkeypatch.setattr(
        harness,
        "run",
        lambda stack, **_: harness_run(stage_program("prod", owns_alarms=True, public_bucket=True)),
    )
    assert policy_gate.main(["--stack", "prod"]) == 1
    out = capsys.readouterr().out
    assert (
        "[mandatory] s3-no-public-access: raw-pab (aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock)"
        in out
    )
    assert "FAILED" in out
    monkeypatch.setattr(
        harness, "run", lambda stack, **_: harness_run(stage_program("prod", owns_alarms=True))
    )
    assert policy_gate.main(["--stack", "prod"]) == 0
    assert "passed: 0 mandatory" in capsys.readouterr().out


_real_run = harness.run


def harness_run(program) -> harness.Run:
    return _real_run(program, stack="prod")


def test_the_pack_process_is_stopped_even_when_the_check_fails(monkeypatch, tmp_path) -> None:
    started: list[policy_gate.PackServer] = []
    original = policy_gate.PackServer.start

    def spy(self: policy_gate.PackServer) -> None:
        started.append(self)
        original(self)

    monkeypatch.setattr(policy_gate.PackServer, "start", spy)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"iam-no-wildcard-actions": {"enforcementLevel": "mandatory", "colour": "red"}})
    )
    run = harness_run(stage_program("prod", owns_alarms=True))
    with pytest.raises(policy_gate.GateError, match="iam-no-wildcard-actions: unknown property 'colour'"):
        policy_gate.check(run, stage="prod", pack_config=bad)
    assert len(started) == 1
    assert not started[0].running


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"all": "loud"}, "all: enforcement level 'loud'"),
        ({"no-such-rule": "advisory"}, "'no-such-rule' is not a policy of this pack"),
        ({"tags-stage-owner": 3}, "tags-stage-owner: expected a level or an object"),
    ],
)
def test_bad_policy_config_is_named(config, message: str) -> None:
    policies = {"tags-stage-owner": ("mandatory", {"stage": {}})}
    with pytest.raises(policy_gate.GateError, match=message):
        policy_gate.resolve_config(policies, config)


def test_an_empty_run_is_refused() -> None:
    with pytest.raises(policy_gate.GateError, match="registered no resources"):
        policy_gate.check(harness.Run(stack="dev", config={}), stage="dev")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_committed_stacks_pass(pack, stage: str) -> None:
    if not (policy_gate.ROOT / "__main__.py").exists():
        pytest.skip("the program's __main__.py is not there yet")
    report = policy_gate.check(harness.run(stack=stage), stage=stage, pack_config=CONFIG[stage], server=pack)
    assert report.resources_analyzed > 0
    assert report.passed, "\n".join(v.line() for v in report.mandatory)
