"""Small Pulumi programs built from real pulumi-aws resources, for driving the gate under the harness.

``stage_program`` registers a compliant slice of a stage (buckets with their satellites, a role and its
policy, the detector with its log group, a state machine with a Distributed Map, Firehose, a topic and
alarms). Its keyword arguments inject exactly one unsafe change each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.policies import fixtures as fx


def stage_program(
    stage: str,
    *,
    owns_alarms: bool,
    max_concurrency: int = 5,
    wildcard_statement: bool = False,
    public_bucket: bool = False,
    alarm_topic_arn: str | None = None,
    unlogged_bucket: bool = False,
    foreign_log_writer: bool = False,
) -> Callable[[], None]:
    def program() -> None:
        import pulumi
        import pulumi_aws as aws

        tags = fx.tags(stage)
        fn_name = f"sensorflow-{stage}-detector"

        buckets: dict[str, Any] = {}
        policies: dict[str, Any] = {}
        for role, data_class in (("raw", "data"), ("unload", "staging"), ("access-logs", "access-logs")):
            name = fx.bucket_name(stage, role)
            bucket = aws.s3.Bucket(role, bucket=name, tags=fx.tags(stage, **{"data-class": data_class}))
            buckets[role] = bucket
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{role}-sse",
                bucket=bucket.bucket,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            )
            block = not (public_bucket and role == "raw")
            aws.s3.BucketPublicAccessBlock(
                f"{role}-pab",
                bucket=bucket.bucket,
                block_public_acls=block,
                block_public_policy=block,
                ignore_public_acls=block,
                restrict_public_buckets=block,
            )
            statements: list[Any] = [
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:*",
                    "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
            if data_class == "access-logs":
                statements += [fx.log_grant(stage, source) for source in ("raw", "unload")]
                if foreign_log_writer:
                    statements.append(
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "firehose.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": pulumi.Output.concat(bucket.arn, "/*"),
                        }
                    )
            policies[role] = aws.s3.BucketPolicy(
                f"{role}-tls",
                bucket=bucket.bucket,
                policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
            )
            if data_class == "data":
                aws.s3.BucketVersioning(
                    f"{role}-versioning", bucket=bucket.bucket, versioning_configuration={"status": "Enabled"}
                )

        for source in ("raw",) if unlogged_bucket else ("raw", "unload"):
            aws.s3.BucketLogging(
                f"{source}-logging",
                bucket=buckets[source].bucket,
                target_bucket=buckets["access-logs"].bucket,
                target_prefix=f"{fx.bucket_name(stage, source)}/",
                opts=pulumi.ResourceOptions(depends_on=[policies["access-logs"]]),
            )

        role = aws.iam.Role(
            "detector-role",
            name=f"sensorflow-{stage}-detector",
            assume_role_policy=fx.doc(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ),
            tags=tags,
        )
        logs = aws.cloudwatch.LogGroup(
            "detector-logs", name=f"/aws/lambda/{fn_name}", retention_in_days=7, tags=tags
        )
        function = aws.lambda_.Function(
            "detector",
            name=fn_name,
            role=role.arn,
            runtime="python3.12",
            handler="detector.handler.lambda_handler",
            code=pulumi.AssetArchive(
                {"index.py": pulumi.StringAsset("def handler(event, context):\n    return event\n")}
            ),
            reserved_concurrent_executions=5,
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags=tags,
        )
        statements: list[Any] = [
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": logs.arn}
        ]
        if wildcard_statement:
            statements.append({"Effect": "Allow", "Action": "*", "Resource": "*"})
        aws.iam.RolePolicy(
            "detector-policy",
            role=role.name,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
        )

        sfn_logs = aws.cloudwatch.LogGroup(
            "workflow-logs", name=f"/aws/vendedlogs/states/sensorflow-{stage}", retention_in_days=7, tags=tags
        )
        sfn_role = aws.iam.Role(
            "workflow-role",
            name=f"sensorflow-{stage}-workflow",
            assume_role_policy=fx.doc(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "states.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ),
            tags=tags,
        )
        definition = function.arn.apply(
            lambda arn: json.dumps(fx.definition(stage, max_concurrency=max_concurrency)).replace(
                fx.function_arn(stage), arn
            )
        )
        aws.sfn.StateMachine(
            "workflow",
            name=f"sensorflow-{stage}-workflow",
            role_arn=sfn_role.arn,
            definition=definition,
            logging_configuration={
                "level": "ERROR",
                "include_execution_data": False,
                "log_destination": pulumi.Output.concat(sfn_logs.arn, ":*"),
            },
            tracing_configuration={"enabled": True},
            tags=tags,
        )
        aws.kinesis.FirehoseDeliveryStream(
            "delivery",
            name=f"sensorflow-{stage}-analysis",
            destination="extended_s3",
            extended_s3_configuration={"role_arn": role.arn, "bucket_arn": "arn:aws:s3:::x"},
            server_side_encryption={"enabled": True, "key_type": "AWS_OWNED_CMK"},
            tags=tags,
        )
        topic = aws.sns.Topic(
            "alarms",
            name=f"sensorflow-{stage}-alarms",
            kms_master_key_id=f"arn:aws:kms:eu-west-1:123456789012:key/{stage}-alarms-key",
            tags=tags,
        )
        metrics = ["ApproximateOpenMapRunCount", "ApproximateMapRunBacklogSize"] if owns_alarms else []
        for metric in metrics:
            actions = [alarm_topic_arn] if alarm_topic_arn else [topic.arn]
            aws.cloudwatch.MetricAlarm(
                metric,
                name=f"sensorflow-{stage}-{metric}",
                namespace="AWS/States",
                metric_name=metric,
                comparison_operator="GreaterThanOrEqualToThreshold",
                evaluation_periods=1,
                period=300,
                statistic="Maximum",
                threshold=900,
                alarm_actions=actions,
                treat_missing_data="notBreaching",
                tags=tags,
            )

    return program
