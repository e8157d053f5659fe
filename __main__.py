"""sensorflow: one stage of the IoT sensor analytics pipeline.

Settings -> components -> exports. Everything with logic lives in ``components/``.
"""

import pulumi

from components.catalog import Catalog, CatalogArgs
from components.delivery import Delivery, DeliveryArgs
from components.detector import Detector, DetectorArgs
from components.observability import Observability, ObservabilityArgs
from components.storage import Storage, StorageArgs
from components.workflow import RunSettings, Workflow, WorkflowArgs
from spec import naming, settings
from spec.alarms import AlarmSettings

stage = settings.from_pulumi()
for warning in settings.placeholder_subscribers(stage):
    pulumi.log.warn(warning)  # shown by `pulumi preview` and `pulumi up`, before anything is created
names = naming.Names(stage=stage.stage, account=naming.lookup_account())

storage = Storage(
    "storage",
    StorageArgs(
        names=names,
        tags=stage.tags,
        protect=stage.protect_data_stores,
        raw_retention_days=stage.raw_retention_days,
        analytics_retention_days=stage.analytics_retention_days,
        staging_retention_days=stage.staging_retention_days,
        noncurrent_version_retention_days=stage.noncurrent_version_retention_days,
        access_log_retention_days=stage.access_log_retention_days,
    ),
)
catalog = Catalog(
    "catalog",
    CatalogArgs(
        names=names,
        tags=stage.tags,
        protect=stage.protect_data_stores,
        bytes_scanned_cutoff_mb=stage.athena_bytes_scanned_cutoff_mb,
        raw_bucket=storage.raw.bucket,
        analytics_bucket=storage.analytics.bucket,
        athena_bucket=storage.athena.bucket,
    ),
)
delivery = Delivery(
    "delivery",
    DeliveryArgs(
        names=names,
        tags=stage.tags,
        bucket_arn=storage.analytics.arn,
        log_retention_days=stage.log_retention_days,
        buffer_interval_seconds=stage.firehose_buffer_interval_seconds,
        buffer_size_mb=stage.firehose_buffer_size_mb,
        compression=stage.firehose_compression,
    ),
)
detector = Detector(
    "detector",
    DetectorArgs(
        names=names,
        tags=stage.tags,
        stream_name=delivery.stream.name,
        stream_arn=delivery.stream.arn,
        runtime=stage.lambda_runtime,
        architecture=stage.lambda_architecture,
        memory_mb=stage.lambda_memory_mb,
        timeout_seconds=stage.lambda_timeout_seconds,
        reserved_concurrency=stage.lambda_reserved_concurrency,
        log_level=stage.lambda_log_level,
        log_retention_days=stage.log_retention_days,
        delivery_max_attempts=stage.delivery_max_attempts,
        input_format=stage.unload_format,
        thresholds=stage.thresholds,
    ),
)
workflow = Workflow(
    "workflow",
    WorkflowArgs(
        names=names,
        tags=stage.tags,
        storage=storage,
        catalog=catalog,
        function_arn=detector.function.arn,
        log_retention_days=stage.log_retention_days,
        run=RunSettings.of(stage),
    ),
)
observability = Observability(
    "observability",
    ObservabilityArgs(
        names=names,
        tags=stage.tags,
        alarms=AlarmSettings.of(stage),
        alarm_emails=stage.alarm_emails,
        alarm_https_endpoints=stage.alarm_https_endpoints,
        schedule_expression=stage.schedule_expression,
        state_machine_arn=workflow.state_machine.arn,
        state_machine_name=workflow.state_machine_name,
        function_name=detector.function.name,
        delivery_stream_name=delivery.stream.name,
    ),
)

pulumi.export("stage", stage.stage)
pulumi.export("stateMachineArn", workflow.state_machine.arn)
pulumi.export("rawBucket", storage.raw.bucket)
pulumi.export("unloadBucket", storage.unload.bucket)
pulumi.export("athenaResultsBucket", storage.athena.bucket)
pulumi.export("analyticsBucket", storage.analytics.bucket)
pulumi.export("accessLogBucket", storage.access_logs.bucket)
pulumi.export("deliveryStreamName", delivery.stream.name)
pulumi.export("functionName", detector.function.name)
pulumi.export("workgroup", catalog.workgroup.name)
pulumi.export("database", catalog.database.name)
pulumi.export("rawTable", catalog.raw_table.name)
pulumi.export("analysisTable", catalog.analysis_table.name)
pulumi.export("kpiTable", catalog.kpi_table.name)
pulumi.export("alarmTopicArn", observability.topic_arn)
pulumi.export("dashboardName", observability.dashboard_name)
# One argument per word once a shell splits it: the input stays a single quoted JSON argument.
pulumi.export(
    "startExecutionCommand",
    pulumi.Output.concat(
        'aws stepfunctions start-execution --state-machine-arn "',
        workflow.state_machine.arn,
        """" --input '{"runDate": "YYYY-MM-DD"}'""",
    ),
)
