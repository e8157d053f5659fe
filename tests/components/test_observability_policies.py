"""The key, topic and scheduler policies as data: who may do what, under which condition."""

from __future__ import annotations

from components.notifications import kms_key_policy, subscription_suffix, subscriptions, topic_policy
from components.schedule import SCHEDULER_PRINCIPAL, scheduler_role_policy
from spec import iam
from spec.naming import Account
from tests.spec.support import MOCK_ACCOUNT, load_settings, statement

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:sensorflow-prod-alarms"
ALARM_ARNS = ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:sensorflow-prod-executions-failed"]
SM_ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:sensorflow-prod-pipeline"


def test_key_policy_lets_cloudwatch_encrypt_for_this_account_only():
    doc = kms_key_policy(MOCK_ACCOUNT)
    cw = statement(doc, "CloudWatchAlarmsEncryptToTopic")
    assert cw["Effect"] == "Allow"
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cw["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cw["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_key_policy_root_statement_is_scoped_to_the_account_and_partition():
    gov = Account(partition="aws-us-gov", region="us-gov-west-1", account_id="210987654321")
    root = statement(kms_key_policy(gov), "AccountAdministersKey")
    assert root["Principal"] == {"AWS": "arn:aws-us-gov:iam::210987654321:root"}
    assert root["Action"] == "kms:*"


def test_topic_policy_allows_only_the_listed_alarms_and_denies_plain_http():
    doc = topic_policy(TOPIC_ARN, MOCK_ACCOUNT, ALARM_ARNS)
    allow = statement(doc, "StageAlarmsPublish")
    assert (allow["Effect"], allow["Action"], allow["Resource"]) == ("Allow", "sns:Publish", TOPIC_ARN)
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert allow["Condition"]["ArnLike"] == {"aws:SourceArn": ALARM_ARNS}
    deny = statement(doc, "DenyInsecureTransport")
    assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert [s["Effect"] for s in doc["Statement"]].count("Allow") == 1


def test_scheduler_role_trusts_scheduler_for_this_account_and_may_only_start_the_pipeline():
    trust = iam.trust_policy(SCHEDULER_PRINCIPAL, source_account="123456789012")["Statement"]
    assert len(trust) == 1
    assert trust[0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust[0]["Action"] == "sts:AssumeRole"
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    allowed = scheduler_role_policy(SM_ARN)["Statement"]
    assert allowed == [
        {"Sid": "StartPipeline", "Effect": "Allow", "Action": ["states:StartExecution"], "Resource": [SM_ARN]}
    ]


def test_subscriptions_come_from_config_and_have_stable_names():
    prod = load_settings("prod")
    subs = subscriptions(prod.alarm_emails, prod.alarm_https_endpoints)
    assert ("email", "iot-platform-oncall@example.com") in subs
    assert [p for p, _ in subs].count("https") == len(prod.alarm_https_endpoints) >= 1
    suffixes = [subscription_suffix(p, e) for p, e in subs]
    assert len(set(suffixes)) == len(suffixes)
    assert subscription_suffix("email", "a@example.com") == subscription_suffix("email", "a@example.com")
    assert subscriptions((), ()) == []
