"""The detector function: the Lambda the Distributed Map's children invoke, with its role and log group.

Its code is ``build/lambda/<runtime>-<architecture>`` (``make package``, ``tools/package.py``: the
``functions/detector`` package plus its vendored dependencies, compiled ones for the stage's
``lambdaArchitecture``), zipped by Pulumi. The role may write its own log group and put records to the
one delivery stream, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws

from components import logs, roles
from functions.detector import schema
from spec import iam
from spec.naming import Names
from spec.settings import Settings

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "build" / "lambda"


def package_dir(settings: Settings) -> Path:
    """The package built for the stage's runtime and architecture (tools/package.py names it so)."""
    return PACKAGE_ROOT / f"{settings.lambda_runtime}-{settings.lambda_architecture}"


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
# the stage's lambdaLogLevel must be set there. Lambda spells WARNING as WARN.
APPLICATION_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}


def environment(settings: Settings, *, function_name: str, stream_name: pulumi.Input[str]) -> dict:
    """The detector's environment: every variable ``functions/detector`` reads."""
    return {
        schema.ENV_STREAM: stream_name,
        schema.ENV_MAX_ATTEMPTS: str(settings.delivery_max_attempts),
        schema.ENV_INPUT_FORMAT: settings.unload_format,
        **{key: str(value) for key, value in settings.thresholds.items()},
        "POWERTOOLS_SERVICE_NAME": function_name,
        "POWERTOOLS_METRICS_NAMESPACE": schema.METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": settings.lambda_log_level,
        "STAGE": settings.stage,
    }


@dataclass(frozen=True, kw_only=True)
class DetectorArgs:
    settings: Settings
    names: Names
    stream_name: pulumi.Input[str]
    stream_arn: pulumi.Input[str]
    package_dir: Path | None = None  # default: package_dir(settings)


class Detector(pulumi.ComponentResource):
    """The anomaly detector Lambda.

    Outputs: ``function`` (``name``, ``arn``), ``role``, ``log_group``, ``function_name`` (plain str).
    """

    def __init__(self, name: str, args: DetectorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sensorflow:detector:Detector", name, None, opts)
        settings, names = args.settings, args.names
        code_dir = args.package_dir if args.package_dir is not None else package_dir(settings)
        if not (code_dir / "detector" / "handler.py").is_file():
            raise FileNotFoundError(
                f"Lambda package not built: {code_dir / 'detector' / 'handler.py'} is missing; "
                "run `make package` first"
            )
        self.function_name = names.resource("detector")

        self.log_group = logs.log_group(
            name,
            name=f"/aws/lambda/{self.function_name}",
            retention_days=settings.log_retention_days,
            tags=settings.tags,
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
            tags=settings.tags,
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=self.function_name,
            description=f"sensorflow {settings.stage}: flag anomalies in batches of readings, deliver to Firehose",
            role=self.role.arn,
            runtime=settings.lambda_runtime,
            architectures=[settings.lambda_architecture],
            handler=HANDLER,
            code=pulumi.FileArchive(str(code_dir)),
            memory_size=settings.lambda_memory_mb,
            timeout=settings.lambda_timeout_seconds,
            reserved_concurrent_executions=settings.lambda_reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables=environment(
                    settings, function_name=self.function_name, stream_name=args.stream_name
                )
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=self.log_group.name,
                application_log_level=APPLICATION_LOG_LEVELS[settings.lambda_log_level],
                system_log_level="WARN",  # platform START/END/REPORT lines only when they say something
            ),
            tags=settings.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, self.log_group]),
        )
        self.register_outputs({"functionName": self.function.name, "functionArn": self.function.arn})
