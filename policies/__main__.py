"""Entry point the engine runs: construct the pack, which serves the analyzer gRPC API until killed.

Nothing else belongs here: ``PolicyPack(...)`` never returns (it prints its port and sleeps while the gRPC
server answers ``GetAnalyzerInfo``/``Configure``/``Analyze``/``AnalyzeStack``), so the rules live in the
importable ``sensorflow_policy`` package where tests use them directly.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from sensorflow_policy import PACK_NAME, all_policies

PolicyPack(
    name=PACK_NAME,
    # Without a --policy-pack-config every rule blocks: the safe default. The per-stage files under
    # config/ relax the operational rules in dev.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
    description="sensorflow guardrails: IAM, S3, Step Functions, Lambda, Firehose, SNS, alarms, tags.",
)
