"""Every IAM document the stages register: exact ARNs, no wildcard outside the allowlist, parliament-clean."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string

from spec import iam
from tools import synth

# Parliament findings that are wrong for these documents: (kind of document, issue, text in the detail, why).
FALSE_POSITIVES = (
    ("trust", "MALFORMED", "neither Resource nor NotResource",
     "trust policies have no Resource by design; parliament reads every document as an identity policy"),
    ("grant", "RESOURCE_MISMATCH", "states:DescribeExecution",
     "DescribeExecution takes an execution or an express ARN (Service Authorization Reference, Step "
     "Functions); parliament wants both in every statement granting it. They are in two statements: "
     "StopExecution, granted beside it on executions, takes no express ARN"),
    ("key", "RESOURCE_STAR", "kms:",
     "in a key policy Resource '*' means the key itself (KMS developer guide, key-policies.html)"),
)  # fmt: skip


def documents(run) -> dict[str, dict]:
    docs = synth.policy_documents(run)
    assert len(docs) >= 9, sorted(docs)
    return docs


def allow_statements(run) -> list[tuple[str, dict]]:
    found = [
        (name, stmt)
        for name, doc in documents(run).items()
        for stmt in doc["Statement"]
        if stmt["Effect"] == "Allow" and "Action" in stmt and "Resource" in stmt
    ]
    assert found
    return found


def key_policy_names(run) -> set[str]:
    return {f"{key.name}.policy" for key in run.of_type("aws:kms/key:Key")}


def test_no_wildcards_outside_the_allowlist(run):
    key_policies = key_policy_names(run)
    for name, doc in documents(run).items():
        if name not in key_policies:
            assert iam.wildcard_problems(doc) == [], name


def test_key_policies_keep_the_account_in_control_and_scope_every_service(run):
    """In a key policy "Resource": "*" means this key. The account-root statement is AWS's default key
    policy (without it the key becomes unmanageable: KMS developer guide, key-policy-default.html); every
    other statement must name a service principal and be scoped by a condition."""
    key_policies = key_policy_names(run)
    assert key_policies
    for name in key_policies:
        for stmt in documents(run)[name]["Statement"]:
            principal = stmt["Principal"]
            if principal.get("AWS") == f"arn:aws:iam::{run.account}:root":
                continue
            assert "Service" in principal, (name, stmt)
            assert stmt.get("Condition"), (name, stmt)
            assert not any(a == "*" or a.endswith(":*") for a in stmt["Action"]), (name, stmt)


def test_wildcard_check_catches_each_kind_of_wildcard():
    doc = iam.document(
        [
            {"Sid": "A", "Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b/*"]},
            {"Sid": "B", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
            {"Sid": "C", "Effect": "Allow", "NotAction": ["iam:*"], "Resource": ["arn:aws:s3:::b"]},
            {"Sid": "D", "Effect": "Allow", "Action": "*", "Resource": ["arn:aws:s3:::b"]},
        ]
    )
    problems = iam.wildcard_problems(doc)
    assert len(problems) == 4, problems


def test_every_granted_resource_is_an_exact_arn_of_this_stage(run):
    stage_marks = (
        f"sensorflow-{run.stack}",
        f"sensorflow_{run.stack}",
        "datacatalog/AwsDataCatalog",
        ":catalog",
    )
    for name, stmt in allow_statements(run):
        resources = [stmt["Resource"]] if isinstance(stmt["Resource"], str) else stmt["Resource"]
        actions = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        for resource in resources:
            if resource == "*":
                assert set(actions) <= iam.RESOURCE_STAR_ACTIONS or name in key_policy_names(run), (
                    name,
                    stmt,
                )
                continue
            assert resource.startswith("arn:aws:"), (name, resource)
            assert any(mark in resource for mark in stage_marks), (name, resource)


def test_detector_may_only_log_and_deliver_to_its_own_stream(run):
    [stmts] = [doc["Statement"] for name, doc in documents(run).items() if name == "detector-policy.policy"]
    stream = run.one("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream").outputs["arn"]
    actions = {a for s in stmts for a in s["Action"]}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "firehose:PutRecordBatch"}
    [deliver] = [s for s in stmts if s["Action"] == ["firehose:PutRecordBatch"]]
    assert deliver["Resource"] == [stream]


def test_state_machine_manages_only_its_own_map_children(run):
    [doc] = [doc for name, doc in documents(run).items() if name == "workflow-policy.policy"]
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    machine = f"arn:aws:states:eu-west-1:{run.account}:stateMachine:sensorflow-{run.stack}-pipeline"
    assert by_sid["StartMapChildren"]["Resource"] == [machine]
    states = f"arn:aws:states:eu-west-1:{run.account}"
    assert by_sid["ManageMapChildren"]["Resource"] == [
        f"{states}:execution:sensorflow-{run.stack}-pipeline:*",
        f"{states}:execution:sensorflow-{run.stack}-pipeline/detect:*",
    ]
    # The children are EXPRESS: their ARNs are express:<machine>/<label>:<id>:<express id> (Service
    # Authorization Reference, resource type "labelled express"), which only DescribeExecution accepts.
    assert by_sid["DescribeExpressMapChildren"]["Resource"] == [
        f"{states}:express:sensorflow-{run.stack}-pipeline/detect:*"
    ]
    assert by_sid["DescribeExpressMapChildren"]["Action"] == ["states:DescribeExecution"]
    # EXPRESS children are re-run with StartExecution when their map run is redriven (RedriveExecution
    # API reference): the role needs no RedriveExecution on them.
    assert by_sid["ManageMapChildren"]["Action"] == ["states:DescribeExecution", "states:StopExecution"]
    function = run.one("aws:lambda/function:Function").outputs["arn"]
    assert by_sid["InvokeDetector"]["Resource"] == [function]


def test_trust_policies_name_one_service_and_this_account(run):
    roles = run.of_type("aws:iam/role:Role")
    assert len(roles) >= 3
    for role in roles:
        [stmt] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert isinstance(stmt["Principal"]["Service"], str), role.name
        service = stmt["Principal"]["Service"]
        # Firehose documents sts:ExternalId = the account (firehose/latest/dev/controlling-access.html).
        key = "sts:ExternalId" if service == "firehose.amazonaws.com" else "aws:SourceAccount"
        assert stmt["Condition"]["StringEquals"] == {key: run.account}, role.name


def document_kind(run, name: str) -> str:
    if name.endswith(".assumeRolePolicy"):
        return "trust"
    return "key" if name in key_policy_names(run) else "grant"


def is_false_positive(kind: str, finding) -> bool:
    return any(
        kind == fp_kind and finding.issue == issue and marker in str(finding.detail)
        for fp_kind, issue, marker, _why in FALSE_POSITIVES
    )


def test_parliament_finds_nothing_but_documented_false_positives(run):
    for name, doc in documents(run).items():
        kind = document_kind(run, name)
        for finding in analyze_policy_string(json.dumps(doc)).findings:
            assert is_false_positive(kind, finding), f"{name}: {finding.issue} {finding.detail}"


def test_every_documented_false_positive_still_occurs(run):
    """An entry that no longer matches a finding is stale: it would hide the next real one."""
    seen = set()
    for name, doc in documents(run).items():
        kind = document_kind(run, name)
        for finding in analyze_policy_string(json.dumps(doc)).findings:
            seen |= {
                entry
                for entry in FALSE_POSITIVES
                if kind == entry[0] and finding.issue == entry[1] and entry[2] in str(finding.detail)
            }
    assert [entry[:3] for entry in FALSE_POSITIVES if entry not in seen] == []


def test_parliament_would_catch_a_real_mistake():
    bad = iam.document(
        [iam.statement("Typo", ["s3:GetObjekt"], ["arn:aws:s3:::bucket/*"], source=iam.DOCS + "s3/")]
    )
    findings = analyze_policy_string(json.dumps(bad)).findings
    assert findings
    assert not any(is_false_positive("grant", f) for f in findings)


@pytest.mark.parametrize("action", sorted(iam.RESOURCE_STAR_ACTIONS))
def test_allowlist_is_valid_iam(action):
    doc = iam.document([iam.statement("Allowlisted", [action], ["*"], source=iam.DOCS + "iam/")])
    issues = {f.issue for f in analyze_policy_string(json.dumps(doc)).findings}
    assert "UNKNOWN_ACTION" not in issues
    assert "UNKNOWN_PREFIX" not in issues


def test_workflow_trust_admits_the_state_machine_and_its_map_children_only(run):
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.inputs["name"].endswith("-pipeline"))
    [stmt] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"]["Service"] == "states.amazonaws.com"
    arn = run.one("aws:sfn/stateMachine:StateMachine").outputs["arn"]
    # Distributed Map children run as stateMachine:<name>/<label> (procedure-create-iam-role.html).
    assert stmt["Condition"]["ArnLike"] == {"aws:SourceArn": [arn, arn + "/*"]}
    # Not every state machine of the account, as the AWS page's example would admit.
    assert all(":stateMachine:*" not in a for a in stmt["Condition"]["ArnLike"]["aws:SourceArn"])


def test_state_machine_reads_only_the_tables_its_queries_read_without_partition_calls(run):
    [doc] = [doc for name, doc in documents(run).items() if name == "workflow-policy.policy"]
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    # Partition projection: Athena builds partitions from table properties, no GetPartitions.
    assert by_sid["ReadTables"]["Action"] == ["glue:GetDatabase", "glue:GetTable"]
    tables = sorted(r.rsplit("/", 1)[1] for r in by_sid["ReadTables"]["Resource"] if ":table/" in r)
    # The day's UNLOAD reads raw readings; reconciliation and KPIs read analysis records. KPIs are
    # only written (UNLOAD objects), so no Glue right on their table.
    assert tables == sorted(
        run.one("aws:glue/catalogTable:CatalogTable", name_contains=role).inputs["name"]
        for role in ("raw", "analysis")
    )
    all_actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert {"glue:GetPartition", "glue:GetPartitions"}.isdisjoint(all_actions)


def test_multipart_listing_only_on_buckets_the_state_machine_writes(run):
    [doc] = [doc for name, doc in documents(run).items() if name == "workflow-policy.policy"]
    raw = run.one("aws:s3/bucket:Bucket", name_contains="raw").outputs["arn"]
    listing = [s for s in doc["Statement"] if "s3:ListBucketMultipartUploads" in s["Action"]]
    assert listing
    assert all(raw not in s["Resource"] for s in listing)
    assert any(raw in s["Resource"] and "s3:ListBucket" in s["Action"] for s in doc["Statement"])
