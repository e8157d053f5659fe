"""The detector function: the Lambda the Distributed Map's children invoke, with its role and log group.

Its code is ``build/lambda/<runtime>-<architecture>`` (``make package``, ``tools/package.py``: the
``functions/detector`` package plus its vendored dependencies, compiled ones for the stage's
``lambdaArchitecture``), zipped by Pulumi. The role may write its own log group and put records to the
one delivery stream, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws

from components import logs, roles
from functions.detector import schema
from spec import iam
from spec.naming import Names

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "build" / "lambda"


def package_dir(runtime: str, architecture: str) -> Path:
    """The package built for a runtime and architecture (tools/package.py names it so)."""
    return PACKAGE_ROOT / f"{runtime}-{architecture}"


HANDLER: Final = "detector.handler.lambda_handler"


def detector_role_policy(*, log_group_arn: iam.Arn, stream_arn: iam.Arn) -> dict:
    """Logs to its own group, records to its own stream. Embedded metrics travel in the logs, so no
    cloudwatch:PutMetricData is needed."""
    return iam.document(
        [
            iam.statement(
                "WriteOwnLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [iam.join(log_group_arn, ":log-stream:*")],
                # The group itself is created by this program, so no logs:CreateLogGroup.
                source=iam.DOCS + "lambda/latest/dg/monitoring-cloudwatchlogs.html",
            ),
            iam.statement(
                "DeliverAnalysisRecords",
                ["firehose:PutRecordBatch"],
                [stream_arn],
                source=iam.DOCS + "firehose/latest/dev/controlling-access.html",
            ),
        ]
    )


# Lambda's application log levels (monitoring-cloudwatchlogs-log-level.html): with the JSON log format the
# function's application log level, INFO unless set, decides what reaches CloudWatch and takes precedence
# over POWERTOOLS_LOG_LEVEL (Lambda sets AWS_LAMBDA_LOG_LEVEL, which Powertools' Logger reads first), so
# the stage's lambdaLogLevel must be set there. INFO at most: the filter reads a line without a "level"
# key as INFO, and the EMF lines Powertools' Metrics prints have none (spec.settings, lambdaLogLevel).
APPLICATION_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO"}


@dataclass(frozen=True, kw_only=True)
class DetectorArgs:
    """Inputs of ``Detector``; each setting is the stack setting named (``spec.settings.SPECS``)."""

    names: Names
    """The function's and role's names, the stage and the account (the role's trust)."""
    tags: Mapping[str, str]
    """Tags of the function, its role and its log group."""
    stream_name: pulumi.Input[str]
    """The delivery stream the detector puts records to (its environment)."""
    stream_arn: pulumi.Input[str]
    """The same stream's ARN (the role's only firehose grant)."""
    runtime: str
    """``lambdaRuntime``."""
    architecture: str
    """``lambdaArchitecture``."""
    memory_mb: int
    """``lambdaMemoryMb``."""
    timeout_seconds: int
    """``lambdaTimeoutSeconds``."""
    reserved_concurrency: int
    """``lambdaReservedConcurrency``."""
    log_level: str
    """``lambdaLogLevel``: DEBUG or INFO."""
    log_retention_days: int
    """``logRetentionDays``: the function's log group."""
    delivery_max_attempts: int
    """``deliveryMaxAttempts``: PutRecordBatch attempts per batch (environment)."""
    input_format: str
    """``unloadFormat``: the format of the rows the map hands the detector (environment)."""
    thresholds: Mapping[str, int]
    """The anomaly thresholds as environment variables (``Settings.thresholds``)."""
    package_dir: Path | None = None
    """The built package to deploy; default ``package_dir(runtime, architecture)``."""


def environment(args: DetectorArgs, *, function_name: str) -> dict:
    """The detector's environment: every variable ``functions/detector`` reads."""
    return {
        schema.ENV_STREAM: args.stream_name,
        schema.ENV_MAX_ATTEMPTS: str(args.delivery_max_attempts),
        schema.ENV_INPUT_FORMAT: args.input_format,
        **{key: str(value) for key, value in args.thresholds.items()},
        "POWERTOOLS_SERVICE_NAME": function_name,
        "POWERTOOLS_METRICS_NAMESPACE": schema.METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": args.log_level,
        "STAGE": args.names.stage,
    }


class Detector(pulumi.ComponentResource):
    """The anomaly detector Lambda.

    Outputs: ``function`` (``name``, ``arn``), ``role``, ``log_group``, ``function_name`` (plain str).
    """

    def __init__(self, name: str, args: DetectorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:detector:Detector", name, None, opts)
        names = args.names
        code_dir = (
            args.package_dir if args.package_dir is not None else package_dir(args.runtime, args.architecture)
        )
        if not (code_dir / "detector" / "handler.py").is_file():
            raise FileNotFoundError(
                f"Lambda package not built: {code_dir / 'detector' / 'handler.py'} is missing; "
                "run `make package` first"
            )
        self.function_name = names.resource("detector")

        self.log_group = logs.log_group(
            name,
            name=f"/aws/lambda/{self.function_name}",
            retention_days=args.log_retention_days,
            tags=args.tags,
            parent=self,
        )
        self.role, policy = roles.service_role(
            name,
            parent=self,
            name=names.resource("detector"),
            service="lambda.amazonaws.com",
            source_account=names.account.account_id,
            description="The anomaly detector Lambda",
            policy=detector_role_policy(log_group_arn=self.log_group.arn, stream_arn=args.stream_arn),
            tags=args.tags,
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=self.function_name,
            description=f"sensorflow {names.stage}: flag anomalies in batches of readings, deliver to Firehose",
            role=self.role.arn,
            runtime=args.runtime,
            architectures=[args.architecture],
            handler=HANDLER,
            code=pulumi.FileArchive(str(code_dir)),
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables=environment(args, function_name=self.function_name)
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=self.log_group.name,
                application_log_level=APPLICATION_LOG_LEVELS[args.log_level],
                system_log_level="WARN",  # platform START/END/REPORT lines only when they say something
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, self.log_group]),
        )
        self.register_outputs({"functionName": self.function.name, "functionArn": self.function.arn})
