"""A compliant stage as plain camelCase props (what the engine sends), and the mutations that break it.

``good_stack(stage)`` returns ``(type, name, props)`` triples that satisfy every rule; each test breaks one
thing with ``replace`` so the non-compliant case differs from the compliant one by exactly that thing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

ACCOUNT = "123456789012"
REGION = "eu-west-1"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
RETRY = [
    {
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2,
    }
]


def tags(stage: str, **extra: str) -> dict[str, str]:
    return {"stage": stage, "owner": "iot-platform", **extra}


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def function_arn(stage: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sensorflow-{stage}-detector"


def definition(stage: str, *, max_concurrency: Any = 5, nested: bool = False) -> dict[str, Any]:
    """A JSONata definition with one Distributed Map invoking the detector (optionally inside a Parallel)."""
    dmap = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "PARQUET", "ManifestType": "ATHENA_DATA"},
            "Arguments": {"Bucket": "b", "Key": "k"},
        },
        "ItemBatcher": {"MaxItemsPerBatch": 250},
        "MaxConcurrency": max_concurrency,
        "ToleratedFailurePercentage": 5,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Detect",
            "States": {
                "Detect": {
                    "Type": "Task",
                    "Resource": LAMBDA_INVOKE,
                    "Arguments": {"FunctionName": function_arn(stage), "Payload": "{% $states.input %}"},
                    "Retry": RETRY,
                    "End": True,
                }
            },
        },
        "End": True,
    }
    if nested:
        dmap = {
            "Type": "Parallel",
            "Branches": [{"StartAt": "Inner", "States": {"Inner": dmap}}],
            "End": True,
        }
    return {"QueryLanguage": "JSONata", "StartAt": "Process", "States": {"Process": dmap}}


def bucket_set(stage: str, role: str, data_class: str) -> list[tuple[str, str, dict[str, Any]]]:
    name = f"sensorflow-{stage}-{role}-{ACCOUNT}-{REGION}"
    arn = f"arn:aws:s3:::{name}"
    out = [
        (
            "aws:s3/bucket:Bucket",
            role,
            {"bucket": name, "arn": arn, "tags": tags(stage, **{"data-class": data_class})},
        ),
        (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{role}-sse",
            {"bucket": name, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        ),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            f"{role}-pab",
            {
                "bucket": name,
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
        (
            "aws:s3/bucketPolicy:BucketPolicy",
            f"{role}-tls",
            {
                "bucket": name,
                "policy": doc(
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ),
            },
        ),
    ]
    if data_class == "data":
        out.append(
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                f"{role}-versioning",
                {"bucket": name, "versioningConfiguration": {"status": "Enabled"}},
            )
        )
    return out


def bucket_name(stage: str, role: str) -> str:
    return f"sensorflow-{stage}-{role}-{ACCOUNT}-{REGION}"


def log_grant(stage: str, source_role: str) -> dict[str, Any]:
    """The S3 User Guide's log delivery grant for one source bucket (enable-server-access-logging.html)."""
    log_arn = f"arn:aws:s3:::{bucket_name(stage, 'access-logs')}"
    source = bucket_name(stage, source_role)
    return {
        "Sid": f"S3ServerAccessLogs{source_role.capitalize()}",
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject",
        "Resource": f"{log_arn}/{source}/*",
        "Condition": {
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{source}"},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        },
    }


def access_log_set(stage: str, sources: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """The access-log bucket (its TLS policy plus one delivery grant per source) and each source's logging."""
    out = bucket_set(stage, "access-logs", "access-logs")
    tls = find(out, "access-logs-tls")[2]
    tls_statements = json.loads(tls["policy"])["Statement"]
    tls["policy"] = doc(*tls_statements, *(log_grant(stage, role) for role in sources))
    for role in sources:
        out.append(
            (
                "aws:s3/bucketLogging:BucketLogging",
                f"{role}-logging",
                {
                    "bucket": bucket_name(stage, role),
                    "targetBucket": bucket_name(stage, "access-logs"),
                    "targetPrefix": f"{bucket_name(stage, role)}/",
                },
            )
        )
    return out


def good_stack(stage: str = "prod", *, owns_alarms: bool = True) -> list[tuple[str, str, dict[str, Any]]]:
    fn = f"sensorflow-{stage}-detector"
    topic = f"sensorflow-{stage}-alarms"
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}"
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/sensorflow-{stage}-workflow"
    resources = [
        *bucket_set(stage, "raw", "data"),
        *bucket_set(stage, "unload", "staging"),
        *access_log_set(stage, ("raw", "unload")),
        (
            "aws:iam/role:Role",
            "workflow-role",
            {
                "name": f"sensorflow-{stage}-workflow",
                "assumeRolePolicy": doc(
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ),
                "tags": tags(stage),
            },
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            "workflow-policy",
            {
                "role": f"sensorflow-{stage}-workflow",
                "policy": doc(
                    {
                        "Sid": "Invoke",
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": function_arn(stage),
                    },
                    {
                        "Sid": "Xray",
                        "Effect": "Allow",
                        "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                        "Resource": "*",
                    },
                    {
                        "Sid": "Metrics",
                        "Effect": "Allow",
                        "Action": "cloudwatch:PutMetricData",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"cloudwatch:namespace": "Sensorflow"}},
                    },
                    {
                        "Sid": "PassSchedulerRole",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": role_arn,
                        "Condition": {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}},
                    },
                ),
            },
        ),
        (
            "aws:cloudwatch/logGroup:LogGroup",
            "detector-logs",
            {"name": f"/aws/lambda/{fn}", "retentionInDays": 90, "tags": tags(stage)},
        ),
        (
            "aws:lambda/function:Function",
            "detector",
            {
                "name": fn,
                "arn": function_arn(stage),
                "runtime": "python3.12",
                "reservedConcurrentExecutions": 10,
                "loggingConfig": {"logFormat": "JSON", "logGroup": f"/aws/lambda/{fn}"},
                "tags": tags(stage),
            },
        ),
        (
            "aws:sfn/stateMachine:StateMachine",
            "workflow",
            {
                "name": f"sensorflow-{stage}-workflow",
                "definition": json.dumps(definition(stage)),
                "loggingConfiguration": {
                    "level": "ERROR",
                    "includeExecutionData": False,
                    "logDestination": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/x:*",
                },
                "tracingConfiguration": {"enabled": True},
                "tags": tags(stage),
            },
        ),
        (
            "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
            "delivery",
            {
                "name": f"sensorflow-{stage}-analysis",
                "serverSideEncryption": {"enabled": True, "keyType": "AWS_OWNED_CMK"},
                "tags": tags(stage),
            },
        ),
        (
            "aws:sns/topic:Topic",
            "alarms",
            {
                "name": topic,
                "arn": topic_arn,
                "kmsMasterKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{stage}-alarms-key",
                "tags": tags(stage),
            },
        ),
        (
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "executions-failed",
            {
                "namespace": "AWS/States",
                "metricName": "ExecutionsFailed",
                "dimensions": {"StateMachineArn": "arn:x"},
                "alarmActions": [topic_arn],
                "okActions": [topic_arn],
                "treatMissingData": "notBreaching",
                "tags": tags(stage),
            },
        ),
    ]
    if owns_alarms:
        for metric in ("ApproximateOpenMapRunCount", "ApproximateMapRunBacklogSize"):
            resources.append(
                (
                    "aws:cloudwatch/metricAlarm:MetricAlarm",
                    metric,
                    {
                        "namespace": "AWS/States",
                        "metricName": metric,
                        "alarmActions": [topic_arn],
                        "treatMissingData": "notBreaching",
                        "tags": tags(stage),
                    },
                )
            )
    return resources


def find(resources: list[tuple[str, str, dict[str, Any]]], name: str) -> tuple[str, str, dict[str, Any]]:
    for resource in resources:
        if resource[1] == name:
            return resource
    raise KeyError(f"no resource {name!r} in {[r[1] for r in resources]}")


def replace(
    resources: list[tuple[str, str, dict[str, Any]]], name: str, **props: Any
) -> list[tuple[str, str, dict[str, Any]]]:
    """A deep copy of ``resources`` with ``props`` set (``None`` removes the key) on resource ``name``."""
    out = copy.deepcopy(resources)
    find(out, name)  # fail loudly on a typo
    for type_, rname, rprops in out:
        if rname == name:
            for key, value in props.items():
                if value is None:
                    rprops.pop(key, None)
                else:
                    rprops[key] = value
            del type_
    return out


def without(
    resources: list[tuple[str, str, dict[str, Any]]], name: str
) -> list[tuple[str, str, dict[str, Any]]]:
    find(resources, name)
    return [r for r in copy.deepcopy(resources) if r[1] != name]
