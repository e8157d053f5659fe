"""sensorflow: one stage of the IoT sensor analytics pipeline.

Settings -> components -> exports. Everything with logic lives in ``components/``.
"""

import pulumi

from components.catalog import Catalog, CatalogArgs
from components.delivery import Delivery, DeliveryArgs
from components.detector import Detector, DetectorArgs
from components.observability import Observability, ObservabilityArgs
from components.storage import Storage, StorageArgs
from components.workflow import Workflow, WorkflowArgs
from spec import naming, settings

stage = settings.from_pulumi()
names = naming.Names(stage=stage.stage, account=naming.lookup_account())

storage = Storage("storage", StorageArgs(settings=stage, names=names))
catalog = Catalog(
    "catalog",
    CatalogArgs(
        settings=stage,
        names=names,
        raw_bucket=storage.raw.bucket,
        analytics_bucket=storage.analytics.bucket,
        athena_bucket=storage.athena.bucket,
    ),
)
delivery = Delivery("delivery", DeliveryArgs(settings=stage, names=names, bucket_arn=storage.analytics.arn))
detector = Detector(
    "detector",
    DetectorArgs(
        settings=stage, names=names, stream_name=delivery.stream.name, stream_arn=delivery.stream.arn
    ),
)
workflow = Workflow(
    "workflow",
    WorkflowArgs(
        settings=stage,
        names=names,
        catalog=catalog.ids,
        function_arn=detector.function.arn,
        workgroup_name=catalog.workgroup.name,
        workgroup_arn=catalog.workgroup.arn,
        raw_bucket=storage.raw,
        unload_bucket=storage.unload,
        athena_bucket=storage.athena,
        analytics_bucket=storage.analytics,
    ),
)
observability = Observability(
    "observability",
    ObservabilityArgs(
        settings=stage,
        names=names,
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
